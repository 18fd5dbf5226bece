"""The judge-worker wire: everything from the worker is validated, nothing is unpickled."""

from __future__ import annotations

import socket

import pytest
import torch

from evaluators.channel import Channel, ChannelError, ChannelTimeout, decode_tensors, encode_tensors


def pair() -> tuple[Channel, Channel]:
    a, b = socket.socketpair()
    return Channel(a), Channel(b)


def test_messages_and_tensors_round_trip():
    judge, worker = pair()
    tensors = [torch.randn(3, 4), torch.arange(5, dtype=torch.int64), torch.empty(0)]
    descriptors, blobs = encode_tensors(tensors, cuda_ipc=False)
    worker.send({"type": "outputs", "outputs": descriptors}, blobs)
    message = judge.recv(timeout=5)
    decoded = decode_tensors(message.header["outputs"], message.blobs, torch.device("cpu"), max_elements=100)
    assert message.type == "outputs"
    assert all(torch.equal(a, b) for a, b in zip(decoded, tensors, strict=True))


@pytest.mark.parametrize(
    ("descriptor", "error"),
    [
        ({"dtype": "object", "shape": [1], "transport": "inline", "blob_index": 0}, "unsupported dtype"),
        ({"dtype": "float32", "shape": [2], "transport": "inline", "blob_index": 0}, "do not match shape"),
        ({"dtype": "float32", "shape": [10**9], "transport": "inline", "blob_index": 0}, "element limit"),
        ({"dtype": "float32", "shape": [1], "transport": "pickle", "blob_index": 0}, "unknown transport"),
        ({"dtype": "float32", "shape": [1], "transport": "inline", "blob_index": 7}, "blob index"),
        ({"dtype": "float32", "shape": [-1], "transport": "inline", "blob_index": 0}, "malformed shape"),
    ],
)
def test_malformed_tensor_descriptors_are_refused(descriptor, error):
    with pytest.raises(ChannelError, match=error):
        decode_tensors([descriptor], [b"\x00" * 4], torch.device("cpu"), max_elements=1000)


def test_oversized_messages_are_refused_before_they_are_read():
    judge, worker = pair()
    judge.max_blob_bytes = 1024
    worker.send({"type": "outputs"}, [b"x" * 2048])
    with pytest.raises(ChannelError, match="over the 1024-byte limit"):
        judge.recv(timeout=5)


def test_garbage_and_silence_and_hangups_are_errors():
    a, b = socket.socketpair()
    judge = Channel(a)
    b.sendall((5).to_bytes(8, "big") + b"nope!")
    with pytest.raises(ChannelError, match="not JSON"):
        judge.recv(timeout=5)
    with pytest.raises(ChannelTimeout):
        judge.recv(timeout=0.2)
    b.close()
    with pytest.raises(ChannelError, match="closed"):
        judge.recv(timeout=5)
