"""Fleet operations end to end: config push and rollback, health on P/status, logs, restart.

A real platform broker and a real home (zigbee2mqtt) broker; the gateway is the real
`GatewayRunner` (what `hearthgate run` runs) in this event loop, so the rule engine can be
looked at directly; its SQLite store and config files are real files.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from hearthgate.config_files import config_hash
from hearthgate.config_push import signature
from hearthgate.devkit.local_broker import MosquittoBroker, free_port
from hearthgate.devkit.testkit import PlatformSubscriber
from hearthgate.journal_logging import add_secret, clear_secrets
from hearthgate.log_ring import LogRing
from hearthgate.runner import EXIT_RESTART, EXIT_STOPPED, GatewayRunner
from hearthgate.simulators.links import PtyLink
from hearthgate.simulators.meter_bus import MeterBusSimulator
from hearthgate.simulators.meter_models import CJT188Meter
from tests.faults.faultkit import press_sos, wait_until

GW = "gw-fleet-0001"
P = f"hearthgate/{GW}"
PASSWORD = "uplink-pass-7Qz9"
KEY = "config-key-Xq81"


def config_text(tmp: Path, platform_port: int, home_port: int, *, extra_device: str = "",
                host: str = "127.0.0.1") -> str:
    return f"""gateway:
  id: {GW}
  timezone: Asia/Shanghai
  data_dir: {tmp / "data"}
  language: en
uplink:
  host: {host}
  port: {platform_port}
  topic_prefix: hearthgate
  keepalive: 5s
  telemetry_interval: 1s
  password: !secret uplink_password
  config_key: !secret config_key
  config_rollback_after: 5s
buses:
  - {{id: zigbee, type: mqtt, host: 127.0.0.1, port: {home_port}}}
  - {{id: rs485-1, type: serial, port: "{tmp / 'ttyMETER'}", baudrate: 2400}}
devices:
  - {{id: sos-301, site: room-301, kind: sos_button, protocol: zigbee2mqtt, bus: zigbee,
      topic: zigbee2mqtt/sos_301, model: generic}}
  - {{id: water-301, site: room-301, kind: water_meter, protocol: cjt188, bus: rs485-1,
      address: "00000000001234", poll: 5m}}
{extra_device}sites:
  - id: room-301
    resident: r-301
    rules:
      - {{type: sos, repeat_window: 0s}}
      - {{type: no_water, window: 12h}}
"""


class Fleet:
    """The platform's side: push configs and commands, read results."""

    def __init__(self, platform: PlatformSubscriber) -> None:
        self.platform = platform
        self.n = 0

    async def command(self, name: str, body: dict[str, Any]) -> None:
        await self.platform.publish(f"{P}/cmd/{name}", body)

    async def push(self, text: str, base: str, *, key: str = KEY, sig: str | None = None,
                   **extra: Any) -> str:
        self.n += 1
        push_id = f"push-{self.n}"
        body = {"id": push_id, "yaml": text, "base": base,
                "sig": sig if sig is not None else signature(key.encode(), text.encode()),
                **extra}
        await self.command("config", body)
        return push_id

    async def result(self, command_id: str, step: str | None = None,
                     timeout: float = 20) -> dict[str, Any]:
        found = await self.platform.wait_json(
            f"{P}/cmd/result",
            lambda b: b.get("id") == command_id and (step is None or b.get("step") == step),
            timeout=timeout,
        )
        return found[0]


def write_files(tmp: Path, text: str) -> Path:
    (tmp / "secrets.yaml").write_text(
        f"uplink_password: {PASSWORD}\nconfig_key: {KEY}\n", encoding="utf-8")
    path = tmp / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def platform_broker(broker: MosquittoBroker) -> MosquittoBroker:
    return broker


def no_water_counted(runner: GatewayRunner) -> float:
    assert runner.gateway is not None
    rule = runner.gateway.engine.rules_by_site["room-301"][1]
    assert rule.type_name == "no_water"
    now = runner.gateway.clock.now()
    return float(rule.snapshot(now)["counted"])


async def online(platform: PlatformSubscriber, after: int = 0, timeout: float = 20) -> dict:
    def found() -> bool:
        return len([m for m in platform.on(f"{P}/status") if m.json().get("state") == "online"]
                   ) > after
    await wait_until(found, timeout, "the gateway to be online")
    return [m.json() for m in platform.on(f"{P}/status")][-1]


def sos_lines(ring: LogRing) -> int:
    return sum("alert sos " in line for line in ring.tail(2000)[0])


def zigbee_connects(ring: LogRing) -> int:
    return sum("bus zigbee connected" in line for line in ring.tail(2000)[0])


def online_count(platform: PlatformSubscriber) -> int:
    return len([m for m in platform.on(f"{P}/status") if m.json().get("state") == "online"])


async def test_config_push_apply_refuse_and_roll_back(
    tmp_path: Path, platform_broker: MosquittoBroker, home_broker: MosquittoBroker
) -> None:
    text = config_text(tmp_path, platform_broker.port, home_broker.port)
    path = write_files(tmp_path, text)
    ring = LogRing()
    import logging
    logging.getLogger().addHandler(ring)
    old_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    stop = asyncio.Event()
    runner = GatewayRunner(path, ring=ring)
    link = PtyLink(tmp_path / "ttyMETER")
    link.plug()
    meters = MeterBusSimulator(link, [CJT188Meter(address="00000000001234")])
    meter_task = asyncio.create_task(meters.run())
    async with (
        PlatformSubscriber("127.0.0.1", platform_broker.port, ("hearthgate/#",)) as platform,
        PlatformSubscriber("127.0.0.1", home_broker.port, ("zigbee2mqtt/#",)) as zigbee,
    ):
        fleet = Fleet(platform)
        task = asyncio.create_task(runner.run(stop))
        try:
            status = await online(platform)
            # -- health on P/status: every field, read from the retained message ---------
            for field in ("version", "build", "uptime_s", "config_hash", "outbox",
                          "disk_free_mb", "clock_synced", "store_degraded", "ts"):
                assert field in status, (field, status)
            assert status["config_hash"] == config_hash(text.encode())
            assert set(status["outbox"]) == {"urgent", "alert", "telemetry"}
            assert isinstance(status["disk_free_mb"], int) and status["disk_free_mb"] > 0
            assert set(status["build"]) >= {"tag", "commit"}
            await wait_until(lambda: "bus zigbee connected" in "\n".join(ring.tail(2000)[0]),
                             20, "the zigbee bus")
            base = config_hash(text.encode())

            # -- refused: bad signature, another base, not YAML, too big, invalid ---------
            pid = await fleet.push(text, base, sig="00" * 32)
            r = await fleet.result(pid)
            assert r["ok"] is False and "signature" in r["error"]
            pid = await fleet.push(text, base, key="not-the-key")
            assert "signature" in (await fleet.result(pid))["error"]
            pid = await fleet.push(text, "ab" * 32)
            r = await fleet.result(pid)
            assert r["ok"] is False and "base" in r["error"] and r["config_hash"] == base
            pid = await fleet.push("gateway: [unclosed\n  : :", base)
            r = await fleet.result(pid)
            assert r["ok"] is False and r["errors"] and r["errors"][0]["line"] >= 1
            pid = await fleet.push("#" * (256 * 1024 + 1), base)
            assert "256 KiB" in (await fleet.result(pid))["error"]
            bad = text.replace("window: 12h", "windw: 12h")
            pid = await fleet.push(bad, base)
            r = await fleet.result(pid)
            assert r["ok"] is False
            line = bad.splitlines().index("      - {type: no_water, windw: 12h}") + 1
            assert any(e["line"] == line and e["col"] > 1 for e in r["errors"]), r
            assert f"pushed config:{line}:" in r["error"]
            assert path.read_text() == text  # nothing changed
            assert not (tmp_path / "config.yaml.pending").exists()
            await fleet.command("frobnicate", {"id": "x1"})
            assert (await fleet.result("x1"))["ok"] is False

            # -- a valid push that adds a device: applied, no_water keeps counting --------
            await asyncio.sleep(1.5)
            counted_before = no_water_counted(runner)
            assert counted_before >= 1.0
            added = config_text(
                tmp_path, platform_broker.port, home_broker.port,
                extra_device="  - {id: pir-301, site: room-301, kind: motion_sensor,"
                             " protocol: zigbee2mqtt, bus: zigbee, topic: zigbee2mqtt/pir_301}\n")
            online_before = online_count(platform)
            pid = await fleet.push(added, base)
            r = await fleet.result(pid, "accepted")
            assert r["ok"] is True and r["config_hash"] == config_hash(added.encode())
            r = await fleet.result(pid, "applied")
            assert r["ok"] is True
            status = await online(platform, online_before)
            assert status["config_hash"] == config_hash(added.encode())
            assert runner.gateway is not None
            assert "pir-301" in {d.id for d in runner.gateway.config.devices}
            # The window that ran before the push goes on: not restarted from zero.
            assert no_water_counted(runner) >= counted_before
            assert path.read_bytes() == added.encode()
            assert (tmp_path / "config.yaml.prev").read_bytes() == text.encode()
            # SOS after the push: raised and delivered.
            await wait_until(lambda: "bus zigbee connected" in "\n".join(ring.tail(2000)[0][-50:]),
                             20, "the zigbee bus on the new config")
            await press_sos(zigbee, "room-301")
            first = await platform.wait_json(f"{P}/alerts", lambda b: b["type"] == "sos"
                                             and b["state"] == "raised", timeout=20)
            # Acknowledged (an SOS clears on ack), so that the next press raises a new one.
            await fleet.command("ack", {"id": "a1", "alert_id": first[0]["alert_id"]})
            assert (await fleet.result("a1"))["ok"] is True
            await platform.wait_json(f"{P}/alerts", lambda b: b["type"] == "sos"
                                     and b["state"] == "cleared", timeout=20)

            # -- a push that takes the uplink away: rolled back within the bound ----------
            dead = config_text(tmp_path, free_port(), home_broker.port,
                               extra_device="  - {id: pir-301, site: room-301, kind:"
                               " motion_sensor, protocol: zigbee2mqtt, bus: zigbee,"
                               " topic: zigbee2mqtt/pir_301}\n")
            base = config_hash(added.encode())
            online_before = online_count(platform)
            zigbee_ups = zigbee_connects(ring)
            pid = await fleet.push(dead, base)
            assert (await fleet.result(pid, "accepted"))["ok"] is True
            sent = time.monotonic()
            # An SOS while the gateway runs on the dead uplink: stored, sent after rollback.
            await wait_until(lambda: runner.gateway is not None and runner.gateway.config
                             .uplink.port != platform_broker.port, 10, "the new config")
            await wait_until(lambda: zigbee_connects(ring) > zigbee_ups, 10,
                             "the zigbee bus on the dead-uplink config")
            sos_before = len([m for m in platform.on(f"{P}/alerts") if m.json()["type"] == "sos"])
            raised = sos_lines(ring)
            for n in range(1, 12):  # pressed again until the rules hear it (the bus is new)
                await press_sos(zigbee, "room-301", n)
                await asyncio.sleep(0.3)
                if sos_lines(ring) > raised:
                    break
            assert sos_lines(ring) > raised
            assert not any("rolling back" in line for line in ring.tail(2000)[0])
            r = await fleet.result(pid, "rolled_back", timeout=30)
            rolled = time.monotonic() - sent
            assert r["ok"] is False and "did not come back within 5s" in r["error"]
            assert r["config_hash"] == base and r["rejected_hash"] == config_hash(dead.encode())
            status = await online(platform, online_before)
            assert status["config_hash"] == base
            assert path.read_bytes() == added.encode()
            assert (tmp_path / "config.yaml.rejected").read_bytes() == dead.encode()
            await wait_until(lambda: len([m for m in platform.on(f"{P}/alerts")
                                          if m.json()["type"] == "sos"]) > sos_before,
                             20, "the SOS pressed on probation")
            print(f"rolled back and online again {rolled:.1f}s after the push (bound 5s)")

            # -- logs: recent lines, bounded, the password nowhere -------------------------
            await fleet.command("logs", {"id": "l1", "lines": 1_000_000, "level": "info"})
            r = await fleet.result("l1")
            assert r["ok"] is True and r["lines"]
            assert any("rolling back" in line for line in r["lines"])
            raw_results = "\n".join(m.payload.decode(errors="replace")
                                    for m in platform.on(f"{P}/cmd/result"))
            assert PASSWORD not in raw_results and KEY not in raw_results
            assert len(json.dumps(r).encode()) < 64 * 1024
            await fleet.command("logs", {"id": "l2", "lines": -1})
            assert (await fleet.result("l2"))["ok"] is False
            await fleet.command("logs", {"id": "l3", "level": "loud"})
            assert (await fleet.result("l3"))["ok"] is False

            # -- restart: a clean stop, exit status for systemd ----------------------------
            await fleet.command("restart", {"id": "rs1"})
            assert (await fleet.result("rs1"))["restarting"] is True
            assert await asyncio.wait_for(task, 20) == EXIT_RESTART
            await platform.wait_json(f"{P}/status", lambda b: b.get("state") == "offline",
                                     timeout=10)
        finally:
            stop.set()
            if not task.done():
                assert await asyncio.wait_for(task, 20) == EXIT_STOPPED
            logging.getLogger().removeHandler(ring)
            logging.getLogger().setLevel(old_level)
            meter_task.cancel()
            link.unplug()


async def test_push_refused_without_a_config_key(
    tmp_path: Path, platform_broker: MosquittoBroker, home_broker: MosquittoBroker
) -> None:
    text = config_text(tmp_path, platform_broker.port, home_broker.port).replace(
        "      - {type: no_water, window: 12h}\n", "").replace(
        "  config_key: !secret config_key\n", "")
    path = write_files(tmp_path, text)
    stop = asyncio.Event()
    runner = GatewayRunner(path)
    async with PlatformSubscriber("127.0.0.1", platform_broker.port, ("hearthgate/#",)) as platform:
        task = asyncio.create_task(runner.run(stop))
        try:
            await online(platform)
            fleet = Fleet(platform)
            pid = await fleet.push(text, config_hash(text.encode()))
            r = await fleet.result(pid)
            assert r["ok"] is False and "config_key" in r["error"]
            await fleet.command("logs", {"id": "l1"})
            assert (await fleet.result("l1"))["ok"] is False  # no ring in this runner
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 20) == EXIT_STOPPED


def teardown_module() -> None:
    clear_secrets()
    add_secret(None)
