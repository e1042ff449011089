"""CJ/T 188-2004 codec: every example frame of docs/protocols.md both ways, round trips,
fuzzing."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hearthgate.drivers import cjt188_codec as codec
from hearthgate.drivers.cjt188_codec import CJT188Frame, ErrorReply, FlowReading, FrameError
from tests.meters.codec_fuzzing import consume, mutate

h = bytes.fromhex
ADDR = "00000012345678"

READ_TX = h("FE FE FE FE 68 10 78 56 34 12 00 00 00 01 03 90 1F 01 40 16")
READ_RX = h(
    "68 10 78 56 34 12 00 00 00 81 16 90 1F 01 45 23 01 00 2C 00 00 01 00 2C"
    " 00 30 08 17 05 24 20 00 00 2D 16"
)
ERROR_RX = h("68 10 78 56 34 12 00 00 00 C1 03 01 01 00 52 16")
PUB_TX = h("68 10 18 02 12 20 20 00 00 01 03 90 1F 00 97 16")
PUB_RX = h(
    "68 10 18 02 12 20 20 00 00 81 16 90 1F 00 00 02 00 00 2C 00 02 00 00 2C"
    " 00 00 00 00 00 00 00 00 FF 85 16"
)
ADDRESS_TX = h("68 AA AA AA AA AA AA AA AA 03 03 81 0A 00 49 16")
# Published by other projects (docs/protocols.md, CJ/T 188, "Frames from other projects"):
# a meter that FF-fills the settlement-day total and the clock, and replies with DI 1F 90.
PADDED_RX = h(
    "FE FE 68 10 45 41 10 05 15 33 78 81 16 90 1F AA 00 59 59 00 2C FF FF FF FF 2C"
    " FF FF FF FF FF FF FF 00 00 C2 16"
)
LOW_FIRST_RX = h(
    "68 10 44 33 22 11 00 33 78 81 16 1F 90 00 00 77 66 55 2C 00 77 66 55 2C"
    " 31 01 22 11 05 15 20 21 84 13 16"
)
ZERO_TIME_RX = h(
    "FE FE 68 10 26 13 06 07 00 33 78 81 16 1F 90 04 00 68 00 00 2C 00 00 00 00 2C"
    " 00 00 00 00 00 00 00 00 00 73 16"
)
EXAMPLES = [READ_TX, READ_RX, ERROR_RX, PUB_TX, PUB_RX, ADDRESS_TX, PADDED_RX, LOW_FIRST_RX,
            ZERO_TIME_RX]


def test_address_is_sent_low_byte_first() -> None:
    assert codec.encode_address(ADDR) == h("78 56 34 12 00 00 00")
    assert codec.decode_address(h("78 56 34 12 00 00 00")) == ADDR
    assert codec.normalize_address("1234") == "00000000001234"
    with pytest.raises(FrameError):
        codec.normalize_address("123456789012345")


def test_read_current_flow() -> None:
    assert codec.read_request(0x10, ADDR, 1, preamble=4) == READ_TX
    request = codec.decode_request(codec.decode_frame(READ_TX))
    assert (request.meter_type, request.address, request.function, request.di, request.ser) == (
        0x10, ADDR, codec.READ, codec.DI_CURRENT_FLOW, 1)
    assert request.di_order == "high_first"
    expected = FlowReading(
        ser=1, total=Decimal("123.45"), total_unit=0x2C, settlement=Decimal("100.00"),
        settlement_unit=0x2C, meter_time=datetime(2024, 5, 17, 8, 30, 0), status=b"\0\0",
    )
    assert codec.decode_reply(codec.decode_frame(READ_RX)) == expected
    assert codec.encode_flow_reply(0x10, ADDR, expected) == READ_RX


def test_published_pair() -> None:
    address = "00002020120218"
    assert codec.read_request(0x10, address, 0, preamble=0) == PUB_TX
    reading = codec.decode_reply(codec.decode_frame(PUB_RX))
    assert isinstance(reading, FlowReading)
    assert reading.total == Decimal("2.00") and reading.settlement == Decimal("2.00")
    assert reading.meter_time is None  # the meter sends zeros: no date
    assert reading.status == b"\x00\xff"
    assert codec.encode_flow_reply(0x10, address, reading) == PUB_RX


def test_ff_filled_fields_are_not_supported_not_a_broken_frame() -> None:
    frame = codec.decode_frame(PADDED_RX)
    assert frame.address == "78331505104145"
    reading = codec.decode_reply(frame)
    assert reading == FlowReading(
        ser=0xAA, total=Decimal("5959.00"), total_unit=0x2C, settlement=None,
        settlement_unit=0x2C, meter_time=None, status=b"\0\0",
    )
    # and our own encoder writes "not supported" the same way
    assert codec.encode_flow_reply(0x10, frame.address, reading, preamble=2) == PADDED_RX
    padded_st = FlowReading(1, Decimal("1.00"), 0x2C, None, 0x2C, None, None)
    raw = codec.encode_flow_reply(0x10, ADDR, padded_st)
    assert raw[-4:-2] == b"\xff\xff"
    assert codec.decode_reply(codec.decode_frame(raw)) == padded_st


def test_a_field_only_partly_ff_is_still_corrupt() -> None:
    data = bytearray(codec.decode_frame(READ_RX).data)
    data[8:12] = h("00 FF 01 00")  # settlement total with one FF byte among BCD digits
    raw = codec.encode_frame(CJT188Frame(0x10, ADDR, 0x81, bytes(data)))
    with pytest.raises(FrameError, match="not BCD"):
        codec.decode_reply(codec.decode_frame(raw))


@pytest.mark.parametrize(
    ("raw", "address", "total", "moment"),
    [
        (LOW_FIRST_RX, "78330011223344", Decimal("556677.00"), datetime(2015, 5, 11, 22, 1, 31)),
        (ZERO_TIME_RX, "78330007061326", Decimal("68.00"), None),
    ],
)
def test_frames_published_by_other_projects(
    raw: bytes, address: str, total: Decimal, moment: datetime | None
) -> None:
    frame = codec.decode_frame(raw)
    assert frame.address == address
    reading = codec.decode_reply(frame)
    assert isinstance(reading, FlowReading)
    assert (reading.total, reading.total_unit, reading.meter_time) == (total, 0x2C, moment)


def test_error_reply() -> None:
    reply = codec.decode_reply(codec.decode_frame(ERROR_RX))
    assert reply == ErrorReply(ser=1, status=b"\x01\x00")
    assert codec.encode_error_reply(0x10, ADDR, 1, b"\x01\x00") == ERROR_RX


def test_read_address_any_meter() -> None:
    assert codec.read_address_request(0, preamble=0) == ADDRESS_TX
    request = codec.decode_request(codec.decode_frame(ADDRESS_TX))
    assert request.meter_type == codec.ANY_TYPE and request.address == codec.ANY_ADDRESS
    assert request.function == codec.READ_ADDRESS and request.di == codec.DI_ADDRESS


def test_both_di_orders_accepted_in_replies() -> None:
    reading = codec.decode_reply(codec.decode_frame(READ_RX))
    assert isinstance(reading, FlowReading)
    swapped = codec.encode_flow_reply(0x10, ADDR, reading, di_order="low_first")
    assert swapped[11:13] == h("1F 90")
    assert codec.decode_reply(codec.decode_frame(swapped)) == reading
    request = codec.read_request(0x10, ADDR, 7, di_order="low_first", preamble=0)
    assert request[11:13] == h("1F 90")
    assert codec.decode_request(codec.decode_frame(request)).di_order == "low_first"


def test_status_layouts() -> None:
    std = codec.STATUS_LAYOUTS["standard"]
    assert std.valve(b"\x00\x00") == "open" and not std.battery_low(b"\x00\x00")
    assert std.valve(b"\x01\x00") == "closed"
    assert std.valve(b"\x03\x00") == "abnormal"
    assert std.battery_low(b"\x04\x00")
    alt = codec.STATUS_LAYOUTS["high_bits"]
    assert alt.valve(b"\x40\x00") == "closed" and alt.battery_low(b"\x20\x00")
    for layout in codec.STATUS_LAYOUTS.values():
        for valve in ("open", "closed", "abnormal"):
            for low in (False, True):
                st_bytes = layout.encode(valve, low)
                assert layout.valve(st_bytes) == valve and layout.battery_low(st_bytes) == low


def test_valve_request() -> None:
    raw = codec.valve_request(0x10, ADDR, 5, open_valve=False, preamble=0)
    request = codec.decode_request(codec.decode_frame(raw))
    assert request.function == codec.WRITE and request.di == codec.DI_VALVE
    assert request.payload == bytes([codec.VALVE_CLOSE])


def test_stream_skips_preamble_and_garbage() -> None:
    dec = codec.CJT188StreamDecoder()
    err, *frames = dec.feed(b"\xfe\xfe\x13\x37" + READ_RX + b"\xfe" + ERROR_RX)
    assert isinstance(err, FrameError)
    assert err.kind == "garbage" and err.data == b"\x13\x37"
    assert frames == [codec.decode_frame(READ_RX), codec.decode_frame(ERROR_RX)]
    assert dec.pending() == 0


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (READ_RX[:-1], "truncated"),
        (READ_RX + b"\x16", "trailing"),
        (READ_RX[:-2] + b"\x08\x16", "checksum"),
        (READ_RX[:1] + b"\x99" + READ_RX[2:], "header"),  # unknown meter type
    ],
)
def test_bad_frames(raw: bytes, kind: str) -> None:
    with pytest.raises(FrameError) as err:
        codec.decode_frame(raw)
    assert err.value.kind == kind


def test_bad_replies() -> None:
    wrong_di = codec.encode_frame(CJT188Frame(0x10, ADDR, 0x81, h("90 2F 01") + bytes(19)))
    with pytest.raises(FrameError, match="di"):
        codec.decode_reply(codec.decode_frame(wrong_di))
    short = codec.encode_frame(CJT188Frame(0x10, ADDR, 0x81, h("90 1F 01 00")))
    with pytest.raises(FrameError, match="length"):
        codec.decode_reply(codec.decode_frame(short))
    with pytest.raises(FrameError, match="direction"):
        codec.decode_reply(codec.decode_frame(READ_TX))
    with pytest.raises(FrameError, match="direction"):
        codec.decode_request(codec.decode_frame(READ_RX))
    with pytest.raises(FrameError, match="range"):
        codec.encode_flow_reply(0x10, ADDR, FlowReading(0, Decimal("1.234"), 0x2C, Decimal(0),
                                                         0x2C, None, b"\0\0"))


addresses = st.text(alphabet="0123456789", min_size=14, max_size=14)
totals = st.integers(0, 99_999_999).map(lambda n: Decimal(n).scaleb(-2))
moments = st.one_of(
    st.none(), st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
    .map(lambda d: d.replace(microsecond=0)),
)


@settings(max_examples=300, deadline=None)
@given(
    meter_type=st.sampled_from([t for t in codec.METER_TYPES if t != codec.ANY_TYPE]),
    address=addresses, ser=st.integers(0, 255), total=totals, settlement=totals,
    unit=st.sampled_from(sorted(codec.UNITS)), moment=moments, status=st.binary(min_size=2,
    max_size=2), order=st.sampled_from(["high_first", "low_first"]), preamble=st.integers(0, 4),
)
def test_round_trip(meter_type: int, address: str, ser: int, total: Decimal,
                    settlement: Decimal, unit: int, moment: datetime | None, status: bytes,
                    order: codec.DiOrder, preamble: int) -> None:
    request = codec.decode_request(codec.decode_frame(
        codec.read_request(meter_type, address, ser, di_order=order, preamble=preamble)))
    assert (request.address, request.ser, request.di, request.di_order) == (
        address, ser, codec.DI_CURRENT_FLOW, order)
    # ST of FF FF is "not supported" and decodes as None
    reading = FlowReading(ser, total, unit, settlement, unit, moment,
                          None if status == b"\xff\xff" else status)
    raw = codec.encode_flow_reply(meter_type, address, reading, di_order=order,
                                  preamble=preamble)
    frame = codec.decode_frame(raw)
    assert (frame.meter_type, frame.address) == (meter_type, address)
    assert codec.decode_reply(frame) == reading
    error = codec.encode_error_reply(meter_type, address, ser, status)
    assert codec.decode_reply(codec.decode_frame(error)) == ErrorReply(ser, status)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(raw: bytes) -> None:
    consume(codec, codec.CJT188StreamDecoder(), raw)


@settings(max_examples=300, deadline=None)
@given(base=st.sampled_from(EXAMPLES), data=st.data())
def test_fuzz_mutated_frames(base: bytes, data: st.DataObject) -> None:
    raw = mutate(data, base, length_at=10)
    consume(codec, codec.CJT188StreamDecoder(), raw)
    consume(codec, codec.CJT188StreamDecoder(), raw + base)
