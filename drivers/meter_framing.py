"""What DL/T 645 and CJ/T 188 framing share: BCD low byte first, sum checksums, one frame
decoded exactly. Sans-I/O; their stream decoders are `hearthgate.core.codec`'s
`StartLengthDecoder`.

Functions take the calling codec's error class so each codec keeps one error type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from hearthgate.core.codec import CodecError

PREAMBLE = 0xFE
START = 0x68
END = 0x16

F = TypeVar("F")


def bcd_to_int(raw: bytes, error: type[CodecError]) -> int:
    """Low-byte-first BCD to an integer."""
    value = 0
    for byte in reversed(raw):
        hi, lo = byte >> 4, byte & 0x0F
        if hi > 9 or lo > 9:
            raise error("bcd", f"not BCD: {raw.hex(' ')}", bytes(raw))
        value = value * 100 + hi * 10 + lo
    return value


def int_to_bcd(value: int, size: int, error: type[CodecError]) -> bytes:
    """An integer to `size` BCD bytes, low byte first."""
    if value < 0 or value >= 100**size:
        raise error("range", f"{value} does not fit {size} BCD bytes")
    out = bytearray()
    for _ in range(size):
        value, pair = divmod(value, 100)
        out.append((pair // 10) << 4 | pair % 10)
    return bytes(out)


_ADDRESS_CHARS = frozenset("0123456789A")


def encode_address(address: str, digits: int, error: type[CodecError]) -> bytes:
    """`123456789012` → `12 90 78 56 34 12`: BCD, low byte first; 'A' nibbles are wildcards."""
    if len(address) != digits or not set(address.upper()) <= _ADDRESS_CHARS:
        raise error("address", f"'{address}' is not {digits} digits")
    return bytes.fromhex(address)[::-1]


def decode_address(raw: bytes, digits: int, error: type[CodecError]) -> str:
    if len(raw) * 2 != digits:
        raise error("address", f"{len(raw)} address bytes, not {digits // 2}", bytes(raw))
    text = raw[::-1].hex().upper()
    if not set(text) <= _ADDRESS_CHARS:
        raise error("address", f"address bytes are not BCD: {raw.hex(' ')}", bytes(raw))
    return text


def normalize_address(
    address: str | int, digits: int, standard: str, error: type[CodecError]
) -> str:
    """What installers write (`5678`, `"000000005678"`) → all `digits` digits, zero-padded."""
    text = str(address).strip().upper()
    if not text or len(text) > digits or not set(text) <= _ADDRESS_CHARS:
        raise error("address", f"'{address}' is not a {standard} address (up to {digits} digits)")
    return text.rjust(digits, "0")


def checksum(raw: bytes | bytearray) -> int:
    """Sum of the bytes mod 256 (both standards)."""
    return sum(raw) & 0xFF


def check_trailer(raw: bytes, error: type[CodecError]) -> None:
    if raw[-1] != END:
        raise error("end", f"frame ends with {raw[-1]:02X}, not 16", raw)
    if checksum(raw[:-2]) != raw[-2]:
        raise error("checksum", f"checksum {raw[-2]:02X}, computed {checksum(raw[:-2]):02X}", raw)


def decode_one(
    raw: bytes,
    frame_length: Callable[[bytes], int | None],
    decode_exact: Callable[[bytes], F],
    error: type[CodecError],
) -> F:
    """Exactly one frame, leading FE allowed, nothing after it."""
    raw = bytes(raw).lstrip(bytes([PREAMBLE]))
    if not raw or raw[0] != START:
        raise error("header", "does not start with 68", raw)
    try:
        total = frame_length(raw)
    except CodecError as exc:
        raise error(exc.kind, exc.detail, raw) from None
    if total is None or len(raw) < total:
        raise error("truncated", f"{len(raw)} bytes, frame incomplete", raw)
    if len(raw) > total:
        raise error("trailing", f"{len(raw) - total} bytes after the frame", raw)
    return decode_exact(raw)
