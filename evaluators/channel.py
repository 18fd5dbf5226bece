"""The wire between the trusted judge and a sandboxed worker: framed JSON plus raw tensor bytes.

Nothing from the worker is ever unpickled: headers are JSON, tensors travel as raw bytes with a
dtype and shape (or, on CUDA, as an IPC handle the judge maps and copies at once), and every
size is checked against limits the judge sets.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass
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

    @property
    def type(self) -> str:
        return str(self.header.get("type", ""))


class Channel:
    """Length-prefixed frames over a connected stream socket."""

    def __init__(self, sock: socket.socket, max_blob_bytes: int = 1 << 40) -> None:
        self.sock = sock
        self.max_blob_bytes = max_blob_bytes

    def send(self, header: dict[str, Any], blobs: list[bytes | bytearray | memoryview] | None = None) -> None:
        blobs = blobs or []
        header = dict(header, blobs=[len(blob) for blob in blobs])
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
        return Message(header, [self._read(size, deadline) for size in sizes])

    def _read(self, size: int, deadline: float | None) -> bytearray:
        buffer = bytearray(size)
        view = memoryview(buffer)
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
        return buffer

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# -- tensors on the wire ---------------------------------------------------------------------


def encode_tensors(
    tensors: list[torch.Tensor], cuda_ipc: bool
) -> tuple[list[dict[str, Any]], list[bytes | memoryview]]:
    """Describe tensors for the judge. CUDA tensors go by IPC handle when allowed, else by bytes."""
    descriptors: list[dict[str, Any]] = []
    blobs: list[bytes | memoryview] = []
    for tensor in tensors:
        dtype = DTYPE_NAMES.get(tensor.dtype)
        if dtype is None:
            raise TypeError(f"output dtype {tensor.dtype} is not supported")
        descriptor: dict[str, Any] = {"dtype": dtype, "shape": list(tensor.shape)}
        if tensor.is_cuda and cuda_ipc and tensor.numel() > 0:
            contiguous = tensor.contiguous()
            storage = contiguous.untyped_storage()
            (device, handle, size, offset, ref_handle, ref_offset, event_handle, event_sync) = storage._share_cuda_()
            descriptor.update(
                transport="cuda_ipc",
                device=device,
                storage_bytes=size,
                storage_offset_bytes=offset,
                element_offset=contiguous.storage_offset(),
                ref_offset=ref_offset,
                event_sync=bool(event_sync),
                blob_index=len(blobs),
            )
            blobs.extend([handle, ref_handle, event_handle or b""])
            descriptor["_keepalive"] = contiguous  # removed before sending; see strip_keepalive
        else:
            data = tensor.detach().to("cpu").contiguous()
            raw = memoryview(data.reshape(-1).view(torch.uint8).numpy()) if data.numel() else b""
            descriptor.update(transport="inline", blob_index=len(blobs))
            blobs.append(raw)
        descriptors.append(descriptor)
    return descriptors, blobs


def strip_keepalive(descriptors: list[dict[str, Any]]) -> list[torch.Tensor]:
    """Remove the tensors that must stay alive while the judge maps them (CUDA IPC)."""
    return [d.pop("_keepalive") for d in descriptors if "_keepalive" in d]


def decode_tensors(
    descriptors: Any, blobs: list[bytearray], device: torch.device, max_elements: int
) -> list[torch.Tensor]:
    """Rebuild the worker's tensors in the judge as private copies, validating every field."""
    if not isinstance(descriptors, list):
        raise ChannelError("tensor descriptors are not a list")
    tensors = []
    for descriptor in descriptors:
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
        index = descriptor.get("blob_index")
        if not isinstance(index, int) or not 0 <= index < len(blobs):
            raise ChannelError("blob index out of range")
        transport = descriptor.get("transport")
        if transport == "inline":
            raw = blobs[index]
            itemsize = torch.empty((), dtype=dtype).element_size()
            if len(raw) != numel * itemsize:
                raise ChannelError(f"tensor bytes ({len(raw)}) do not match shape {shape} of {dtype}")
            flat = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            tensor = flat.view(dtype).reshape(shape).to(device)
        elif transport == "cuda_ipc":
            tensor = _open_cuda_ipc(descriptor, blobs, index, dtype, shape, numel, device)
        else:
            raise ChannelError(f"unknown transport {transport!r}")
        tensors.append(tensor)
    return tensors


def _open_cuda_ipc(
    descriptor: dict[str, Any],
    blobs: list[bytearray],
    index: int,
    dtype: torch.dtype,
    shape: list[int],
    numel: int,
    device: torch.device,
) -> torch.Tensor:
    if device.type != "cuda" or index + 2 >= len(blobs):
        raise ChannelError("CUDA IPC tensor where none was expected")
    fields = ("storage_bytes", "storage_offset_bytes", "element_offset", "ref_offset")
    if not all(isinstance(descriptor.get(f), int) and descriptor[f] >= 0 for f in fields):
        raise ChannelError("malformed CUDA IPC descriptor")
    itemsize = torch.empty((), dtype=dtype).element_size()
    if (descriptor["element_offset"] + numel) * itemsize > descriptor["storage_bytes"]:
        raise ChannelError("CUDA IPC tensor overruns its storage")
    event_handle = bytes(blobs[index + 2]) or None
    storage = torch.UntypedStorage._new_shared_cuda(
        device.index if device.index is not None else 0,
        bytes(blobs[index]),
        descriptor["storage_bytes"],
        descriptor["storage_offset_bytes"],
        bytes(blobs[index + 1]),
        descriptor["ref_offset"],
        event_handle,
        bool(descriptor.get("event_sync")),
    )
    mapped = torch.empty(0, dtype=dtype, device=device)
    mapped.set_(storage, descriptor["element_offset"], shape)
    # a private copy: the worker's memory is never read again after this returns
    private = mapped.clone()
    torch.cuda.synchronize(device)
    del mapped, storage
    return private
