"""The wire between the trusted judge and a sandboxed worker: framed JSON plus raw tensor bytes.

Nothing from the worker is ever unpickled: headers are JSON, tensors travel as raw bytes with a
dtype and shape (or, on CUDA, as an IPC handle the judge maps and copies at once), and every
size is checked against limits the judge sets.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import torch

MAX_HEADER_BYTES = 4 << 20
_LENGTH = struct.Struct("!Q")

# dtypes a task's outputs may have; anything else is refused at the boundary
WIRE_DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
    "complex64": torch.complex64,
}
DTYPE_NAMES = {dtype: name for name, dtype in WIRE_DTYPES.items()}


class ChannelError(Exception):
    """The peer broke the protocol: closed early, sent garbage or too much."""


class ChannelTimeout(ChannelError):
    pass


@dataclass
class Message:
    header: dict[str, Any]
    blobs: list[bytearray]
    # a streamed message's blobs are read by decode_tensor_groups, straight into their tensors
    pending: list[int] = field(default_factory=list)
    deadline: float | None = None
    tensors: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return str(self.header.get("type", ""))


class Channel:
    """Length-prefixed frames over a connected stream socket."""

    def __init__(self, sock: socket.socket, max_blob_bytes: int = 1 << 40) -> None:
        self.sock = sock
        self.max_blob_bytes = max_blob_bytes

    def send(
        self,
        header: dict[str, Any],
        blobs: list[bytes | bytearray | memoryview] | None = None,
        streamed_sizes: list[int] | None = None,
    ) -> None:
        """Send a header and its blobs; with `streamed_sizes`, the caller writes those blobs itself."""
        blobs = blobs or []
        header = dict(header, blobs=streamed_sizes if streamed_sizes is not None else [len(blob) for blob in blobs])
        encoded = json.dumps(header, separators=(",", ":")).encode()
        self.sock.sendall(_LENGTH.pack(len(encoded)) + encoded)
        for blob in blobs:
            self.sock.sendall(blob)

    def recv(self, timeout: float | None = None) -> Message:
        deadline = None if timeout is None else time.monotonic() + timeout
        (length,) = _LENGTH.unpack(self._read(_LENGTH.size, deadline))
        if length > MAX_HEADER_BYTES:
            raise ChannelError(f"header of {length} bytes exceeds the {MAX_HEADER_BYTES}-byte limit")
        try:
            header = json.loads(self._read(length, deadline))
        except ValueError as error:
            raise ChannelError(f"header is not JSON: {error}") from None
        if not isinstance(header, dict):
            raise ChannelError("header is not a JSON object")
        sizes = header.get("blobs", [])
        if not isinstance(sizes, list) or not all(isinstance(s, int) and s >= 0 for s in sizes):
            raise ChannelError("malformed blob sizes")
        if sum(sizes) > self.max_blob_bytes:
            raise ChannelError(f"message carries {sum(sizes)} bytes, over the {self.max_blob_bytes}-byte limit")
        if header.get("stream"):
            return Message(header, [], pending=list(sizes), deadline=deadline)
        return Message(header, [self._read(size, deadline) for size in sizes])

    def readable(self, timeout: float) -> bool:
        """Whether a message (or the end of the connection) is waiting, within `timeout`; reads nothing."""
        poller = select.poll()  # not select(): a busy service has descriptors past its limit of 1024
        try:
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(max(0.0, timeout) * 1000.0))
        except (OSError, ValueError):  # closed: a read would say so at once
            return True

    def _read(self, size: int, deadline: float | None) -> bytearray:
        buffer = bytearray(size)
        self.read_into(memoryview(buffer), deadline)
        return buffer

    def read_into(self, view: memoryview, deadline: float | None) -> None:
        size = len(view)
        got = 0
        while got < size:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ChannelTimeout("timed out waiting for the worker")
                self.sock.settimeout(remaining)
            else:
                self.sock.settimeout(None)
            try:
                n = self.sock.recv_into(view[got:], size - got)
            except TimeoutError:
                raise ChannelTimeout("timed out waiting for the worker") from None
            except OSError as error:
                raise ChannelError(f"connection failed: {error}") from None
            if n == 0:
                raise ChannelError("the worker closed the connection")
            got += n

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# -- tensors on the wire ---------------------------------------------------------------------
#
# A tensor message is a header naming its groups ("outputs", "inputs", ...) with one descriptor
# per tensor, followed by its blobs in order: three small ones per CUDA IPC handle, or the raw
# bytes in chunks of at most CHUNK_BYTES, staged through one pinned buffer on each side so that
# neither process ever holds a whole host copy of a large output.

CHUNK_BYTES = 64 << 20


def send_tensor_groups(
    channel: Channel, header: dict[str, Any], groups: dict[str, list[torch.Tensor]], cuda_ipc: bool
) -> list[torch.Tensor]:
    """Send tensors to the judge; returns what must stay alive until the judge answers (IPC)."""
    keepalive: list[torch.Tensor] = []
    sizes: list[int] = []
    plan: list[tuple[str, Any]] = []  # ("bytes", data) or ("chunk", (tensor, begin, end))
    header = dict(header, stream=True, tensor_groups=list(groups))
    for name, tensors in groups.items():
        descriptors = []
        for tensor in tensors:
            dtype = DTYPE_NAMES.get(tensor.dtype)
            if dtype is None:
                raise TypeError(f"{name}: dtype {tensor.dtype} is not supported")
            descriptor: dict[str, Any] = {"dtype": dtype, "shape": list(tensor.shape)}
            flat = tensor.detach().contiguous()
            if flat.is_cuda and cuda_ipc and flat.numel() > 0:
                storage = flat.untyped_storage()
                (_, handle, size, offset, ref_handle, ref_offset, event_handle, event_sync) = storage._share_cuda_()
                descriptor.update(transport="cuda_ipc", storage_bytes=size, storage_offset_bytes=offset,
                                  element_offset=flat.storage_offset(), ref_offset=ref_offset,
                                  event_sync=bool(event_sync))
                for blob in (handle, ref_handle, event_handle or b""):
                    sizes.append(len(blob))
                    plan.append(("bytes", blob))
                keepalive.append(flat)
            else:
                raw = flat.reshape(-1).view(torch.uint8)
                chunks = 0
                for begin in range(0, raw.numel(), CHUNK_BYTES):
                    end = min(begin + CHUNK_BYTES, raw.numel())
                    sizes.append(end - begin)
                    plan.append(("chunk", (raw, begin, end)))
                    chunks += 1
                descriptor.update(transport="inline", chunks=chunks)
            descriptors.append(descriptor)
        header[name] = descriptors
    staging = _staging_buffer(any(kind == "chunk" and item[0].is_cuda for kind, item in plan))
    channel.send(header, streamed_sizes=sizes)
    for kind, item in plan:
        if kind == "bytes":
            channel.sock.sendall(item)
            continue
        raw, begin, end = item
        if raw.is_cuda:
            staging[: end - begin].copy_(raw[begin:end])
            channel.sock.sendall(memoryview(staging[: end - begin].numpy()))
        else:
            channel.sock.sendall(memoryview(raw[begin:end].numpy()))
    return keepalive


def _staging_buffer(needed: bool) -> torch.Tensor:
    if not needed:
        return torch.empty(0, dtype=torch.uint8)
    return torch.empty(CHUNK_BYTES, dtype=torch.uint8, pin_memory=True)


def decode_tensor_groups(
    channel: Channel, message: Message, device: torch.device, max_elements: int
) -> dict[str, list[torch.Tensor]]:
    """Read a streamed tensor message into private tensors on `device`, validating every field."""
    groups = message.header.get("tensor_groups")
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ChannelError("malformed tensor groups")
    sizes = iter(message.pending)
    staging: torch.Tensor | None = None
    decoded: dict[str, list[torch.Tensor]] = {}
    for name in groups:
        descriptors = message.header.get(name)
        if not isinstance(descriptors, list):
            raise ChannelError(f"missing descriptors for {name}")
        tensors = []
        for descriptor in descriptors:
            dtype, shape, numel = _validated(descriptor, max_elements)
            transport = descriptor.get("transport")
            if transport == "cuda_ipc":
                blobs = [channel._read(_next_size(sizes), message.deadline) for _ in range(3)]
                tensors.append(_open_cuda_ipc(descriptor, blobs, dtype, shape, numel, device))
            elif transport == "inline":
                itemsize = torch.empty((), dtype=dtype).element_size()
                total = numel * itemsize
                chunks = descriptor.get("chunks")
                if not isinstance(chunks, int) or chunks != -(-total // CHUNK_BYTES):
                    raise ChannelError("chunk count does not match the tensor's size")
                target = torch.empty(total, dtype=torch.uint8, device=device)
                if device.type == "cuda" and staging is None and total:
                    staging = torch.empty(CHUNK_BYTES, dtype=torch.uint8, pin_memory=True)
                begin = 0
                for _ in range(chunks):
                    size = _next_size(sizes)
                    if size != min(CHUNK_BYTES, total - begin):
                        raise ChannelError("a chunk's size does not match the tensor")
                    if staging is not None:
                        channel.read_into(memoryview(staging[:size].numpy()), message.deadline)
                        target[begin : begin + size].copy_(staging[:size])
                    else:
                        channel.read_into(memoryview(target[begin : begin + size].numpy()), message.deadline)
                    begin += size
                tensors.append(target.view(dtype).reshape(shape) if total else torch.empty(shape, dtype=dtype, device=device))
            else:
                raise ChannelError(f"unknown transport {transport!r}")
        decoded[name] = tensors
    if next(sizes, None) is not None:
        raise ChannelError("the message carries more blobs than its tensors")
    message.pending = []
    return decoded


def _next_size(sizes: Any) -> int:
    size = next(sizes, None)
    if size is None:
        raise ChannelError("the message carries fewer blobs than its tensors")
    return int(size)


def _validated(descriptor: Any, max_elements: int) -> tuple[torch.dtype, list[int], int]:
    if not isinstance(descriptor, dict):
        raise ChannelError("tensor descriptor is not an object")
    dtype = WIRE_DTYPES.get(descriptor.get("dtype"))  # type: ignore[arg-type]
    shape = descriptor.get("shape")
    if dtype is None:
        raise ChannelError(f"unsupported dtype {descriptor.get('dtype')!r}")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise ChannelError("malformed shape")
    numel = 1
    for extent in shape:
        numel *= extent
    if numel > max_elements:
        raise ChannelError(f"tensor of {numel} elements exceeds the {max_elements}-element limit")
    return dtype, shape, numel


def _open_cuda_ipc(
    descriptor: dict[str, Any],
    blobs: list[bytearray],
    dtype: torch.dtype,
    shape: list[int],
    numel: int,
    device: torch.device,
) -> torch.Tensor:
    if device.type != "cuda":
        raise ChannelError("CUDA IPC tensor where none was expected")
    fields = ("storage_bytes", "storage_offset_bytes", "element_offset", "ref_offset")
    if not all(isinstance(descriptor.get(f), int) and descriptor[f] >= 0 for f in fields):
        raise ChannelError("malformed CUDA IPC descriptor")
    itemsize = torch.empty((), dtype=dtype).element_size()
    if (descriptor["element_offset"] + numel) * itemsize > descriptor["storage_bytes"]:
        raise ChannelError("CUDA IPC tensor overruns its storage")
    storage = torch.UntypedStorage._new_shared_cuda(
        device.index if device.index is not None else 0,
        bytes(blobs[0]),
        descriptor["storage_bytes"],
        descriptor["storage_offset_bytes"],
        bytes(blobs[1]),
        descriptor["ref_offset"],
        bytes(blobs[2]) or None,
        bool(descriptor.get("event_sync")),
    )
    mapped = torch.empty(0, dtype=dtype, device=device)
    mapped.set_(storage, descriptor["element_offset"], shape)
    # a private copy: the worker's memory is never read again after this returns
    private = mapped.clone()
    torch.cuda.synchronize(device)
    del mapped, storage
    return private
