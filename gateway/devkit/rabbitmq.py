"""A private RabbitMQ with the `rabbitmq_mqtt` plugin on free loopback ports, for tests.

RabbitMQ is what a platform reaches for when one broker machine is not enough (it clusters);
its MQTT side differs from mosquitto's in ways the gateway and the fleet pattern must survive
(docs/mqtt-api.md). This runs Debian's package (`apt-get install rabbitmq-server`) as
whoever starts it, with everything in one directory: its own node name, Mnesia and log
directories, config file, enabled-plugins file, Erlang cookie (HOME), and its own epmd on a
free port, so that it touches no system RabbitMQ and several can run side by side.

Debian bookworm's 3.10 speaks MQTT 3.1.1 only (MQTT 5 came with RabbitMQ 3.13): a gateway
in front of it needs `uplink.protocol: 3.1.1`, and `receipts: true` to know the platform has
an alert (`hearthgate check` warns about 3.1.1 without receipts).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from hearthgate.devkit.local_broker import BrokerProcess, BrokerUnavailable, free_port


def rabbitmq_server_script() -> str | None:
    """The package's own start script (not /usr/sbin/rabbitmq-server, which insists on
    switching to the `rabbitmq` user and its system directories)."""
    found = sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server"))
    return found[-1] if found else None


def rabbitmq_version() -> str | None:
    script = rabbitmq_server_script()
    return Path(script).parent.parent.name.split("-", 1)[1] if script else None


class RabbitMqBroker(BrokerProcess):
    """`start()` returns once the MQTT listener accepts connections (RabbitMQ takes ~10-15 s
    on a loaded 2-core machine); `stop()` ends the node and its epmd; `close()` also removes a
    directory it made. `host` and `port` (the MQTT port) are what the gateway is given."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path | None = None) -> None:
        script = rabbitmq_server_script()
        if script is None or shutil.which("epmd") is None:
            raise BrokerUnavailable(
                "RabbitMQ is not installed (apt-get install rabbitmq-server; `make test` does)"
            )
        self.script = script
        self.version = rabbitmq_version()
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="hearthgate-rabbitmq-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.conf = self.workdir / "rabbitmq.conf"
        self.conf.write_text(
            f"listeners.tcp.default = {self.host}:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = {self.host}:{self.port}\n"
            "mqtt.allow_anonymous = true\n"
            # guest may then connect from loopback addresses other than 127.0.0.1 too.
            "loopback_users = none\n"
        )
        (self.workdir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        self.log_dir = self.workdir / "log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.epmd: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None
        self._out: IO[bytes] | None = None

    def _env(self) -> dict[str, str]:
        w = self.workdir
        return {
            **os.environ,
            "HOME": str(w),  # the Erlang cookie
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_NODENAME": f"hearthgate-{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(w / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.log_dir),
            "RABBITMQ_CONFIG_FILE": str(self.conf),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(w / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(w / "plugins-expand"),
        }

    def start(self, timeout: float = 120.0) -> RabbitMqBroker:
        if self.running:
            return self
        began = time.monotonic()
        # Our own epmd, in the foreground, so that stop() can end exactly it.
        self.epmd = subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port), "-address", self.host],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self._out = (self.workdir / "stdout.log").open("ab")
        self.proc = subprocess.Popen(
            [self.script], cwd=self.workdir, env=self._env(), stdout=self._out,
            stderr=subprocess.STDOUT,
            # Its own process group: stop() signals the node and its helpers, nothing else.
            start_new_session=True,
        )
        deadline = began + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self._log_tail()
                self.stop()
                raise BrokerUnavailable(f"rabbitmq-server exited: {tail}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    self.start_seconds = round(time.monotonic() - began, 1)
                    return self
            except OSError:
                time.sleep(0.1)
        tail = self._log_tail()
        self.stop()
        raise BrokerUnavailable(f"RabbitMQ's MQTT port {self.port} did not open: {tail}")

    def stop(self) -> None:
        for proc in (self.proc, self.epmd):
            if proc is None:
                continue
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
            # Helpers of the node (erl_child_setup, inet_gethost) share its group.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = self.epmd = None
        if self._out is not None:
            self._out.close()
            self._out = None

    def _log_tail(self) -> str:
        try:
            return (self.workdir / "stdout.log").read_text(errors="replace")[-800:]
        except OSError:
            return ""

