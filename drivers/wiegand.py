"""Wiegand 26 and 34 bit card formats (sans-I/O): bits in, facility code and card number out.

Card readers deliver the raw bits a card carries; the outer two bits are parity bits:
the first is even parity over the first half of the payload, the last is odd parity
over the second half. A parity failure means a misread, never a card.

  26 bit (H10301): P FFFFFFFF NNNNNNNNNNNNNNNN P   (8-bit facility, 16-bit number)
  34 bit (H10306): P FFFFFFFFFFFFFFFF NNNNNNNNNNNNNNNN P   (16-bit facility, 16-bit number)
"""

from __future__ import annotations

from dataclasses import dataclass


class WiegandError(ValueError):
    """The bits are not a valid Wiegand 26/34 card (length or parity)."""


@dataclass(frozen=True, slots=True)
class WiegandFormat:
    name: str
    bit_count: int
    facility_bits: int
    number_bits: int


WIEGAND_26 = WiegandFormat("wiegand26", 26, 8, 16)
WIEGAND_34 = WiegandFormat("wiegand34", 34, 16, 16)
FORMATS: dict[int, WiegandFormat] = {f.bit_count: f for f in (WIEGAND_26, WIEGAND_34)}


@dataclass(frozen=True, slots=True)
class WiegandCard:
    format: str
    facility: int
    number: int

    @property
    def label(self) -> str:
        """`FC:number`, the way installers write cards down."""
        return f"{self.facility}:{self.number}"


def _ones(value: int) -> int:
    return bin(value).count("1")


def decode_bits(value: int, bit_count: int) -> WiegandCard:
    """Decode `bit_count` bits held in `value` (first transmitted bit is the most significant)."""
    fmt = FORMATS.get(bit_count)
    if fmt is None:
        raise WiegandError(f"unsupported Wiegand length {bit_count} (known: 26, 34)")
    if value < 0 or value >> bit_count:
        raise WiegandError(f"value does not fit in {bit_count} bits")
    payload_bits = bit_count - 2
    half = payload_bits // 2
    first_parity = (value >> (bit_count - 1)) & 1
    last_parity = value & 1
    payload = (value >> 1) & ((1 << payload_bits) - 1)
    first_half = payload >> half
    second_half = payload & ((1 << half) - 1)
    if (_ones(first_half) + first_parity) % 2 != 0:
        raise WiegandError("even parity (first bit) does not match")
    if (_ones(second_half) + last_parity) % 2 != 1:
        raise WiegandError("odd parity (last bit) does not match")
    facility = payload >> fmt.number_bits
    number = payload & ((1 << fmt.number_bits) - 1)
    return WiegandCard(fmt.name, facility, number)


def decode_bytes(data: bytes, bit_count: int) -> WiegandCard:
    """Decode bits packed most-significant first and padded with zeros at the end (OSDP RAW)."""
    needed = (bit_count + 7) // 8
    if len(data) < needed:
        raise WiegandError(f"{bit_count} bits need {needed} bytes, got {len(data)}")
    whole = int.from_bytes(data[:needed], "big")
    return decode_bits(whole >> (needed * 8 - bit_count), bit_count)


def decode_string(bits: str) -> WiegandCard:
    """Decode a string of '0'/'1' characters, as datasheets print them."""
    if not bits or set(bits) - {"0", "1"}:
        raise WiegandError("a bit string holds only 0 and 1")
    return decode_bits(int(bits, 2), len(bits))


def encode_bits(facility: int, number: int, bit_count: int = 26) -> int:
    """The bits of a card, parity included (for simulators and tests)."""
    fmt = FORMATS.get(bit_count)
    if fmt is None:
        raise WiegandError(f"unsupported Wiegand length {bit_count} (known: 26, 34)")
    if not 0 <= facility < 1 << fmt.facility_bits:
        raise WiegandError(f"facility code {facility} does not fit in {fmt.facility_bits} bits")
    if not 0 <= number < 1 << fmt.number_bits:
        raise WiegandError(f"card number {number} does not fit in {fmt.number_bits} bits")
    payload_bits = bit_count - 2
    half = payload_bits // 2
    payload = facility << fmt.number_bits | number
    even = _ones(payload >> half) % 2
    odd = 1 - _ones(payload & ((1 << half) - 1)) % 2
    return even << (bit_count - 1) | payload << 1 | odd


def encode_bytes(facility: int, number: int, bit_count: int = 26) -> bytes:
    """Bits packed most-significant first, zero-padded to whole bytes (OSDP RAW layout)."""
    nbytes = (bit_count + 7) // 8
    return (encode_bits(facility, number, bit_count) << (nbytes * 8 - bit_count)).to_bytes(
        nbytes, "big"
    )
