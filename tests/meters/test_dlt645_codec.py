"""DL/T 645-2007 codec: every example frame of docs/protocols.md both ways, round trips,
fuzzing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearthgate.drivers import dlt645_codec as codec
from hearthgate.drivers.dlt645_codec import DLT645Frame, ErrorReply, FrameError, ReadReply
from tests.meters.codec_fuzzing import consume, mutate

h = bytes.fromhex
ADDR = "123456789012"

ENERGY_TX = h("FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 33 33 33 67 16")
ENERGY_RX = h("68 12 90 78 56 34 12 68 91 08 33 33 33 33 89 67 45 33 53 16")
VOLTAGE_TX = h("68 12 90 78 56 34 12 68 11 04 33 34 34 35 6B 16")
VOLTAGE_RX = h("68 12 90 78 56 34 12 68 91 06 33 34 34 35 34 55 76 16")
CURRENT_RX = h("68 12 90 78 56 34 12 68 91 07 33 34 35 35 33 48 B3 1D 16")
ERROR_RX = h("68 12 90 78 56 34 12 68 D1 01 35 8D 16")
ADDRESS_TX = h("68 AA AA AA AA AA AA 68 13 00 DF 16")
ADDRESS_RX = h("68 01 00 00 00 00 00 68 93 06 34 33 33 33 33 33 9D 16")

EXAMPLES = [ENERGY_TX, ENERGY_RX, VOLTAGE_TX, VOLTAGE_RX, CURRENT_RX, ERROR_RX, ADDRESS_TX,
            ADDRESS_RX]


def test_address_is_sent_low_byte_first() -> None:
    assert codec.encode_address(ADDR) == h("12 90 78 56 34 12")
    assert codec.decode_address(h("12 90 78 56 34 12")) == ADDR
    assert codec.normalize_address("5678") == "000000005678"
    assert codec.normalize_address(5678) == "000000005678"
    for bad in ("", "1234567890123", "12345678901x"):
        with pytest.raises(FrameError):
            codec.normalize_address(bad)


def test_read_total_energy() -> None:
    assert codec.read_request(ADDR, 0x00000000, preamble=4) == ENERGY_TX
    assert codec.decode_request(codec.decode_frame(ENERGY_TX)) == (codec.READ, 0)
    reply = codec.decode_reply(codec.decode_frame(ENERGY_RX))
    assert reply == ReadReply(ADDR, 0x00000000, Decimal("1234.56"))
    assert codec.encode_read_reply(ADDR, 0x00000000, Decimal("1234.56")) == ENERGY_RX


def test_read_voltage() -> None:
    assert codec.read_request(ADDR, 0x02010100, preamble=0) == VOLTAGE_TX
    assert codec.decode_request(codec.decode_frame(VOLTAGE_TX)) == (codec.READ, 0x02010100)
    assert codec.decode_reply(codec.decode_frame(VOLTAGE_RX)).value == Decimal("220.1")
    assert codec.encode_read_reply(ADDR, 0x02010100, Decimal("220.1")) == VOLTAGE_RX


def test_signed_current() -> None:
    reply = codec.decode_reply(codec.decode_frame(CURRENT_RX))
    assert isinstance(reply, ReadReply)
    assert reply.di == 0x02020100 and reply.value == Decimal("-1.500")
    assert codec.encode_read_reply(ADDR, 0x02020100, Decimal("-1.5")) == CURRENT_RX


def test_error_reply() -> None:
    reply = codec.decode_reply(codec.decode_frame(ERROR_RX))
    assert reply == ErrorReply(ADDR, codec.READ, 0x02)
    assert reply.reasons == ["no such data"]
    assert codec.encode_error_reply(ADDR, 0x02) == ERROR_RX


def test_read_address() -> None:
    assert codec.read_address_request(preamble=0) == ADDRESS_TX
    assert codec.decode_request(codec.decode_frame(ADDRESS_TX)) == (codec.READ_ADDRESS, None)
    reply = codec.decode_reply(codec.decode_frame(ADDRESS_RX))
    assert reply == ReadReply("000000000001", codec.DI_ADDRESS, "000000000001")
    assert codec.encode_address_reply("000000000001") == ADDRESS_RX


def test_stream_skips_preamble_and_garbage_and_resyncs() -> None:
    dec = codec.DLT645StreamDecoder()
    err, frame = dec.feed(b"\xfe\xfe\x00\x01garbage" + ENERGY_RX + b"\xfe\xfe" + VOLTAGE_RX[:5])
    assert isinstance(err, FrameError)
    assert err.kind == "garbage" and err.data == b"\x00\x01garbage"
    assert frame == codec.decode_frame(ENERGY_RX)
    # nothing more: the voltage reply is still incomplete
    assert dec.feed(VOLTAGE_RX[5:]) == [codec.decode_frame(VOLTAGE_RX)]
    assert dec.pending() == 0


def test_stream_bad_checksum_then_good_frame() -> None:
    bad = bytearray(ENERGY_RX)
    bad[-2] ^= 0xFF
    items = codec.DLT645StreamDecoder().feed(bytes(bad + ENERGY_RX))
    kinds = [x.kind for x in items if isinstance(x, FrameError)]
    frames = [x for x in items if not isinstance(x, FrameError)]
    assert kinds[0] == "checksum"
    assert frames == [codec.decode_frame(ENERGY_RX)]


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (ENERGY_RX[:-3], "truncated"),
        (ENERGY_RX + b"\x00", "trailing"),
        (ENERGY_RX[:-2] + b"\x00\x16", "checksum"),
        (ENERGY_RX[:-1] + b"\x17", "end"),
        (b"\x00" + ENERGY_RX, "header"),
        (b"", "header"),
    ],
)
def test_bad_frames(raw: bytes, kind: str) -> None:
    with pytest.raises(FrameError) as err:
        codec.decode_frame(raw)
    assert err.value.kind == kind


def test_bad_replies() -> None:
    unknown_di = codec.encode_frame(DLT645Frame(ADDR, 0x91, h("01 02 03 04 00 00")))
    with pytest.raises(FrameError, match="di"):
        codec.decode_reply(codec.decode_frame(unknown_di))
    short = codec.encode_frame(DLT645Frame(ADDR, 0x91, h("00 00 00 00 00")))
    with pytest.raises(FrameError, match="length"):
        codec.decode_reply(codec.decode_frame(short))
    not_bcd = codec.encode_frame(DLT645Frame(ADDR, 0x91, h("00 00 00 00 AB 00 00 00")))
    with pytest.raises(FrameError, match="bcd"):
        codec.decode_reply(codec.decode_frame(not_bcd))
    with pytest.raises(FrameError, match="direction"):
        codec.decode_reply(codec.decode_frame(ENERGY_TX))
    with pytest.raises(FrameError, match="direction"):
        codec.decode_request(codec.decode_frame(ENERGY_RX))
    with pytest.raises(FrameError, match="range"):
        codec.encode_read_reply(ADDR, 0x02010100, Decimal("1000.0"))
    with pytest.raises(FrameError, match="range"):
        codec.encode_read_reply(ADDR, 0x00010000, Decimal("-1"))


addresses = st.text(alphabet="0123456789", min_size=12, max_size=12)


@settings(max_examples=300, deadline=None)
@given(address=addresses, di=st.sampled_from(sorted(codec.DATA_ITEMS)), data=st.data(),
       preamble=st.integers(0, 4), more=st.booleans())
def test_round_trip_read(address: str, di: int, data: st.DataObject, preamble: int,
                         more: bool) -> None:
    item = codec.DATA_ITEMS[di]
    # signed values keep the top bit of the top byte for the sign: at most 79 99 ...
    limit = int("79" + "99" * (item.size - 1)) if item.signed else 100**item.size - 1
    n = data.draw(st.integers(-limit if item.signed else 0, limit))
    value = Decimal(n).scaleb(-item.decimals)
    request = codec.read_request(address, di, preamble=preamble)
    assert codec.decode_request(codec.decode_frame(request)) == (codec.READ, di)
    raw = codec.encode_read_reply(address, di, value, more=more, preamble=preamble)
    reply = codec.decode_reply(codec.decode_frame(raw))
    assert reply == ReadReply(address, di, value, more)
    # and through the stream decoder, split anywhere
    cut = data.draw(st.integers(0, len(raw)))
    dec = codec.DLT645StreamDecoder()
    assert dec.feed(raw[:cut]) + dec.feed(raw[cut:]) == [codec.decode_frame(raw)]


@settings(max_examples=200, deadline=None)
@given(address=addresses, code=st.integers(0, 255))
def test_round_trip_error(address: str, code: int) -> None:
    reply = codec.decode_reply(codec.decode_frame(codec.encode_error_reply(address, code)))
    assert reply == ErrorReply(address, codec.READ, code)
    assert reply.reasons


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(raw: bytes) -> None:
    consume(codec, codec.DLT645StreamDecoder(), raw)


@settings(max_examples=300, deadline=None)
@given(base=st.sampled_from(EXAMPLES), data=st.data())
def test_fuzz_mutated_frames(base: bytes, data: st.DataObject) -> None:
    raw = mutate(data, base, length_at=9)
    consume(codec, codec.DLT645StreamDecoder(), raw)
    consume(codec, codec.DLT645StreamDecoder(), raw + base)
