"""DL/T 645-2007 frames (Chinese electricity meters), sans-I/O: bytes in, frames out.

    [FE…] 68 A0…A5 68 C L DATA… CS 16

- the address is 12 BCD digits sent low byte first (`123456789012` → `12 90 78 56 34 12`);
  `AA` bytes are wildcards, `99…99` is broadcast;
- every DATA byte is sent +0x33 (the data identifier included); `DLT645Frame.data` holds
  the bytes *without* the offset;
- CS is the sum of all bytes from the first `68` to the end of DATA, mod 256.

Both directions are here (requests and replies, encode and decode) so the simulator and
the driver share one implementation. The only exception any function raises on bad input
is `FrameError`; `DLT645StreamDecoder` cuts a byte stream into frames and returns it as a
value (`hearthgate.core.codec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hearthgate.core.codec import CodecError, StartLengthDecoder
from hearthgate.drivers import meter_framing as framing

START = 0x68
END = 0x16
PREAMBLE = 0xFE
OFFSET = 0x33
MAX_DATA = 200  # the standard's limit for L

# Control codes (function part, bits 0-4) and flag bits.
READ = 0x11
READ_FOLLOW = 0x12
READ_ADDRESS = 0x13
FLAG_REPLY = 0x80
FLAG_ERROR = 0x40
FLAG_MORE = 0x20

BROADCAST_ADDRESS = "999999999999"
WILDCARD_ADDRESS = "AAAAAAAAAAAA"

# Error byte bits (after removing the offset).
ERROR_BITS = {
    0x01: "other error",
    0x02: "no such data",
    0x04: "wrong password or not authorized",
    0x08: "baud rate cannot be changed",
    0x10: "too many tariff periods a year",
    0x20: "too many daily periods",
    0x40: "too many tariffs",
}


class FrameError(CodecError):
    """Bad DL/T 645 input, the codec's one error type. `kind` names the fault (for per-device
    counters), `data` holds the offending bytes (from a stream, exactly those skipped)."""


@dataclass(frozen=True, slots=True)
class DataItem:
    """How one data identifier's value is laid out: `size` BCD bytes, `decimals`, sign bit."""

    di: int
    name: str
    size: int
    decimals: int
    signed: bool
    unit: str


DATA_ITEMS: dict[int, DataItem] = {
    item.di: item
    for item in (
        DataItem(0x00000000, "combined active energy", 4, 2, True, "kWh"),
        DataItem(0x00010000, "forward active energy", 4, 2, False, "kWh"),
        DataItem(0x02010100, "phase A voltage", 2, 1, False, "V"),
        DataItem(0x02020100, "phase A current", 3, 3, True, "A"),
        DataItem(0x02030000, "total active power", 3, 4, True, "kW"),
    )
}
DI_ADDRESS = 0x04000401  # the meter's communication address, 6 bytes


@dataclass(frozen=True, slots=True)
class DLT645Frame:
    address: str  # 12 characters: BCD digits, or 'A' for wildcard nibbles
    control: int
    data: bytes = b""  # without the +0x33 offset

    @property
    def is_reply(self) -> bool:
        return bool(self.control & FLAG_REPLY)

    @property
    def is_error(self) -> bool:
        return bool(self.control & FLAG_ERROR)

    @property
    def more_follows(self) -> bool:
        return bool(self.control & FLAG_MORE)

    @property
    def function(self) -> int:
        return self.control & 0x1F


@dataclass(frozen=True, slots=True)
class ReadReply:
    """A normal reply to a read: the identifier and its value (`Decimal`, or the address)."""

    address: str
    di: int
    value: Decimal | str
    more_follows: bool = False


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """The meter understood but refused; `code` is the error byte."""

    address: str
    function: int
    code: int

    @property
    def reasons(self) -> list[str]:
        found = [text for bit, text in ERROR_BITS.items() if self.code & bit]
        return found or [f"error code {self.code:#04x}"]


# -- address and BCD -------------------------------------------------------------------------


def encode_address(address: str) -> bytes:
    """12 digits (BCD, 'A' = wildcard nibble) → 6 bytes, low byte first."""
    return framing.encode_address(address, 12, FrameError)


def decode_address(raw: bytes) -> str:
    return framing.decode_address(raw, 12, FrameError)


def normalize_address(address: str | int) -> str:
    """Accept `5678` or `"000000005678"`: zero-padded to 12 digits, as on the nameplate."""
    return framing.normalize_address(address, 12, "DL/T 645", FrameError)


def bcd_to_int(raw: bytes) -> int:
    return framing.bcd_to_int(raw, FrameError)


def int_to_bcd(value: int, size: int) -> bytes:
    return framing.int_to_bcd(value, size, FrameError)


def decode_value(item: DataItem, raw: bytes) -> Decimal:
    if len(raw) != item.size:
        raise FrameError("length", f"{item.name}: {len(raw)} bytes, expected {item.size}", raw)
    negative = False
    if item.signed and raw[-1] & 0x80:
        negative = True
        raw = raw[:-1] + bytes([raw[-1] & 0x7F])
    magnitude = Decimal(bcd_to_int(raw)).scaleb(-item.decimals)
    return -magnitude if negative else magnitude


def encode_value(item: DataItem, value: Decimal | float | int) -> bytes:
    scaled = Decimal(str(value)).scaleb(item.decimals)
    if scaled != scaled.to_integral_value():
        raise FrameError("range", f"{value} has more than {item.decimals} decimals")
    n = int(scaled)
    if n < 0 and not item.signed:
        raise FrameError("range", f"{item.name} cannot be negative")
    raw = bytearray(int_to_bcd(abs(n), item.size))
    if item.signed and raw[-1] & 0x80:
        raise FrameError("range", f"{value} does not fit {item.name}")
    if n < 0:
        raw[-1] |= 0x80
    return bytes(raw)


def encode_di(di: int) -> bytes:
    return di.to_bytes(4, "little")


# -- frames ----------------------------------------------------------------------------------


def encode_frame(frame: DLT645Frame, preamble: int = 0) -> bytes:
    if len(frame.data) > MAX_DATA:
        raise FrameError("length", f"{len(frame.data)} data bytes, at most {MAX_DATA}")
    if not 0 <= frame.control <= 0xFF:
        raise FrameError("control", f"control {frame.control} out of range")
    body = bytearray([START])
    body += encode_address(frame.address)
    body += bytes([START, frame.control, len(frame.data)])
    body += bytes((b + OFFSET) & 0xFF for b in frame.data)
    body += bytes([framing.checksum(body), END])
    return bytes([PREAMBLE]) * preamble + bytes(body)


def _frame_length(buf: bytes | bytearray) -> int | None:
    """Total length of the frame starting at buf[0] (a 68), None if not known yet.
    Raises FrameError("header") when buf[0] cannot start a frame."""
    if len(buf) >= 8 and buf[7] != START:
        raise FrameError("header", "no second 68 after the address")
    if len(buf) < 10:
        return None
    length = buf[9]
    if length > MAX_DATA:
        raise FrameError("header", f"data length {length} over {MAX_DATA}")
    return 12 + length


def _decode_exact(raw: bytes) -> DLT645Frame:
    framing.check_trailer(raw, FrameError)
    address = decode_address(raw[1:7])
    data = bytes((b - OFFSET) & 0xFF for b in raw[10:-2])
    return DLT645Frame(address=address, control=raw[8], data=data)


def decode_frame(raw: bytes) -> DLT645Frame:
    """Decode exactly one frame (leading FE bytes allowed, nothing after it)."""
    return framing.decode_one(raw, _frame_length, _decode_exact, FrameError)


class DLT645StreamDecoder(StartLengthDecoder[DLT645Frame]):
    """DL/T 645 frames from a byte stream (`hearthgate.core.codec.StreamDecoder`).

    Leading FE bytes are skipped without a word; garbage and bad frames come out as
    `FrameError` values holding the bytes skipped. Stateless: `decode` may be asked about
    any bytes, in any order.
    """

    error = FrameError
    start = START
    filler = bytes([PREAMBLE])
    max_frame = 12 + MAX_DATA

    def frame_length(self, head: bytes) -> int | None:
        return _frame_length(head)

    def decode_frame(self, raw: bytes) -> DLT645Frame:
        return _decode_exact(raw)


# -- requests and replies ----------------------------------------------------------------------


def read_request(address: str, di: int, preamble: int = 4) -> bytes:
    return encode_frame(DLT645Frame(address, READ, encode_di(di)), preamble)


def read_address_request(preamble: int = 4) -> bytes:
    return encode_frame(DLT645Frame(WILDCARD_ADDRESS, READ_ADDRESS), preamble)


def decode_request(frame: DLT645Frame) -> tuple[int, int | None]:
    """(function, DI) of a master's request; DI is None for read-address."""
    if frame.is_reply:
        raise FrameError("direction", "a reply where a request was expected")
    if frame.function == READ_ADDRESS:
        return READ_ADDRESS, None
    if frame.function in (READ, READ_FOLLOW):
        if len(frame.data) < 4:
            raise FrameError("length", "read request without a data identifier")
        return frame.function, int.from_bytes(frame.data[:4], "little")
    raise FrameError("control", f"unsupported function {frame.function:#04x}")


def encode_read_reply(
    address: str, di: int, value: Decimal | float | int | str, *, more: bool = False,
    preamble: int = 0,
) -> bytes:
    """The meter's normal reply to a read of `di` (for simulators)."""
    if di == DI_ADDRESS:
        payload = encode_address(normalize_address(str(value)))
    else:
        item = DATA_ITEMS.get(di)
        if item is None:
            raise FrameError("di", f"unknown data identifier {di:08X}")
        if isinstance(value, str):
            value = Decimal(value)
        payload = encode_value(item, value)
    control = READ | FLAG_REPLY | (FLAG_MORE if more else 0)
    return encode_frame(DLT645Frame(address, control, encode_di(di) + payload), preamble)


def encode_address_reply(address: str, preamble: int = 0) -> bytes:
    frame = DLT645Frame(address, READ_ADDRESS | FLAG_REPLY, encode_address(address))
    return encode_frame(frame, preamble)


def encode_error_reply(address: str, code: int, function: int = READ, preamble: int = 0) -> bytes:
    frame = DLT645Frame(address, function | FLAG_REPLY | FLAG_ERROR, bytes([code & 0xFF]))
    return encode_frame(frame, preamble)


def decode_reply(frame: DLT645Frame) -> ReadReply | ErrorReply:
    """Interpret a meter's reply to a read or read-address request."""
    if not frame.is_reply:
        raise FrameError("direction", "a request where a reply was expected")
    if frame.is_error:
        if len(frame.data) != 1:
            raise FrameError("length", f"error reply with {len(frame.data)} data bytes")
        return ErrorReply(frame.address, frame.function, frame.data[0])
    if frame.function == READ_ADDRESS:
        return ReadReply(frame.address, DI_ADDRESS, decode_address(frame.data))
    if frame.function not in (READ, READ_FOLLOW):
        raise FrameError("control", f"unexpected reply function {frame.function:#04x}")
    if len(frame.data) < 4:
        raise FrameError("length", "reply without a data identifier")
    di = int.from_bytes(frame.data[:4], "little")
    payload = frame.data[4:]
    if di == DI_ADDRESS:
        return ReadReply(frame.address, di, decode_address(payload), frame.more_follows)
    item = DATA_ITEMS.get(di)
    if item is None:
        raise FrameError("di", f"unknown data identifier {di:08X}")
    return ReadReply(frame.address, di, decode_value(item, payload), frame.more_follows)
