"""Logging: to journald with structured fields under systemd, readable lines elsewhere.

The journal's native protocol (systemd.journal-fields(7), "Native Journal Protocol") is one
datagram per entry to /run/systemd/journal/socket: `KEY=value\\n` per field, or, for values
with newlines, `KEY\\n` + 64-bit little-endian length + value + `\\n`. No python-systemd
dependency. An entry too big for one datagram (the kernel's limit is around 200 KiB here)
goes in a sealed memfd whose descriptor is passed with SCM_RIGHTS, as sd_journal_send()
does; if that fails too the MESSAGE is cut to 32 KiB and sent again.

Structured fields come from `extra=`: `log.warning("...", extra={"device_id": "water-301"})`
becomes DEVICE_ID=water-301, so `journalctl -u hearthgate DEVICE_ID=water-301` finds it.

Secrets never reach a log line: strings registered with `add_secret()` (the uplink
password, once loaded) are replaced by `***` in every record, whatever logged it.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import logging
import os
import socket
import struct
import sys
import threading
import traceback
from pathlib import Path

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "hearthgate"
MESSAGE_CUT = 32 * 1024

# record attribute (from extra=) -> journal field
STRUCTURED_FIELDS = {
    "device_id": "DEVICE_ID",
    "site_id": "SITE_ID",
    "alert_id": "ALERT_ID",
    "error_kind": "ERROR_KIND",
    "bus_id": "BUS_ID",
    "task": "TASK",
}

_SYSLOG_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
                    (logging.INFO, 6))


def syslog_priority(levelno: int) -> int:
    for threshold, prio in _SYSLOG_PRIORITY:
        if levelno >= threshold:
            return prio
    return 7


# --- secrets --------------------------------------------------------------------------------

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def add_secret(value: str | None) -> None:
    """Never log `value` (call with each password/token once it is loaded)."""
    # Very short values would redact innocent text and hide nothing worth hiding.
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def clear_secrets() -> None:
    with _secrets_lock:
        _secrets.clear()


def redact(text: str) -> str:
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class SecretFilter(logging.Filter):
    """Rewrites each record's message (and exception text) with secrets replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = redact(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


# --- the native journal protocol ------------------------------------------------------------

def encode_field(name: str, value: str | bytes) -> bytes:
    data = value.encode("utf-8", "replace") if isinstance(value, str) else value
    key = name.encode("ascii")
    if b"\n" in data:
        return key + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return key + b"=" + data + b"\n"


def _field_value(value: object) -> str:
    return value if isinstance(value, str) else str(value)


class JournalHandler(logging.Handler):
    """Sends each record to journald as one native-protocol entry."""

    def __init__(self, socket_path: str = JOURNAL_SOCKET, *,
                 identifier: str = SYSLOG_IDENTIFIER, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.socket_path = socket_path
        self.identifier = identifier
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.addFilter(SecretFilter())

    def entry(self, record: logging.LogRecord) -> bytes:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{record.stack_info}"
        return self._encode(record, message)

    def _encode(self, record: logging.LogRecord, message: str) -> bytes:
        parts = [
            encode_field("MESSAGE", message),
            encode_field("PRIORITY", str(syslog_priority(record.levelno))),
            encode_field("SYSLOG_IDENTIFIER", self.identifier),
            encode_field("LOGGER", record.name),
            encode_field("CODE_FILE", record.pathname),
            encode_field("CODE_LINE", str(record.lineno)),
            encode_field("CODE_FUNC", record.funcName),
        ]
        for attr, field in STRUCTURED_FIELDS.items():
            value = getattr(record, attr, None)
            if value is not None:
                parts.append(encode_field(field, redact(_field_value(value))))
        return b"".join(parts)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = self.entry(record)
            try:
                self._sock.sendto(data, self.socket_path)
            except OSError as exc:
                if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                    raise
                if not self._send_via_memfd(data):
                    cut = record.getMessage()[:MESSAGE_CUT] + " [truncated]"
                    self._sock.sendto(self._encode(record, cut), self.socket_path)
        except Exception:
            self.handleError(record)

    def _send_via_memfd(self, data: bytes) -> bool:
        """Pass the entry as a sealed memfd (journald refuses unsealed ones)."""
        try:
            fd = os.memfd_create("hearthgate-journal",
                                 os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        except (OSError, AttributeError):
            return False
        try:
            os.write(fd, data)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                        fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
                        | fcntl.F_SEAL_SEAL)
            fds = array.array("i", [fd])
            self._sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)], 0,
                               self.socket_path)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        super().close()


# --- plain output ---------------------------------------------------------------------------

class ReadableFormatter(logging.Formatter):
    """`2026-11-23 01:20:00 WARNING gateway.uplink: text [device=water-301]`."""

    def __init__(self, *, timestamps: bool = True, syslog_prefix: bool = False) -> None:
        fmt = "%(asctime)s " if timestamps else ""
        super().__init__(fmt + "%(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
        self.syslog_prefix = syslog_prefix

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        tags = [f"{attr.removesuffix('_id')}={getattr(record, attr)}"
                for attr in STRUCTURED_FIELDS if getattr(record, attr, None) is not None]
        if tags:
            first, nl, rest = text.partition("\n")
            text = f"{first} [{' '.join(tags)}]{nl}{rest}"
        if self.syslog_prefix:
            # journald reads a `<N>` prefix on each stdout/stderr line as the priority.
            prefix = f"<{syslog_priority(record.levelno)}>"
            text = "\n".join(prefix + line for line in text.split("\n"))
        return redact(text)


def stderr_is_journal(environ: dict[str, str] | None = None) -> bool:
    """True when stderr is the journal stream systemd gave us ($JOURNAL_STREAM matches)."""
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


_installed: list[logging.Handler] = []


def setup_logging(level: str, *, journal: bool | None = None,
                  journal_socket: str = JOURNAL_SOCKET) -> None:
    """Configure the root logger once (calling again replaces what it installed).

    journal=None chooses: the native journal when stderr is the journal stream systemd set
    up for the service and the socket exists; otherwise readable lines on stderr (so
    `hearthgate check` in a terminal prints to the terminal even on a systemd machine).
    """
    root = logging.getLogger()
    for handler in _installed:
        root.removeHandler(handler)
        handler.close()
    _installed.clear()

    on_journal_stream = stderr_is_journal()
    if journal is None:
        journal = on_journal_stream and Path(journal_socket).exists()
    handler: logging.Handler
    if journal:
        handler = JournalHandler(journal_socket)
    else:
        # Under systemd without the native socket: no timestamps (journald adds them) and
        # syslog prefixes so priorities survive.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(ReadableFormatter(timestamps=not on_journal_stream,
                                               syslog_prefix=on_journal_stream))
        handler.addFilter(SecretFilter())
    root.addHandler(handler)
    _installed.append(handler)
    root.setLevel(getattr(logging, level.upper()))
    # Chatty libraries stay at warning unless we debug.
    for noisy in ("aiomqtt", "paho", "pymodbus", "asyncio", "aiosqlite"):
        logging.getLogger(noisy).setLevel(
            logging.DEBUG if level.lower() == "debug" else logging.WARNING)
