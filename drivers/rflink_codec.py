"""RFLink 433 MHz receiver lines (sans-I/O): bytes in, packets out; and a device matcher.

An RFLink receiver prints one line per radio packet it decodes:

    20;45;EV1527;ID=295FD59;SWITCH=3;CMD=ON;\\r\\n

`20` means "from the receiver", `45` is a rolling packet counter (hex), then the
protocol name and `KEY=VALUE;` pairs. Status lines (`20;00;Nodo RadioFrequencyLink - RFLink
Gateway V1.1 - R46;`, `20;01;OK;`) parse as packets without fields.

A device is matched by a `match:` string: `EV1527;ID=0x5a3c1`, optionally with
`;SWITCH=3` and/or `;CMD=ON`. IDs are hex and compared as numbers, so `0x5A3C1`,
`5a3c1` and `05A3C1` are the same button.

Everything here raises `RFLinkError` and nothing else on bad input; `RFLinkStreamDecoder`
returns it as a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hearthgate.core.codec import NEED_MORE, CodecError, StreamDecoder

# Real lines are well under 200 bytes; anything longer is a line that lost its newline.
MAX_LINE = 512
_KEY_RE = re.compile(r"^[A-Za-z0-9_]{1,32}$")
_PRINTABLE_RE = re.compile(r"^[\x20-\x7e]*$")
_LINE_START = b"20;"  # every line from a receiver begins so


class RFLinkError(CodecError):
    """A line or match string that is not valid RFLink: the codec's one error type."""


@dataclass(frozen=True, slots=True)
class RFLinkPacket:
    counter: int
    protocol: str
    fields: dict[str, str] = field(default_factory=dict)
    node: str = "20"

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
    if not protocol or "=" in protocol:
        raise RFLinkError("protocol", "protocol name missing")
    fields: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _KEY_RE.match(key):
            raise RFLinkError("field", f"'{pair}' is not KEY=VALUE")
        fields[key.upper()] = value
    return RFLinkPacket(counter=counter, protocol=protocol, fields=fields, node=node)


def encode_line(packet: RFLinkPacket) -> bytes:
    """The line a receiver would print for `packet` (for simulators)."""
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
