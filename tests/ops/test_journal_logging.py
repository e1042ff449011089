"""Logging over a real AF_UNIX datagram socket standing in for journald."""

from __future__ import annotations

import array
import io
import logging
import os
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hearthgate import journal_logging as jl
from hearthgate.journal_logging import add_secret, clear_secrets, setup_logging


def parse_entry(data: bytes) -> dict[str, str]:
    """Decode one native-protocol entry (the way journald does)."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            i = nl + 1
        else:
            key = line
            (size,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            value = data[nl + 9:nl + 9 + size]
            assert data[nl + 9 + size:nl + 10 + size] == b"\n"
            i = nl + 10 + size
        assert key.decode().isupper() or "_" in key.decode()
        fields[key.decode()] = value.decode()
    return fields


class FakeJournald:
    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(2)
        self.via_fd = False

    def receive(self) -> dict[str, str]:
        data, ancdata, _, _ = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(4))
        self.via_fd = not data
        if not data:  # an entry passed as a file descriptor
            level, kind, raw = ancdata[0]
            assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
            fd = array.array("i", raw[:4])[0]
            try:
                with os.fdopen(fd, "rb", closefd=False) as f:
                    f.seek(0)
                    data = f.read()
                import fcntl
                seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
                assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SHRINK
            finally:
                os.close(fd)
        return parse_entry(data)


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[FakeJournald]:
    j = FakeJournald(tmp_path / "journal.socket")
    yield j
    j.sock.close()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    lg = logging.getLogger("gateway.test_journal")
    yield lg
    for h in list(logging.getLogger().handlers):
        if h in jl._installed:
            logging.getLogger().removeHandler(h)
            h.close()
    jl._installed.clear()
    clear_secrets()


def test_structured_fields(journald: FakeJournald, logger: logging.Logger) -> None:
    setup_logging("info", journal=True, journal_socket=journald.path)
    logger.warning("meter %s silent", "water-301",
                   extra={"device_id": "water-301", "site_id": "room-301",
                          "alert_id": "0193a6d0", "error_kind": "timeout"})
    e = journald.receive()
    assert e["MESSAGE"] == "meter water-301 silent"
    assert e["PRIORITY"] == "4"
    assert e["SYSLOG_IDENTIFIER"] == "hearthgate"
    assert e["LOGGER"] == "gateway.test_journal"
    assert e["CODE_FILE"] == __file__
    assert int(e["CODE_LINE"]) > 0
    assert e["CODE_FUNC"] == "test_structured_fields"
    assert (e["DEVICE_ID"], e["SITE_ID"], e["ALERT_ID"], e["ERROR_KIND"]) == (
        "water-301", "room-301", "0193a6d0", "timeout")
    logger.debug("not sent at info")
    logger.error("second")
    e = journald.receive()
    assert e["MESSAGE"] == "second" and e["PRIORITY"] == "3" and "DEVICE_ID" not in e


def test_priorities(journald: FakeJournald, logger: logging.Logger) -> None:
    setup_logging("debug", journal=True, journal_socket=journald.path)
    for fn, prio in ((logger.debug, "7"), (logger.info, "6"), (logger.warning, "4"),
                     (logger.error, "3"), (logger.critical, "2")):
        fn("x")
        assert journald.receive()["PRIORITY"] == prio


def test_multiline_and_exception(journald: FakeJournald, logger: logging.Logger) -> None:
    setup_logging("info", journal=True, journal_socket=journald.path)
    try:
        raise ValueError("bad frame\nsecond line")
    except ValueError:
        logger.exception("driver crashed", extra={"task": "bus:rs485-1"})
    e = journald.receive()
    assert e["MESSAGE"].startswith("driver crashed\nTraceback")
    assert "ValueError: bad frame\nsecond line" in e["MESSAGE"]
    assert e["TASK"] == "bus:rs485-1"


def test_large_message_goes_through_memfd(journald: FakeJournald, logger: logging.Logger) -> None:
    setup_logging("info", journal=True, journal_socket=journald.path)
    big = "x" * 400_000  # beyond the datagram limit
    logger.info("blob %s", big)
    e = journald.receive()
    assert e["MESSAGE"] == "blob " + big
    assert journald.via_fd


def test_large_message_truncated_without_memfd(
    journald: FakeJournald, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_memfd(*_: object) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "memfd_create", no_memfd)
    setup_logging("info", journal=True, journal_socket=journald.path)
    logger.info("blob %s", "y" * 400_000)
    e = journald.receive()
    assert e["MESSAGE"].endswith(" [truncated]")
    assert len(e["MESSAGE"]) == jl.MESSAGE_CUT + len(" [truncated]")


def test_secrets_never_logged(journald: FakeJournald, logger: logging.Logger) -> None:
    setup_logging("info", journal=True, journal_socket=journald.path)
    add_secret("s3cret-pa55")
    add_secret("ab")  # too short to redact safely: ignored
    logger.info("connecting with password=%s", "s3cret-pa55", extra={"device_id": "s3cret-pa55"})
    e = journald.receive()
    assert e["MESSAGE"] == "connecting with password=***"
    assert e["DEVICE_ID"] == "***"
    try:
        raise RuntimeError("auth failed for s3cret-pa55")
    except RuntimeError:
        logger.exception("uplink")
    e = journald.receive()
    assert "s3cret-pa55" not in e["MESSAGE"] and "auth failed for ***" in e["MESSAGE"]


def test_missing_journal_socket_does_not_crash(
    tmp_path: Path, logger: logging.Logger, capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("info", journal=True, journal_socket=str(tmp_path / "gone"))
    logger.info("into the void")  # handleError prints a note to stderr, nothing raises
    assert "into the void" in capsys.readouterr().err


def test_readable_stream(logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    setup_logging("info")  # auto: not on a journal stream -> plain lines
    add_secret("hunter22")
    logger.warning("no reply from %s (pw hunter22)", "water-301",
                   extra={"device_id": "water-301", "error_kind": "timeout"})
    line = buf.getvalue().strip()
    assert line.endswith(
        "WARNING gateway.test_journal: no reply from water-301 (pw ***) "
        "[device=water-301 error_kind=timeout]")
    assert line[:4].isdigit()  # timestamp first


def test_journal_stream_detection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  logger: logging.Logger) -> None:
    f = open(tmp_path / "stderr", "w+")
    monkeypatch.setattr(sys, "stderr", f)
    st = os.fstat(f.fileno())
    assert jl.stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    assert not jl.stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
    assert not jl.stderr_is_journal({"JOURNAL_STREAM": "garbage"})
    assert not jl.stderr_is_journal({})
    # On the journal stream but without the native socket: syslog prefixes, no timestamps.
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    setup_logging("info", journal_socket=str(tmp_path / "no-socket"))
    logger.error("two\nlines")
    f.flush()
    f.seek(0)
    assert f.read() == "<3>ERROR gateway.test_journal: two\n<3>lines\n"
    f.close()


def test_auto_picks_journal_on_journal_stream(
    tmp_path: Path, journald: FakeJournald, monkeypatch: pytest.MonkeyPatch,
    logger: logging.Logger,
) -> None:
    f = open(tmp_path / "stderr", "w+")
    monkeypatch.setattr(sys, "stderr", f)
    st = os.fstat(f.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    setup_logging("info", journal_socket=journald.path)
    logger.info("hello", extra={"site_id": "room-301"})
    e = journald.receive()
    assert e["MESSAGE"] == "hello" and e["SITE_ID"] == "room-301"
    f.close()


def test_setup_twice_replaces_handler(journald: FakeJournald, logger: logging.Logger) -> None:
    setup_logging("info", journal=True, journal_socket=journald.path)
    setup_logging("info", journal=True, journal_socket=journald.path)
    logger.info("once")
    assert journald.receive()["MESSAGE"] == "once"
    journald.sock.settimeout(0.1)
    with pytest.raises(TimeoutError):
        journald.sock.recv(100)
