"""Fuzzing helpers shared by the DL/T 645 and CJ/T 188 codec tests.

`codec` is a codec module: decode_frame, decode_reply, decode_request, FrameError; `decoder`
its stream decoder.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from hypothesis import strategies as st

from hearthgate.core.codec import CodecError, StreamDecoder


def consume(codec: ModuleType, decoder: StreamDecoder[Any], raw: bytes | bytearray) -> None:
    """Decode `raw` as one frame and as a stream, the way drivers and simulators do;
    any exception but the codec's FrameError fails the test."""
    try:
        frame = codec.decode_frame(bytes(raw))
    except codec.FrameError:
        frame = None
    frames = [frame] if frame is not None else []
    buf = bytearray(raw)
    for _ in range(len(buf) + 2):
        found = decoder.take(buf)
        if found is None:
            break
        if isinstance(found, CodecError):
            assert isinstance(found, codec.FrameError)  # the codec's one error type
            continue
        frames.append(found)
    else:
        raise AssertionError("the stream parser made no progress")
    assert len(buf) <= decoder.max_frame
    for found in frames:
        for decode in (codec.decode_reply, codec.decode_request):
            try:
                decode(found)
            except codec.FrameError:
                pass


def mutate(data: st.DataObject, base: bytes, length_at: int) -> bytearray:
    """A valid frame with 1-4 random edits; the length byte sits at `length_at`."""
    raw = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[pos:]
        elif op == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "length" and len(raw) > length_at:
            raw[length_at] = data.draw(st.integers(0, 255))
    if len(raw) > 2 and data.draw(st.booleans()):
        # keep the checksum right so that the mutation reaches the field decoders
        start = raw.find(0x68)
        raw[-2] = sum(raw[max(start, 0) : -2]) & 0xFF
    return raw
