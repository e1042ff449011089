"""RFLink 433 MHz receiver lines (sans-I/O): bytes in, packets out; and a device matcher.

An RFLink receiver prints one line per radio packet it decodes:

    20;45;EV1527;ID=295FD59;SWITCH=3;CMD=ON;\\r\\n

`20` means "from the receiver", `45` is a rolling packet counter (hex), then the
protocol name and `KEY=VALUE;` pairs. Besides radio packets (`kind == "device"`: they carry
an `ID=`), the receiver prints lines of its own, which parse too and are told apart by
`RFLinkPacket.kind` (docs/protocols.md, RFLink):

- `status`: the banner (`20;00;Nodo RadioFrequencyLink - RFLink Gateway V1.1 - R46;`),
  `OK`, `PONG`, `CMD UNKNOWN`, `STATUS;setRF433=ON;…`, messages
  (`20;00;Internal Pullup on RF-in disabled;`) and replies whose first field is a setting:
  `VER=1.1;REV=46;BUILD=04;`, `RFDEBUG=ON;`, `RFUDEBUG=OFF;`, `QRFDEBUG=ON;`; for these the
  protocol is the setting's name (`VER`) and its value is in `fields`;
- `debug`: `DEBUG;Pulses=90;Pulses(uSec)=1200,2760,…;` (RFDEBUG, RFUDEBUG and QRFDEBUG
  output, up to about 1 KiB) and `DEBUG;RTS P1;a63f…;`.

In status and debug lines a part that is not `KEY=VALUE` is kept in `text`; in a radio
packet it is an error.

A device is matched by a `match:` string: `EV1527;ID=0x5a3c1`, optionally with
`;SWITCH=3` and/or `;CMD=ON`. IDs are hex and compared as numbers, so `0x5A3C1`,
`5a3c1` and `05A3C1` are the same button.

Everything here raises `RFLinkError` and nothing else on bad input; `RFLinkStreamDecoder`
returns it as a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from hearthgate.core.codec import NEED_MORE, CodecError, StreamDecoder

# Radio packets are well under 200 bytes, but RFUDEBUG pulse dumps run to ~600 and more:
# anything longer than 1 KiB is a line that lost its newline.
MAX_LINE = 1024
_KEY_RE = re.compile(r"^[A-Za-z0-9_]{1,32}$")
# Keys the receiver itself prints in debug lines, e.g. `Pulses(uSec)`.
_DEBUG_KEY_RE = re.compile(r"^[A-Za-z0-9_() ]{1,32}$")
_PRINTABLE_RE = re.compile(r"^[\x20-\x7e]*$")
_LINE_START = b"20;"  # every line from a receiver begins so


class RFLinkError(CodecError):
    """A line or match string that is not valid RFLink: the codec's one error type."""


PacketKind = Literal["device", "status", "debug"]


@dataclass(frozen=True, slots=True)
class RFLinkPacket:
    """One line from the receiver.

    Attributes:
        counter: The rolling packet counter (0-255).
        protocol: The radio protocol (`EV1527`), or for status lines the receiver's word
            (`OK`, `PONG`, the banner, `VER`, `RFDEBUG`), `DEBUG` for debug lines.
        fields: `KEY=VALUE` pairs, keys upper-cased.
        kind: `device` for a radio packet (it has an `ID`), else `status` or `debug`.
        text: Parts of a status or debug line that are not `KEY=VALUE` (`RTS P1`).
    """

    counter: int
    protocol: str
    fields: dict[str, str] = field(default_factory=dict)
    node: str = "20"
    kind: PacketKind = "device"
    text: tuple[str, ...] = ()

    def get(self, key: str) -> str | None:
        return self.fields.get(key.upper())


def parse_line(line: bytes | str) -> RFLinkPacket:
    """Parse one line (with or without its CR/LF)."""
    if isinstance(line, bytes):
        if len(line) > MAX_LINE:
            raise RFLinkError("too_long", f"line of {len(line)} bytes is too long")
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError as exc:
            raise RFLinkError("ascii", "line is not ASCII") from exc
    else:
        text = line
    text = text.strip("\r\n")
    if len(text) > MAX_LINE:
        raise RFLinkError("too_long", f"line of {len(text)} characters is too long")
    if not _PRINTABLE_RE.match(text):
        raise RFLinkError("control", "line holds control characters")
    if not text.endswith(";"):
        raise RFLinkError("truncated", "line does not end with ';' (cut short?)")
    parts = text[:-1].split(";")
    if len(parts) < 3:
        raise RFLinkError("fields", "line has fewer than 3 fields")
    node, counter_text, protocol, *pairs = parts
    if node != "20":
        raise RFLinkError("node", f"line starts with '{node}', not '20' (not from a receiver)")
    if not 1 <= len(counter_text) <= 2:
        raise RFLinkError("counter", f"packet counter '{counter_text}' is not 1-2 hex digits")
    try:
        counter = int(counter_text, 16)
    except ValueError as exc:
        raise RFLinkError("counter", f"packet counter '{counter_text}' is not hex") from exc
    protocol = protocol.strip()
    if not protocol:
        raise RFLinkError("protocol", "protocol name missing")
    if "=" in protocol or protocol.upper() == "DEBUG":
        return _receiver_line(counter, protocol, pairs, node)
    fields: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _KEY_RE.match(key):
            raise RFLinkError("field", f"'{pair}' is not KEY=VALUE")
        fields[key.upper()] = value
    kind: PacketKind = "device" if "ID" in fields else "status"
    return RFLinkPacket(counter=counter, protocol=protocol, fields=fields, node=node, kind=kind)


def _receiver_line(counter: int, first: str, pairs: list[str], node: str) -> RFLinkPacket:
    """A line the receiver prints about itself: a setting's reply (`VER=1.1;REV=46;`,
    `RFDEBUG=ON;`) or debug output (`DEBUG;Pulses=…`). Never a radio packet, so it is
    read leniently: it cannot raise or stop an alarm, only be logged at debug."""
    debug = first.upper() == "DEBUG"
    parts = pairs if debug else [first, *pairs]
    fields: dict[str, str] = {}
    text: list[str] = []
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip()
        if sep and _DEBUG_KEY_RE.match(key):
            fields[key.upper()] = value.strip()
        elif part.strip():
            text.append(part.strip())
    name = "DEBUG" if debug else first.partition("=")[0].strip().upper()
    if not name:
        raise RFLinkError("protocol", "protocol name missing")
    if "ID" in fields:
        # An `ID=` only in a line that cannot be a packet: refuse rather than guess.
        raise RFLinkError("protocol", f"'{first}' is not a protocol name")
    return RFLinkPacket(counter=counter, protocol=name, fields=fields, node=node,
                        kind="debug" if debug else "status", text=tuple(text))


def encode_line(packet: RFLinkPacket) -> bytes:
    """The line a receiver would print for a radio or plain status `packet` (for
    simulators); debug lines and settings' replies are not encoded."""
    if packet.kind == "debug" or packet.text:
        raise RFLinkError("kind", "only radio packets and plain status lines are encoded")
    pairs = "".join(f"{k}={v};" for k, v in packet.fields.items())
    return f"{packet.node};{packet.counter & 0xFF:02X};{packet.protocol};{pairs}\r\n".encode(
        "ascii"
    )


class RFLinkStreamDecoder(StreamDecoder[RFLinkPacket]):
    """RFLink packets from the receiver's serial stream (`hearthgate.core.codec`).

    One line is one packet; blank lines are skipped. A line that does not parse comes out
    as an `RFLinkError` holding it, unless a good line starts at a later `20;` in it (noise
    when the port opened, a line cut short): then the bytes before it are the error, and
    the good line follows. A line that grows past `MAX_LINE` without a newline is reported
    once, when it gets too long, and its rest up to the newline is skipped as part of that
    error.
    """

    error = RFLinkError
    max_frame = MAX_LINE + 2  # the line and its CR LF

    def __init__(self) -> None:
        super().__init__()
        self._in_long_line = False

    def decode(self, data: bytes) -> tuple[int, RFLinkPacket | CodecError | None]:
        end = data.find(b"\n")
        if self._in_long_line:
            if end < 0:
                return len(data), None
            self._in_long_line = False
            return end + 1, None
        if end < 0:
            if len(data) <= MAX_LINE + 1:  # room for the line and its CR
                return NEED_MORE
            self._in_long_line = True
            return len(data), RFLinkError("too_long", f"line longer than {MAX_LINE} bytes", data)
        line = data[: end + 1]
        text = line.rstrip(b"\r\n")
        if not text.strip():
            return len(line), None
        try:
            return len(line), parse_line(text)
        except RFLinkError as exc:
            # Noise, or a line cut short, may run into a good line: resynchronise on a
            # later `20;` that starts one.
            begin = text.find(_LINE_START, 1)
            while begin > 0:
                try:
                    parse_line(text[begin:])
                except RFLinkError:
                    begin = text.find(_LINE_START, begin + 1)
                    continue
                return begin, RFLinkError(
                    exc.kind, f"{begin} bytes before a line: {exc.detail}", data[:begin]
                )
            return len(line), RFLinkError(exc.kind, exc.detail, line)

    def reset(self) -> bytes:
        self._in_long_line = False
        return super().reset()


def _hex_value(text: str) -> int | None:
    t = text.strip().lower()
    if t.startswith("0x"):
        t = t[2:]
    if not t or len(t) > 16:
        return None
    try:
        return int(t, 16)
    except ValueError:
        return None


def _same(expected: str, got: str | None) -> bool:
    if got is None:
        return False
    a, b = _hex_value(expected), _hex_value(got)
    if a is not None and b is not None:
        return a == b
    return expected.strip().upper() == got.strip().upper()


@dataclass(frozen=True, slots=True)
class RFLinkMatch:
    """Which packets belong to one device: protocol + ID, optionally SWITCH and CMD."""

    protocol: str
    id: int
    switch: str | None = None
    cmd: str | None = None

    @classmethod
    def parse(cls, text: str) -> RFLinkMatch:
        parts = [p.strip() for p in text.strip().strip(";").split(";") if p.strip()]
        if not parts or "=" in parts[0]:
            raise RFLinkError(
                "match", f"match '{text}' must start with the protocol name, like EV1527;ID=0x5a3c1"
            )
        protocol, keys = parts[0], {}
        for pair in parts[1:]:
            key, sep, value = pair.partition("=")
            key = key.strip().upper()
            if not sep or key not in {"ID", "SWITCH", "CMD"} or not value.strip():
                raise RFLinkError(
                    "match",
                    f"'{pair}' in match '{text}': use ID=…, SWITCH=… or CMD=… (e.g. CMD=ON)",
                )
            if key in keys:
                raise RFLinkError("match", f"'{key}' appears twice in match '{text}'")
            keys[key] = value.strip()
        if "ID" not in keys:
            raise RFLinkError(
                "match", f"match '{text}' needs an ID=… (hex, as the receiver prints it)"
            )
        ident = _hex_value(keys["ID"])
        if ident is None:
            raise RFLinkError(
                "match", f"ID '{keys['ID']}' in match '{text}' is not a hex number"
            )
        cmd = keys.get("CMD")
        return cls(protocol, ident, keys.get("SWITCH"), cmd.upper() if cmd else None)

    def matches(self, packet: RFLinkPacket) -> bool:
        if packet.protocol.upper() != self.protocol.upper():
            return False
        got_id = packet.get("ID")
        if got_id is None or _hex_value(got_id) != self.id:
            return False
        if self.switch is not None and not _same(self.switch, packet.get("SWITCH")):
            return False
        return self.cmd is None or (packet.get("CMD") or "").upper() == self.cmd

    def describe(self) -> str:
        text = f"{self.protocol};ID={self.id:X}"
        if self.switch is not None:
            text += f";SWITCH={self.switch}"
        if self.cmd is not None:
            text += f";CMD={self.cmd}"
        return text


_CODE_KEYS = ("SWITCH", "CMD")


@dataclass(frozen=True, slots=True)
class RFLinkCode:
    """The part of a packet that tells one code of a device from another: `SWITCH=2`,
    `CMD=ON`, or both (`SWITCH=2;CMD=ON`). An EV1527 door contact sends its open and its
    close code with one ID, differing only in `SWITCH`."""

    switch: str | None = None
    cmd: str | None = None

    @classmethod
    def parse(cls, text: str) -> RFLinkCode:
        keys: dict[str, str] = {}
        for pair in (p.strip() for p in text.strip().strip(";").split(";")):
            if not pair:
                continue
            key, sep, value = pair.partition("=")
            key = key.strip().upper()
            if not sep or key not in _CODE_KEYS or not value.strip():
                raise RFLinkError(
                    "code", f"'{pair}' in '{text}': use SWITCH=… and/or CMD=… (e.g. SWITCH=2)"
                )
            if key in keys:
                raise RFLinkError("code", f"'{key}' appears twice in '{text}'")
            keys[key] = value.strip()
        if not keys:
            raise RFLinkError("code", f"'{text}' names no code: use SWITCH=… and/or CMD=…")
        cmd = keys.get("CMD")
        return cls(keys.get("SWITCH"), cmd.upper() if cmd else None)

    def matches(self, packet: RFLinkPacket) -> bool:
        if self.switch is not None and not _same(self.switch, packet.get("SWITCH")):
            return False
        return self.cmd is None or (packet.get("CMD") or "").upper() == self.cmd

    def same_as(self, other: RFLinkCode) -> bool:
        """Whether both name the same code (`SWITCH=2` and `SWITCH=02` do)."""
        switches = (self.switch is None and other.switch is None) or (
            self.switch is not None and _same(self.switch, other.switch))
        return switches and self.cmd == other.cmd

    def describe(self) -> str:
        parts = [f"SWITCH={self.switch}"] if self.switch is not None else []
        if self.cmd is not None:
            parts.append(f"CMD={self.cmd}")
        return ";".join(parts)


# Keys that carry a device's state, in the order they are read (RFLink protocol reference:
# `CMD=ON|OFF|ALLON|ALLOFF|UP|DOWN|STOP|…`, `PIR=ON|OFF`, `SMOKEALERT=ON|OFF`).
VALUE_KEYS = ("CMD", "PIR", "SMOKEALERT")


def packet_value(packet: RFLinkPacket) -> tuple[str, str] | None:
    """`(key, VALUE)` of the first state key the packet carries, upper-cased; None if it
    carries none (a battery or weather report, a doorbell's `CHIME=`)."""
    for key in VALUE_KEYS:
        value = packet.get(key)
        if value is not None:
            return key, value.strip().upper()
    return None
