"""One shape for every stream codec: bytes in; frames, "need more", or errors out.

A serial line delivers bytes in whatever pieces it likes, with noise between frames and
now and then a damaged frame. Every codec of the gateway that cuts such a stream into
frames (DL/T 645 and CJ/T 188 meters, OSDP readers, the RFLink receiver) is a
`StreamDecoder`, so drivers and simulators read them all alike, the way pymodbus' framers
all share one `decode(data) -> (used, frame)`:

- `decode(data)` says what the first bytes of `data` are: a frame, bytes that are not one
  (the codec's error, as a value), bytes the protocol allows between frames, or "need more";
- `feed(chunk)` keeps the bytes between calls and returns everything complete, in order;
- `take(buffer)` does the same on a buffer someone else owns (a serial bus's receive
  buffer, which the bus clears between attempts).

After garbage or a damaged frame a decoder resynchronises on the next byte that can start
a frame, and reports the bytes it skipped as one error whose `data` is exactly those bytes:
a driver counts every one of them, and nothing is dropped in silence. The wire formats
and example frames are in docs/protocols.md.

Modbus RTU is not a `StreamDecoder`: drivers/modbus.py uses pymodbus' own framer and PDU
classes, and resynchronises on the unit and function code it expects.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Final, Generic, TypeVar

F = TypeVar("F")

# `decode`'s answer while the bytes so far could still become a frame.
NEED_MORE: Final[tuple[int, None]] = (0, None)


class CodecError(ValueError):
    """Input a codec cannot decode.

    Each codec has one error type, a subclass of this: its functions raise only that type
    on bad input, and its stream decoder returns it as a value.

    Args:
        kind: The fault in one word (`garbage`, `checksum`, `length`, ...); drivers count
            errors per device and kind.
        detail: The fault for a person reading the log.
        data: The offending bytes; from a stream decoder, exactly the bytes it skipped.
    """

    def __init__(self, kind: str, detail: str, data: bytes = b"") -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.data = bytes(data)


class StreamDecoder(ABC, Generic[F]):
    """Cuts a byte stream into frames of one protocol.

    Subclasses say what a frame looks like (`decode`, `error`, `max_frame`); this class
    buffers. Every decoder keeps the same promises (tests/spine/test_codec_contract.py):

    - frames come out whole and in stream order, however the bytes are split;
    - bytes that cannot be (part of) a frame, other than the filler the protocol allows,
      come out as errors of the codec's type, each holding the bytes skipped, before the
      frames that follow them;
    - an incomplete frame is kept until the rest arrives, but never more than `max_frame`
      bytes: a stream of noise cannot make the buffer grow.

    A decoder is cheap: make one per stream (or per request and reply).
    """

    error: ClassVar[type[CodecError]]
    # The longest frame the protocol allows, in bytes: more pending bytes cannot be one.
    max_frame: ClassVar[int]

    def __init__(self) -> None:
        self._buf = bytearray()

    @abstractmethod
    def decode(self, data: bytes) -> tuple[int, F | CodecError | None]:
        """What the first bytes of `data` are, and how many there are.

        - `(n, frame)`: a frame, in the first `n` bytes;
        - `(n, error)`: `n` bytes (n > 0) that are not a frame, `error.data` holds them;
        - `(n, None)`: `n` bytes (n > 0) the protocol allows between frames (DL/T 645's
          `FE` preamble, blank lines) or the rest of a fault already reported;
        - `NEED_MORE`, `(0, None)`: the bytes so far may still become a frame.

        `data` may hold less than all the pending bytes: a decoder judges by at most a few
        frames' worth. It does not keep `data`.
        """

    def take(self, buf: bytearray) -> F | CodecError | None:
        """The next frame or error at the start of `buf`, its bytes removed from `buf`;
        None when `buf` holds no more than the beginning of a frame."""
        window = 4 * self.max_frame
        while buf:
            used, item = self.decode(bytes(buf[:window]))
            if used == 0:
                if len(buf) <= self.max_frame:
                    return None
                # Longer than any frame yet "need more": never leave it to grow.
                junk = bytes(buf)
                buf.clear()
                return self.error("overflow", f"{len(junk)} bytes without a frame", junk)
            del buf[:used]
            if item is not None:
                return item
        return None

    def feed(self, data: bytes) -> list[F | CodecError]:
        """Add bytes from the stream; every frame and error now complete, in order."""
        self._buf += data
        out: list[F | CodecError] = []
        while (item := self.take(self._buf)) is not None:
            out.append(item)
        return out

    def pending(self) -> int:
        """Bytes held: the beginning of a frame still to come."""
        return len(self._buf)

    def reset(self) -> bytes:
        """Forget the pending bytes (the link was lost); returns them."""
        held = bytes(self._buf)
        self._buf.clear()
        return held


class StartLengthDecoder(StreamDecoder[F]):
    """Frames that begin with a start byte and give their own length in a short header,
    closed by a check (DL/T 645, CJ/T 188, OSDP).

    A start byte whose header or check proves it is no frame costs only the bytes up to the
    next start byte that may still be one, so a frame hidden behind noise is found; and an
    incomplete frame gives way to a whole one further on (its start byte was noise, and
    waiting for its rest would swallow the real frame).
    """

    start: ClassVar[int]
    # Bytes the protocol sends before a frame, skipped without a word (DL/T 645's FE).
    filler: ClassVar[bytes] = b""

    @abstractmethod
    def frame_length(self, head: bytes) -> int | None:
        """Total length of the frame that starts at `head[0]` (a start byte); None while the
        header is incomplete. Raises the codec's error when no frame can start there."""

    @abstractmethod
    def decode_frame(self, raw: bytes) -> F:
        """Exactly one whole frame (its length as `frame_length` said), or the codec's error."""

    def decode(self, data: bytes) -> tuple[int, F | CodecError | None]:
        if self.filler:
            skipped = len(data) - len(data.lstrip(self.filler))
            if skipped:
                return skipped, None
        if not data:
            return NEED_MORE
        if data[0] != self.start:
            cut = self._before_filler(data, self._next_candidate(data))
            return cut, self.error("garbage", f"{cut} bytes outside a frame", data[:cut])
        verdict = self._judge(data)
        if verdict is None:
            whole = self._next_whole_frame(data)
            if whole is None:
                return NEED_MORE
            cut = self._before_filler(data, whole)
            return cut, self.error(
                "truncated", f"{cut} bytes of a frame cut short by the next", data[:cut]
            )
        if isinstance(verdict, CodecError):
            cut = self._before_filler(data, self._next_candidate(data))
            return cut, self.error(verdict.kind, verdict.detail, data[:cut])
        return verdict

    def _before_filler(self, data: bytes, cut: int) -> int:
        """`cut`, moved back over the filler that belongs to the frame starting there."""
        while cut > 1 and cut < len(data) and data[cut - 1] in self.filler:
            cut -= 1
        return cut

    def _judge(self, data: bytes) -> tuple[int, F] | CodecError | None:
        """The frame at data[0] (a start byte): whole, disproven, or None (incomplete)."""
        try:
            total = self.frame_length(data)
            if total is None or len(data) < total:
                return None
            return total, self.decode_frame(data[:total])
        except CodecError as exc:
            return exc

    def _starts(self, data: bytes) -> list[int]:
        return [i for i in range(1, len(data)) if data[i] == self.start]

    def _next_candidate(self, data: bytes) -> int:
        """Where the next frame may start (a start byte not disproven); else len(data)."""
        for i in self._starts(data):
            if not isinstance(self._judge(data[i:]), CodecError):
                return i
        return len(data)

    def _next_whole_frame(self, data: bytes) -> int | None:
        for i in self._starts(data):
            if isinstance(self._judge(data[i:]), tuple):
                return i
        return None
