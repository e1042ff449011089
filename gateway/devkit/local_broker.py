"""A private mosquitto on a free loopback port, for tests, benchmarks and `hearthgate demo`.

It can be stopped and started again on the same port, which is how tests take
the platform's broker away and bring it back.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self


class BrokerUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


class BrokerProcess:
    """What every broker a test starts shares: a child process, a work directory removed on
    close when the broker made it, and use as a context manager (`with Broker() as b:`)."""

    proc: subprocess.Popen[bytes] | None
    workdir: Path
    _own_dir: bool

    def start(self, timeout: float = 10.0) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class MosquittoBroker(BrokerProcess):
    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path | None = None,
        port: int | None = None,
        *,
        tls: tuple[Path, Path, Path] | None = None,
        persistence: bool = True,
        extra: str = "",
    ) -> None:
        """`tls=(ca, cert, key)` adds a TLS listener on `tls_port` that requires a client
        certificate signed by `ca`; the plain listener on `port` stays. `persistence=False`
        is a broker that forgets everything when it dies; `extra` is appended to the config
        (`acl_file ...`, `max_queued_messages 10`: later lines win)."""
        binary = mosquitto_binary()
        if binary is None:
            raise BrokerUnavailable("mosquitto is not installed (apt-get install mosquitto)")
        self.binary = binary
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="hearthgate-broker-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf = self.workdir / f"mosquitto-{self.port}.conf"
        self.log = self.workdir / f"mosquitto-{self.port}.log"
        self.tls_port = free_port() if tls else None
        tls_conf = ""
        if tls:
            ca, cert, key = tls
            tls_conf = (
                f"listener {self.tls_port} {self.host}\n"
                f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
                "require_certificate true\n"
            )
        self.conf.write_text(
            # mosquitto started as root drops to its own user, which cannot read our
            # temporary files; stay whoever started it.
            f"user {getpass.getuser()}\n"
            "per_listener_settings false\n"
            f"listener {self.port} {self.host}\n"
            + tls_conf +
            "allow_anonymous true\n"
            # Persistent sessions survive a restart of the broker, as on a real platform.
            f"persistence {'true' if persistence else 'false'}\n"
            f"persistence_location {self.workdir}/\n"
            f"persistence_file mosquitto-{self.port}.db\n"
            "autosave_interval 0\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 0\n"
            "message_size_limit 0\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            + extra
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # A terminal's Ctrl-C must not kill the broker before the gateway using it stops.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerUnavailable(f"mosquitto exited: {self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerUnavailable(f"mosquitto did not listen on {self.port}: {self._log_tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the broker dies at once, with whatever it had not saved."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def reload(self) -> None:
        """SIGHUP: mosquitto reads its ACL and password files again."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text()[-500:]
        except OSError:
            return ""

