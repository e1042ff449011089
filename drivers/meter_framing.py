"""What DL/T 645 and CJ/T 188 framing share: BCD low byte first, sum checksums, and the
stream scan (skip FE, cut garbage, resync after a bad frame). Sans-I/O.

Functions take the calling codec's error class so each codec keeps one error type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

PREAMBLE = 0xFE
START = 0x68
END = 0x16

F = TypeVar("F")


class CodecError(Protocol):
    def __call__(self, kind: str, detail: str, data: bytes = b"") -> Exception: ...


def bcd_to_int(raw: bytes, error: CodecError) -> int:
    """Low-byte-first BCD to an integer."""
    value = 0
    for byte in reversed(raw):
        hi, lo = byte >> 4, byte & 0x0F
        if hi > 9 or lo > 9:
            raise error("bcd", f"not BCD: {raw.hex(' ')}", bytes(raw))
        value = value * 100 + hi * 10 + lo
    return value


def int_to_bcd(value: int, size: int, error: CodecError) -> bytes:
    """An integer to `size` BCD bytes, low byte first."""
    if value < 0 or value >= 100**size:
        raise error("range", f"{value} does not fit {size} BCD bytes")
    out = bytearray()
    for _ in range(size):
        value, pair = divmod(value, 100)
        out.append((pair // 10) << 4 | pair % 10)
    return bytes(out)


_ADDRESS_CHARS = frozenset("0123456789A")


def encode_address(address: str, digits: int, error: CodecError) -> bytes:
    """`123456789012` → `12 90 78 56 34 12`: BCD, low byte first; 'A' nibbles are wildcards."""
    if len(address) != digits or not set(address.upper()) <= _ADDRESS_CHARS:
        raise error("address", f"'{address}' is not {digits} digits")
    return bytes.fromhex(address)[::-1]


def decode_address(raw: bytes, digits: int, error: CodecError) -> str:
    if len(raw) * 2 != digits:
        raise error("address", f"{len(raw)} address bytes, not {digits // 2}", bytes(raw))
    text = raw[::-1].hex().upper()
    if not set(text) <= _ADDRESS_CHARS:
        raise error("address", f"address bytes are not BCD: {raw.hex(' ')}", bytes(raw))
    return text


def normalize_address(address: str | int, digits: int, standard: str, error: CodecError) -> str:
    """What installers write (`5678`, `"000000005678"`) → all `digits` digits, zero-padded."""
    text = str(address).strip().upper()
    if not text or len(text) > digits or not set(text) <= _ADDRESS_CHARS:
        raise error("address", f"'{address}' is not a {standard} address (up to {digits} digits)")
    return text.rjust(digits, "0")


def checksum(raw: bytes | bytearray) -> int:
    """Sum of the bytes mod 256 (both standards)."""
    return sum(raw) & 0xFF


def check_trailer(raw: bytes, error: CodecError) -> None:
    if raw[-1] != END:
        raise error("end", f"frame ends with {raw[-1]:02X}, not 16", raw)
    if checksum(raw[:-2]) != raw[-2]:
        raise error("checksum", f"checksum {raw[-2]:02X}, computed {checksum(raw[:-2]):02X}", raw)


def decode_one(
    raw: bytes,
    frame_length: Callable[[bytes], int | None],
    decode_exact: Callable[[bytes], F],
    error: CodecError,
) -> F:
    """Exactly one frame, leading FE allowed, nothing after it."""
    raw = bytes(raw).lstrip(bytes([PREAMBLE]))
    if not raw or raw[0] != START:
        raise error("header", "does not start with 68", raw)
    try:
        total = frame_length(raw)
    except ValueError as exc:
        raise error(getattr(exc, "kind", "header"), getattr(exc, "detail", str(exc)), raw) from None
    if total is None or len(raw) < total:
        raise error("truncated", f"{len(raw)} bytes, frame incomplete", raw)
    if len(raw) > total:
        raise error("trailing", f"{len(raw) - total} bytes after the frame", raw)
    return decode_exact(raw)


def scan(
    buf: bytearray,
    frame_length: Callable[[bytes], int | None],
    decode_exact: Callable[[bytes], F],
    error: CodecError,
) -> F | None:
    """Take the next frame from a receive buffer; None while more bytes are needed.

    Leading FE bytes are skipped silently. Anything else that cannot be a frame is removed
    from `buf` and raised as the codec's error (removed bytes in `.data`); the caller counts
    it and calls again. A bad frame loses only its first byte, so a real frame hidden
    inside it is still found.
    """
    while buf and buf[0] == PREAMBLE:
        del buf[0]
    if not buf:
        return None
    if buf[0] != START:
        cut = buf.find(START)
        cut = len(buf) if cut < 0 else cut
        junk = bytes(buf[:cut])
        del buf[:cut]
        raise error("garbage", f"{len(junk)} bytes outside a frame", junk)
    try:
        total = frame_length(bytes(buf[:16]))
    except ValueError as exc:
        del buf[0]
        kind = getattr(exc, "kind", "header")
        raise error(kind, getattr(exc, "detail", str(exc)), bytes([START])) from None
    if total is None or len(buf) < total:
        return None
    raw = bytes(buf[:total])
    try:
        frame = decode_exact(raw)
    except ValueError:
        del buf[0]
        raise
    del buf[:total]
    return frame
