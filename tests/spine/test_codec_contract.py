"""The promises every stream codec keeps (`hearthgate.core.codec.StreamDecoder`), checked
against each one: DL/T 645, CJ/T 188, OSDP, RFLink.

Bytes in any pieces give the same frames; what is not a frame comes out as one error of
the codec's type holding exactly the bytes skipped, then the frames after it; an
incomplete frame waits; noise never makes a decoder hold more than one frame's worth.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from hearthgate.core.codec import NEED_MORE, CodecError, StreamDecoder
from hearthgate.drivers import cjt188_codec, dlt645_codec, osdp_codec, rflink_codec

h = bytes.fromhex


@dataclass(frozen=True)
class Case:
    name: str
    decoder: Callable[[], StreamDecoder[Any]]
    error: type[CodecError]
    decode: Callable[[bytes], Any]  # one whole frame, as the decoder should give it
    frames: tuple[bytes, bytes]  # two good frames; the first with what may precede one
    damaged: bytes  # the second, with a bad checksum (RFLink: a line cut short)
    noise: Callable[[random.Random, int], bytes]  # bytes that hold no frame

    def __repr__(self) -> str:
        return self.name


def _binary_noise(start: int, avoid: bytes = b"") -> Callable[[random.Random, int], bytes]:
    """Random bytes, a start byte every few, never one of `avoid` (filler)."""

    def make(rng: random.Random, n: int) -> bytes:
        out = bytearray(rng.randbytes(n))
        for i in range(0, n, rng.randint(3, 9)):
            out[i] = start
        return bytes(b if b not in avoid else 0x00 for b in out)

    return make


def _line_noise(rng: random.Random, n: int) -> bytes:
    """Lines of printable junk and control bytes, some with a `20;` in them."""
    out = bytearray()
    while len(out) < n:
        body = bytes(rng.choice(b"x=20ABC\x00\xff ") for _ in range(rng.randint(5, 80)))
        out += b"x" + body + rng.choice([b"", b"20;", b"20;1"]) + b"\r\n"
    return bytes(out[:n]).rstrip(b"\r\n") + b"\r\n"


def _damaged_checksum(raw: bytes, at: int) -> bytes:
    out = bytearray(raw)
    out[at] ^= 0xFF
    return bytes(out)


DLT_A = dlt645_codec.encode_read_reply("123456789012", 0x00010000, Decimal("1234.56"),
                                       preamble=2)
DLT_B = h("68 12 90 78 56 34 12 68 91 06 33 34 34 35 34 55 76 16")
CJT_A = cjt188_codec.read_request(0x10, "00000012345678", 5, preamble=3)
CJT_B = cjt188_codec.encode_address_reply(0x10, "00000012345678", 5)
OSDP_A = h("53 01 08 00 04 60 BA 00")  # POLL, docs/protocols.md "Door access"
OSDP_B = h("53 81 10 00 05 50 00 01 1A 00 BD 88 EB 80 AE 20")  # a card read
RF_A = b"20;00;Nodo RadioFrequencyLink - RFLink Gateway V1.1 - R46;\r\n"
RF_B = b"20;45;EV1527;ID=295FD59;SWITCH=3;CMD=ON;\r\n"

CASES = [
    Case("dlt645", dlt645_codec.DLT645StreamDecoder, dlt645_codec.FrameError,
         dlt645_codec.decode_frame, (DLT_A, DLT_B), _damaged_checksum(DLT_B, -2),
         _binary_noise(dlt645_codec.START, avoid=b"\xfe")),
    Case("cjt188", cjt188_codec.CJT188StreamDecoder, cjt188_codec.FrameError,
         cjt188_codec.decode_frame, (CJT_A, CJT_B), _damaged_checksum(CJT_B, -2),
         _binary_noise(cjt188_codec.START, avoid=b"\xfe")),
    Case("osdp", osdp_codec.OSDPStreamDecoder, osdp_codec.OSDPError,
         osdp_codec.decode_packet, (OSDP_A, OSDP_B), _damaged_checksum(OSDP_B, -1),
         _binary_noise(osdp_codec.SOM)),
    Case("rflink", rflink_codec.RFLinkStreamDecoder, rflink_codec.RFLinkError,
         lambda raw: rflink_codec.parse_line(raw.rstrip(b"\r\n")), (RF_A, RF_B),
         b"20;45;EV1527;ID=5A3C1;SWI\r\n", _line_noise),
]
# Bytes that start no frame of any of the codecs above.
GARBAGE = b"\x00\x01\x02\x7f\xaa\x10junk"

by_case = pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)


def errors(items: list[Any]) -> list[CodecError]:
    return [x for x in items if isinstance(x, CodecError)]


@by_case
def test_a_frame_split_at_every_byte_boundary(case: Case) -> None:
    for raw in case.frames:
        expected = case.decode(raw)
        for cut in range(len(raw) + 1):
            dec = case.decoder()
            assert dec.feed(raw[:cut]) == ([] if cut < len(raw) else [expected]), cut
            assert dec.feed(raw[cut:]) == ([expected] if cut < len(raw) else []), cut
            assert dec.pending() == 0
        dec = case.decoder()
        assert [item for b in raw for item in dec.feed(bytes([b]))] == [expected]


@by_case
def test_two_frames_in_one_chunk(case: Case) -> None:
    a, b = case.frames
    assert case.decoder().feed(a + b) == [case.decode(a), case.decode(b)]


@by_case
def test_garbage_before_a_frame_is_one_error_holding_it(case: Case) -> None:
    b = case.frames[1]
    err, frame = case.decoder().feed(GARBAGE + b)
    assert isinstance(err, case.error) and err.data == GARBAGE
    assert frame == case.decode(b)


@by_case
def test_a_bad_checksum_then_a_good_frame(case: Case) -> None:
    b = case.frames[1]
    err, frame = case.decoder().feed(case.damaged + b)
    assert isinstance(err, case.error) and err.data == case.damaged
    assert frame == case.decode(b)


@by_case
def test_truncated_input_needs_more(case: Case) -> None:
    a, b = case.frames
    dec = case.decoder()
    assert dec.feed(b[:-1]) == []
    assert dec.pending() == len(b) - 1
    assert dec.decode(b[:-1]) == NEED_MORE
    # A frame cut short, then a whole one: the cut bytes are the error, the frame is kept.
    err, frame = case.decoder().feed(b[:-3] + a)
    assert isinstance(err, case.error) and err.data == b[:-3]
    assert frame == case.decode(a)


@by_case
def test_every_byte_of_noise_is_reported(case: Case) -> None:
    noise = case.noise(random.Random(188), 20_000)
    dec = case.decoder()
    items = dec.feed(noise)
    assert items and errors(items) == items  # noise, not frames
    assert all(isinstance(e, case.error) for e in items)
    assert sum(len(e.data) for e in errors(items)) + dec.pending() == len(noise)


@by_case
def test_huge_garbage_keeps_the_buffer_bounded(case: Case) -> None:
    rng = random.Random(645)
    dec = case.decoder()
    fed = reported = 0
    for _ in range(250):  # 1 MB, in the pieces a UART delivers
        chunk = case.noise(rng, 4096)
        items = dec.feed(chunk)
        fed += len(chunk)
        reported += sum(len(e.data) for e in errors(items))
        assert dec.pending() <= dec.max_frame
    # Random bytes may hold the odd frame (an OSDP packet with a 1-byte checksum passes
    # one in 256): nearly everything, not everything, is an error here.
    assert 0.99 * fed <= reported + dec.pending() <= fed
    a, b = case.frames
    # and it is still in step: the next frame comes through
    assert case.decode(b) in dec.feed(b + a)
