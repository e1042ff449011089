"""The last log lines in memory, for `P/cmd/logs`: the platform's window into a gateway it
cannot reach by SSH.

`LogRing` is a logging handler keeping the newest records (a fixed number of lines, each
cut to a fixed length), already redacted: every secret registered with
`journal_logging.add_secret` (the uplink password, the config key, every `!secret` value)
is replaced by `***` before the line is kept, so nothing a command returns can hold one.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

from hearthgate.journal_logging import ReadableFormatter, redact
from hearthgate.uplink import CommandError

RING_LINES = 2000
MAX_LINE_CHARS = 1000
MAX_RESULT_BYTES = 48 * 1024  # of log text in one answer: well under any broker's limit
DEFAULT_LINES = 200
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}


class LogRing(logging.Handler):
    """Keeps the newest `capacity` log lines, redacted, for `tail`.

    Args:
        capacity: how many lines are kept; older ones are forgotten.
    """

    def __init__(self, capacity: int = RING_LINES) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(ReadableFormatter(timestamps=True))
        self._lines: deque[tuple[int, str]] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = redact(self.format(record))
        except Exception:
            self.handleError(record)
            return
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + " [cut]"
        with self._lock:
            self._lines.append((record.levelno, line))

    def tail(self, lines: int, level: int = logging.DEBUG,
             max_bytes: int = MAX_RESULT_BYTES) -> tuple[list[str], bool]:
        """The newest `lines` lines at `level` or above, oldest first, at most `max_bytes`
        of UTF-8 in all; and whether lines were left out for the byte bound."""
        with self._lock:
            kept = [text for levelno, text in self._lines if levelno >= level]
        out: list[str] = []
        size = 0
        for text in reversed(kept[-lines:] if lines > 0 else []):
            size += len(text.encode("utf-8", "replace")) + 1
            if size > max_bytes:
                return out[::-1], True
            out.append(text)
        return out[::-1], False


def logs_command(ring: LogRing, body: dict[str, Any]) -> dict[str, Any]:
    """`P/cmd/logs` `{"lines": 200, "level": "warning"}` -> `{"lines": [...], ...}`.

    Raises:
        CommandError: `lines` is not a positive whole number, or `level` is not a level.
    """
    lines = body.get("lines", DEFAULT_LINES)
    if isinstance(lines, bool) or not isinstance(lines, int) or lines < 1:
        raise CommandError("'lines' must be a positive whole number")
    level = body.get("level", "info")
    if not isinstance(level, str) or level.lower() not in LEVELS:
        raise CommandError(f"'level' must be one of {', '.join(LEVELS)}")
    # A million lines asked for: as many as the ring holds and the byte bound allows.
    got, cut = ring.tail(min(lines, RING_LINES), LEVELS[level.lower()])
    return {"lines": got, "level": level.lower(), "truncated": cut}
