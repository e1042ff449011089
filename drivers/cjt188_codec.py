"""CJ/T 188-2004 frames (Chinese water, gas and heat meters), sans-I/O.

    [FE…] 68 T A0…A6 C L DATA… CS 16

- T is the meter type (`10` cold water … `40` electricity; `AA` any);
- the address is 14 BCD digits sent low byte first (`AA`×7 addresses any single meter);
- no +0x33 offset; CS is the sum from `68` to the end of DATA, mod 256;
- a read request's DATA is `DI DI SER`; meter makes disagree on the DI byte order (`90 1F`
  and `1F 90` are both seen for DI 901F): replies are accepted in either order, the request
  order is a per-model setting (`di_order`);
- SER is a sequence byte the master increments per exchange; the meter echoes it.

Both directions are here so the simulator and the driver share one implementation. The only
exception any function raises on bad input is `FrameError`; `CJT188StreamDecoder` cuts a
byte stream into frames and returns it as a value (`hearthgate.core.codec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from hearthgate.core.codec import CodecError, StartLengthDecoder
from hearthgate.drivers import meter_framing as framing

START = 0x68
END = 0x16
PREAMBLE = 0xFE
MAX_DATA = 100

METER_TYPES = {
    0x10: "cold water",
    0x11: "hot water",
    0x12: "drinking water",
    0x13: "reclaimed water",
    0x20: "heat",
    0x21: "cooling",
    0x30: "gas",
    0x40: "electricity",
    0xAA: "any",
}
ANY_TYPE = 0xAA
ANY_ADDRESS = "AAAAAAAAAAAAAA"

READ = 0x01
WRITE = 0x04
READ_ADDRESS = 0x03
FLAG_REPLY = 0x80
FLAG_ERROR = 0x40

DI_CURRENT_FLOW = 0x901F  # current cumulative flow (and settlement, time, status)
DI_ADDRESS = 0x810A
DI_VALVE = 0xA017
VALVE_OPEN = 0x55
VALVE_CLOSE = 0x99

UNITS = {
    0x2C: "m3",
    0x29: "L",
    0x35: "m3/h",
    0x32: "L/h",
    0x05: "kWh",
    0x17: "kW",
    0x11: "GJ",
}
UNIT_CODES = {name: code for code, name in UNITS.items()}

DiOrder = Literal["high_first", "low_first"]


class FrameError(CodecError):
    """Bad CJ/T 188 input, the codec's one error type. `kind` names the fault (for per-device
    counters), `data` holds the offending bytes (from a stream, exactly those skipped)."""


@dataclass(frozen=True, slots=True)
class CJT188Frame:
    meter_type: int
    address: str  # 14 characters: BCD digits, or 'A' for wildcard nibbles
    control: int
    data: bytes = b""

    @property
    def is_reply(self) -> bool:
        return bool(self.control & FLAG_REPLY)

    @property
    def is_error(self) -> bool:
        return bool(self.control & FLAG_ERROR)

    @property
    def function(self) -> int:
        return self.control & 0x3F


@dataclass(frozen=True, slots=True)
class FlowReading:
    """The reply to DI 901F.

    Real meters fill the fields they do not keep with `FF` bytes (docs/protocols.md,
    CJ/T 188): such a field is None here ("not supported"), not a broken reply.
    """

    ser: int
    total: Decimal | None  # None: the meter sent FF×4 (it does not report a total)
    total_unit: int  # unit code, see UNITS
    settlement: Decimal | None  # None: FF-filled (many meters keep no settlement-day total)
    settlement_unit: int
    meter_time: datetime | None  # None when FF-filled or an impossible date (zeros)
    status: bytes | None  # ST, 2 bytes, as sent (see StatusLayout); None when FF FF


@dataclass(frozen=True, slots=True)
class ErrorReply:
    ser: int
    status: bytes


@dataclass(frozen=True, slots=True)
class Request:
    """A master's request, decoded (for the simulator)."""

    meter_type: int
    address: str
    function: int
    di: int | None
    ser: int
    di_order: DiOrder
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class StatusLayout:
    """Where a model keeps the valve and battery bits in ST (UNCONFIRMED across makes).

    Valve: `(st[valve_byte] & valve_mask)` equals `valve_open`, `valve_closed`, or anything
    else = abnormal. Battery low: `st[battery_byte] & battery_mask` set.
    """

    valve_byte: int
    valve_mask: int
    valve_open: int
    valve_closed: int
    battery_byte: int
    battery_mask: int

    def valve(self, st: bytes) -> Literal["open", "closed", "abnormal"]:
        bits = st[self.valve_byte] & self.valve_mask
        if bits == self.valve_open:
            return "open"
        if bits == self.valve_closed:
            return "closed"
        return "abnormal"

    def battery_low(self, st: bytes) -> bool:
        return bool(st[self.battery_byte] & self.battery_mask)

    def encode(self, valve: str, battery_low: bool) -> bytes:
        st = bytearray(2)
        bits = {"open": self.valve_open, "closed": self.valve_closed}.get(valve, self.valve_mask)
        st[self.valve_byte] |= bits
        if battery_low:
            st[self.battery_byte] |= self.battery_mask
        return bytes(st)


STATUS_LAYOUTS: dict[str, StatusLayout] = {
    # The standard's: byte 0 bits 0-1 valve (00 open, 01 closed, 11 abnormal), bit 2 battery.
    "standard": StatusLayout(0, 0x03, 0x00, 0x01, 0, 0x04),
    # Seen on other makes: mask C0 for the valve, 20 for the battery, in byte 0.
    "high_bits": StatusLayout(0, 0xC0, 0x00, 0x40, 0, 0x20),
}


# -- address and BCD -------------------------------------------------------------------------


def encode_address(address: str) -> bytes:
    """14 digits (BCD, 'A' = wildcard nibble) → 7 bytes, low byte first."""
    return framing.encode_address(address, 14, FrameError)


def decode_address(raw: bytes) -> str:
    return framing.decode_address(raw, 14, FrameError)


def normalize_address(address: str | int) -> str:
    """Accept `1234` or `"00000000001234"`: zero-padded to 14 digits, as on the nameplate."""
    return framing.normalize_address(address, 14, "CJ/T 188", FrameError)


def bcd_to_int(raw: bytes) -> int:
    return framing.bcd_to_int(raw, FrameError)


def int_to_bcd(value: int, size: int) -> bytes:
    return framing.int_to_bcd(value, size, FrameError)


NOT_SUPPORTED = 0xFF  # the fill byte of a field the meter does not keep


def _not_supported(raw: bytes) -> bool:
    # Only a field that is FF throughout means "not supported"; a field with some FF nibbles
    # among BCD digits is corrupt and stays an error.
    return len(raw) > 0 and all(b == NOT_SUPPORTED for b in raw)


def _decode_total(raw: bytes) -> Decimal | None:
    if _not_supported(raw):
        return None
    return Decimal(bcd_to_int(raw)).scaleb(-2)


def _encode_total(value: Decimal | float | int | None) -> bytes:
    if value is None:
        return bytes([NOT_SUPPORTED]) * 4
    scaled = Decimal(str(value)).scaleb(2)
    if scaled != scaled.to_integral_value():
        raise FrameError("range", f"{value} has more than 2 decimals")
    return int_to_bcd(int(scaled), 4)


def decode_time(raw: bytes) -> datetime | None:
    """`ss mm hh DD MM YY YY` (year low byte first) → naive local time; None if impossible or
    FF-filled (not supported)."""
    if len(raw) != 7:
        raise FrameError("length", "meter time is not 7 bytes", raw)
    if _not_supported(raw):
        return None
    try:
        second, minute, hour, day, month = (bcd_to_int(raw[i : i + 1]) for i in range(5))
        year = bcd_to_int(raw[5:7])
        return datetime(year, month, day, hour, minute, second)
    except (ValueError, FrameError):
        return None


def encode_time(moment: datetime | None, *, pad: bool = False) -> bytes:
    """`moment` as 7 BCD bytes; None as zeros (no date), or as FF×7 (not supported) with
    `pad` — both forms are sent by real meters."""
    if moment is None:
        return bytes([NOT_SUPPORTED]) * 7 if pad else bytes(7)
    parts = (moment.second, moment.minute, moment.hour, moment.day, moment.month)
    return b"".join(int_to_bcd(p, 1) for p in parts) + int_to_bcd(moment.year, 2)


def encode_di(di: int, order: DiOrder = "high_first") -> bytes:
    raw = di.to_bytes(2, "big")
    return raw if order == "high_first" else raw[::-1]


def _match_di(raw: bytes, di: int) -> DiOrder | None:
    if raw == encode_di(di, "high_first"):
        return "high_first"
    if raw == encode_di(di, "low_first"):
        return "low_first"
    return None


# -- frames ----------------------------------------------------------------------------------


def encode_frame(frame: CJT188Frame, preamble: int = 0) -> bytes:
    if len(frame.data) > MAX_DATA:
        raise FrameError("length", f"{len(frame.data)} data bytes, at most {MAX_DATA}")
    if not (0 <= frame.meter_type <= 0xFF and 0 <= frame.control <= 0xFF):
        raise FrameError("control", "meter type or control out of range")
    body = bytearray([START, frame.meter_type])
    body += encode_address(frame.address)
    body += bytes([frame.control, len(frame.data)])
    body += frame.data
    body += bytes([framing.checksum(body), END])
    return bytes([PREAMBLE]) * preamble + bytes(body)


def _frame_length(buf: bytes | bytearray) -> int | None:
    if len(buf) >= 2 and buf[1] not in METER_TYPES:
        raise FrameError("header", f"unknown meter type {buf[1]:02X}")
    if len(buf) < 11:
        return None
    length = buf[10]
    if length > MAX_DATA:
        raise FrameError("header", f"data length {length} over {MAX_DATA}")
    return 13 + length


def _decode_exact(raw: bytes) -> CJT188Frame:
    framing.check_trailer(raw, FrameError)
    return CJT188Frame(
        meter_type=raw[1], address=decode_address(raw[2:9]), control=raw[9], data=raw[11:-2]
    )


def decode_frame(raw: bytes) -> CJT188Frame:
    """Decode exactly one frame (leading FE bytes allowed, nothing after it)."""
    return framing.decode_one(raw, _frame_length, _decode_exact, FrameError)


class CJT188StreamDecoder(StartLengthDecoder[CJT188Frame]):
    """CJ/T 188 frames from a byte stream (`hearthgate.core.codec.StreamDecoder`).

    Leading FE bytes are skipped without a word; garbage and bad frames come out as
    `FrameError` values holding the bytes skipped. Stateless: `decode` may be asked about
    any bytes, in any order.
    """

    error = FrameError
    start = START
    filler = bytes([PREAMBLE])
    max_frame = 13 + MAX_DATA

    def frame_length(self, head: bytes) -> int | None:
        return _frame_length(head)

    def decode_frame(self, raw: bytes) -> CJT188Frame:
        return _decode_exact(raw)


# -- requests and replies ----------------------------------------------------------------------


def read_request(
    meter_type: int, address: str, ser: int, *, di: int = DI_CURRENT_FLOW,
    di_order: DiOrder = "high_first", preamble: int = 4,
) -> bytes:
    data = encode_di(di, di_order) + bytes([ser & 0xFF])
    return encode_frame(CJT188Frame(meter_type, address, READ, data), preamble)


def read_address_request(ser: int = 0, preamble: int = 4) -> bytes:
    data = encode_di(DI_ADDRESS) + bytes([ser & 0xFF])
    return encode_frame(CJT188Frame(ANY_TYPE, ANY_ADDRESS, READ_ADDRESS, data), preamble)


def valve_request(
    meter_type: int, address: str, ser: int, *, open_valve: bool,
    di_order: DiOrder = "high_first", preamble: int = 4,
) -> bytes:
    data = encode_di(DI_VALVE, di_order) + bytes(
        [ser & 0xFF, VALVE_OPEN if open_valve else VALVE_CLOSE]
    )
    return encode_frame(CJT188Frame(meter_type, address, WRITE, data), preamble)


def decode_request(frame: CJT188Frame) -> Request:
    if frame.is_reply:
        raise FrameError("direction", "a reply where a request was expected")
    if len(frame.data) < 3:
        raise FrameError("length", f"request with {len(frame.data)} data bytes, need DI and SER")
    di_raw = frame.data[:2]
    order: DiOrder = "high_first"
    di = int.from_bytes(di_raw, "big")
    for known in (DI_CURRENT_FLOW, DI_ADDRESS, DI_VALVE):
        found = _match_di(di_raw, known)
        if found is not None:
            di, order = known, found
            break
    return Request(
        meter_type=frame.meter_type, address=frame.address, function=frame.function, di=di,
        ser=frame.data[2], di_order=order, payload=frame.data[3:],
    )


def encode_flow_reply(
    meter_type: int, address: str, reading: FlowReading, *,
    di_order: DiOrder = "high_first", preamble: int = 0,
) -> bytes:
    data = (
        encode_di(DI_CURRENT_FLOW, di_order)
        + bytes([reading.ser & 0xFF])
        + _encode_total(reading.total)
        + bytes([reading.total_unit])
        + _encode_total(reading.settlement)
        + bytes([reading.settlement_unit])
        # A meter that FF-fills its settlement total keeps no clock either (the vectors).
        + encode_time(reading.meter_time, pad=reading.settlement is None)
        + (bytes([NOT_SUPPORTED]) * 2 if reading.status is None
           else bytes(reading.status[:2]).ljust(2, b"\0"))
    )
    return encode_frame(CJT188Frame(meter_type, address, READ | FLAG_REPLY, data), preamble)


def encode_error_reply(
    meter_type: int, address: str, ser: int, status: bytes = b"\x01\x00", *,
    function: int = READ, preamble: int = 0,
) -> bytes:
    data = bytes([ser & 0xFF]) + bytes(status[:2]).ljust(2, b"\0")
    control = function | FLAG_REPLY | FLAG_ERROR
    return encode_frame(CJT188Frame(meter_type, address, control, data), preamble)


def encode_address_reply(meter_type: int, address: str, ser: int, preamble: int = 0) -> bytes:
    data = encode_di(DI_ADDRESS) + bytes([ser & 0xFF])
    frame = CJT188Frame(meter_type, address, READ_ADDRESS | FLAG_REPLY, data)
    return encode_frame(frame, preamble)


def decode_reply(frame: CJT188Frame) -> FlowReading | ErrorReply:
    """Interpret a meter's reply to a DI 901F read (either DI byte order)."""
    if not frame.is_reply:
        raise FrameError("direction", "a request where a reply was expected")
    data = frame.data
    if frame.is_error:
        if len(data) != 3:
            raise FrameError("length", f"error reply with {len(data)} data bytes, expected 3")
        return ErrorReply(ser=data[0], status=data[1:3])
    if frame.function != READ:
        raise FrameError("control", f"unexpected reply function {frame.function:#04x}")
    if len(data) < 2 or _match_di(data[:2], DI_CURRENT_FLOW) is None:
        raise FrameError("di", f"reply for DI {data[:2].hex()}, expected 901F")
    if len(data) != 22:
        raise FrameError("length", f"901F reply with {len(data)} data bytes, expected 22")
    return FlowReading(
        ser=data[2],
        total=_decode_total(data[3:7]),
        total_unit=data[7],
        settlement=_decode_total(data[8:12]),
        settlement_unit=data[12],
        meter_time=decode_time(data[13:20]),
        status=None if _not_supported(data[20:22]) else bytes(data[20:22]),
    )
