"""OSDP packets (sans-I/O): bytes in, packets out, and back, for both directions.

    53 ADDR LEN_lo LEN_hi CTRL [SCB…] CODE DATA… [MAC×4] CHECK

- ADDR: the peripheral's address 0–126 (0x7F broadcast); bit 7 is set in replies.
- LEN: the whole packet, SOM to the last check byte, little-endian.
- CTRL: bits 0–1 sequence number, bit 2 set = CRC-16 (2 bytes, low first) follows, clear =
  a 1-byte checksum; bit 3 set = a security control block follows CTRL.
- CRC-16/AUG-CCITT: poly 0x1021, init 0x1D0F, not reflected (check("123456789") = 0xE5CC).

The secure channel (SCB) is not spoken yet, but the packet model carries it: an SCB is
parsed into `scb`, and for the secure types SCS_15..SCS_18 the 4-byte MAC before the
check bytes is split off into `mac`, so a later secure-channel layer can verify and
decrypt without touching the framing.

Everything here raises `OSDPError` and nothing else on bad input; `OSDPStreamDecoder` returns
it as a value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hearthgate.core.codec import CodecError, StartLengthDecoder

SOM = 0x53
MARK = 0xFF  # OSDP 2.2 mark byte, may precede SOM
BROADCAST = 0x7F
REPLY_BIT = 0x80
CTRL_SQN = 0x03
CTRL_CRC = 0x04
CTRL_SCB = 0x08
HEADER_LEN = 5  # SOM ADDR LEN LEN CTRL
# The spec lets a PD announce its receive buffer (often 128 bytes); nothing we speak comes
# close to this, and a LEN beyond it is line noise, not a packet to wait for.
MAX_PACKET = 1024
# Secure blocks whose packets end in a 4-byte MAC (OSDP 2.2 §D).
MAC_SCB_TYPES = frozenset({0x15, 0x16, 0x17, 0x18})


class OSDPError(CodecError):
    """A packet or payload that is not valid OSDP: the codec's one error type."""


class Command(enum.IntEnum):
    POLL = 0x60
    ID = 0x61
    CAP = 0x62
    LSTAT = 0x64
    ISTAT = 0x65
    OSTAT = 0x66
    RSTAT = 0x67


class Reply(enum.IntEnum):
    ACK = 0x40
    NAK = 0x41
    PDID = 0x45
    PDCAP = 0x46
    LSTATR = 0x48
    ISTATR = 0x49
    OSTATR = 0x4A
    RSTATR = 0x4B
    RAW = 0x50
    FMT = 0x51
    KEYPAD = 0x53
    BUSY = 0x79


class NakCode(enum.IntEnum):
    NONE = 0x00
    BAD_CHECK = 0x01
    BAD_LENGTH = 0x02
    UNKNOWN_COMMAND = 0x03
    BAD_SEQUENCE = 0x04
    UNSUPPORTED_SECURITY = 0x05
    ENCRYPTION_REQUIRED = 0x06
    UNABLE_TO_PROCESS = 0x09


def crc16_aug_ccitt(data: bytes, crc: int = 0x1D0F) -> int:
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def checksum8(data: bytes) -> int:
    """The 1-byte checksum: the two's complement of the byte sum, so all bytes add to zero."""
    return -sum(data) & 0xFF


@dataclass(frozen=True, slots=True)
class OSDPPacket:
    address: int  # 0–127, without the reply bit
    code: int
    data: bytes = b""
    sequence: int = 0
    reply: bool = False
    use_crc: bool = True
    scb: bytes | None = None  # the whole security block (length, type, data) when present
    mac: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0x7F:
            raise OSDPError("range", f"address {self.address} is outside 0-127")
        if not 0 <= self.sequence <= 3:
            raise OSDPError("range", f"sequence {self.sequence} is outside 0-3")
        if not 0 <= self.code <= 0xFF:
            raise OSDPError("range", f"code {self.code} is not a byte")
        if self.scb is not None and (len(self.scb) < 2 or self.scb[0] != len(self.scb)):
            raise OSDPError("security", "security block length byte does not match its size")

    @property
    def scb_type(self) -> int | None:
        return self.scb[1] if self.scb else None

    def encode(self) -> bytes:
        return encode_packet(self)


def encode_packet(packet: OSDPPacket) -> bytes:
    ctrl = packet.sequence | (CTRL_CRC if packet.use_crc else 0)
    ctrl |= CTRL_SCB if packet.scb is not None else 0
    addr = packet.address | (REPLY_BIT if packet.reply else 0)
    body = bytes([ctrl]) + (packet.scb or b"") + bytes([packet.code]) + packet.data + packet.mac
    length = HEADER_LEN - 1 + len(body) + (2 if packet.use_crc else 1)
    if length > MAX_PACKET:
        raise OSDPError("length", f"packet of {length} bytes exceeds {MAX_PACKET}")
    head = bytes([SOM, addr]) + length.to_bytes(2, "little") + body
    if packet.use_crc:
        return head + crc16_aug_ccitt(head).to_bytes(2, "little")
    return head + bytes([checksum8(head)])


def decode_packet(frame: bytes) -> OSDPPacket:
    """Decode exactly one packet; any fault raises OSDPError."""
    if len(frame) < HEADER_LEN + 2:
        raise OSDPError("length", f"{len(frame)} bytes is too short for a packet", frame)
    if frame[0] != SOM:
        raise OSDPError("header", f"packet starts with {frame[0]:02X}, not 53", frame)
    length = int.from_bytes(frame[2:4], "little")
    if length != len(frame):
        raise OSDPError("length", f"LEN says {length} bytes, packet has {len(frame)}", frame)
    ctrl = frame[4]
    use_crc = bool(ctrl & CTRL_CRC)
    check_len = 2 if use_crc else 1
    head, check = frame[:-check_len], frame[-check_len:]
    if use_crc:
        expected = crc16_aug_ccitt(head)
        got = int.from_bytes(check, "little")
        if got != expected:
            raise OSDPError("checksum", f"CRC {got:04X}, expected {expected:04X}", frame)
    elif check[0] != checksum8(head):
        raise OSDPError(
            "checksum", f"checksum {check[0]:02X}, expected {checksum8(head):02X}", frame
        )
    pos = HEADER_LEN
    scb: bytes | None = None
    if ctrl & CTRL_SCB:
        if pos >= len(head):
            raise OSDPError("security", "security block missing", frame)
        scb_len = head[pos]
        if scb_len < 2 or pos + scb_len > len(head):
            raise OSDPError("security", f"security block length {scb_len} does not fit", frame)
        scb = bytes(head[pos : pos + scb_len])
        pos += scb_len
    if pos >= len(head):
        raise OSDPError("length", "command/reply code missing", frame)
    code = head[pos]
    payload = bytes(head[pos + 1 :])
    mac = b""
    if scb is not None and scb[1] in MAC_SCB_TYPES:
        if len(payload) < 4:
            raise OSDPError("security", "secure packet too short for its MAC", frame)
        payload, mac = payload[:-4], payload[-4:]
    return OSDPPacket(
        address=frame[1] & 0x7F,
        code=code,
        data=payload,
        sequence=ctrl & CTRL_SQN,
        reply=bool(frame[1] & REPLY_BIT),
        use_crc=use_crc,
        scb=scb,
        mac=mac,
    )


class OSDPStreamDecoder(StartLengthDecoder[OSDPPacket]):
    """OSDP packets from an RS-485 byte stream (`hearthgate.core.codec.StreamDecoder`),
    in both directions: the driver reads replies with it, the simulated readers commands.

    Garbage and bad packets come out as `OSDPError` values holding the bytes skipped; it
    resynchronises on the next SOM that may start a packet.
    """

    error = OSDPError
    start = SOM
    # The mark byte OSDP 2.2 puts before a packet (libosdp's control panel sends it and its
    # readers echo it): skipped without a word, like a meter's FE preamble.
    filler = bytes([MARK])
    max_frame = MAX_PACKET

    def frame_length(self, head: bytes) -> int | None:
        if len(head) < 4:
            return None
        length = int.from_bytes(head[2:4], "little")
        if length < HEADER_LEN + 2 or length > MAX_PACKET:
            # Line noise, not a packet to wait for.
            raise OSDPError("length", f"impossible LEN {length}")
        return length

    def decode_frame(self, raw: bytes) -> OSDPPacket:
        return decode_packet(raw)


def next_sequence(sequence: int) -> int:
    """The control panel's next sequence number: 1, 2, 3, 1, … (0 restarts a session)."""
    return sequence % 3 + 1


# --- payloads ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawCardRead:
    """osdp_RAW: a card's bits as the reader saw them."""

    reader: int
    format: int  # 0 = raw bit array, 1 = Wiegand
    bit_count: int
    bits: bytes

    @classmethod
    def decode(cls, data: bytes) -> RawCardRead:
        if len(data) < 4:
            raise OSDPError("payload", f"RAW needs at least 4 bytes, got {len(data)}", data)
        bit_count = int.from_bytes(data[2:4], "little")
        if bit_count == 0:
            # Not a card that was refused: a read that carries nothing is bad input.
            raise OSDPError("payload", "RAW card read with 0 bits", data)
        bits = bytes(data[4:])
        if len(bits) != (bit_count + 7) // 8:
            raise OSDPError(
                "payload", f"RAW says {bit_count} bits but carries {len(bits)} bytes", data
            )
        return cls(data[0], data[1], bit_count, bits)

    def encode(self) -> bytes:
        return bytes([self.reader, self.format]) + self.bit_count.to_bytes(2, "little") + self.bits


@dataclass(frozen=True, slots=True)
class LocalStatus:
    """osdp_LSTATR: the reader's own tamper switch and power supply."""

    tamper: bool
    power_fault: bool

    @classmethod
    def decode(cls, data: bytes) -> LocalStatus:
        if len(data) != 2 or data[0] > 1 or data[1] > 1:
            raise OSDPError("payload", f"LSTATR needs 2 bytes of 0/1, got {data.hex(' ')}", data)
        return cls(bool(data[0]), bool(data[1]))

    def encode(self) -> bytes:
        return bytes([int(self.tamper), int(self.power_fault)])


@dataclass(frozen=True, slots=True)
class InputStatus:
    """osdp_ISTATR: one byte per input, 1 = active."""

    inputs: tuple[bool, ...]

    @classmethod
    def decode(cls, data: bytes) -> InputStatus:
        if not data or any(b > 1 for b in data):
            raise OSDPError("payload", f"ISTATR needs bytes of 0/1, got {data.hex(' ')}", data)
        return cls(tuple(bool(b) for b in data))

    def encode(self) -> bytes:
        return bytes(int(b) for b in self.inputs)


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """osdp_PDID: who the peripheral is."""

    vendor: bytes  # 3-byte IEEE OUI
    model: int
    version: int
    serial: int
    firmware: tuple[int, int, int]

    @classmethod
    def decode(cls, data: bytes) -> DeviceIdentity:
        if len(data) != 12:
            raise OSDPError("payload", f"PDID needs 12 bytes, got {len(data)}", data)
        return cls(
            bytes(data[0:3]),
            data[3],
            data[4],
            int.from_bytes(data[5:9], "little"),
            (data[9], data[10], data[11]),
        )

    def encode(self) -> bytes:
        return (
            self.vendor
            + bytes([self.model, self.version])
            + self.serial.to_bytes(4, "little")
            + bytes(self.firmware)
        )

    @property
    def label(self) -> str:
        major, minor, build = self.firmware
        return (
            f"vendor {self.vendor.hex()} model {self.model} v{self.version} "
            f"serial {self.serial} fw {major}.{minor}.{build}"
        )


@dataclass(frozen=True, slots=True)
class Capability:
    function: int
    compliance: int
    count: int


def decode_capabilities(data: bytes) -> tuple[Capability, ...]:
    """osdp_PDCAP: triples of (function code, compliance level, number of items)."""
    if not data or len(data) % 3:
        raise OSDPError("payload", f"PDCAP needs a multiple of 3 bytes, got {len(data)}", data)
    return tuple(Capability(*data[i : i + 3]) for i in range(0, len(data), 3))


def encode_capabilities(caps: tuple[Capability, ...]) -> bytes:
    return b"".join(bytes([c.function, c.compliance, c.count]) for c in caps)


def decode_nak(data: bytes) -> int:
    if not data:
        raise OSDPError("payload", "NAK without an error code", data)
    return data[0]
