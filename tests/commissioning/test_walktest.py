"""`hearthgate walktest --json` against a whole flat: the gateway as a real process, a real
broker for the platform and one for zigbee2mqtt, meters, a 433 MHz receiver and an OSDP reader
on real pseudo-terminals. Every device is made to speak and is ticked; an unconfigured Zigbee
device is listed with a ready entry; a test SOS is marked `test`, never escalated, and cleared
on the spot by `hearthgate ack`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import (
    REPO,
    GatewayProcess,
    PlatformSubscriber,
    config_head,
    run_cli,
    wait_started,
)
from hearthgate.drivers.rflink_codec import RFLinkMatch
from hearthgate.simulators.links import PtyLink
from hearthgate.simulators.meter_bus import MeterBusSimulator
from hearthgate.simulators.meter_models import CJT188Meter, DLT645Meter
from hearthgate.simulators.osdp import OSDPBusSimulator, OSDPPeripheral
from hearthgate.simulators.rflink import RFLinkReceiverSimulator

GW = "gw-walk-01"
P = f"hearthgate/{GW}"
SOS = "EV1527;ID=0x5a3c1"


def flat_config(tmp: Path, platform: MosquittoBroker, home: MosquittoBroker,
                meters: str, rf: str, osdp: str) -> Path:
    path = tmp / "gateway.yaml"
    path.write_text(config_head(GW, tmp / "data", platform.port, home.port) + f"""\
  - {{id: rs485-1, type: serial, port: {meters}, baudrate: 9600, parity: N, timeout: 300ms}}
  - {{id: rf433, type: serial, port: {rf}, baudrate: 57600, parity: N}}
  - {{id: rs485-3, type: serial, port: {osdp}, baudrate: 115200, parity: N}}
devices:
  - {{id: water-301, site: room-301, kind: water_meter, protocol: cjt188, bus: rs485-1,
      address: "00000000001234", poll: 1s}}
  - {{id: power-301, site: room-301, kind: power_meter, protocol: dlt645, bus: rs485-1,
      address: "000000005678", poll: 1s}}
  - {{id: pir-301, site: room-301, kind: motion_sensor, protocol: zigbee2mqtt, bus: zigbee,
      topic: zigbee2mqtt/pir_301}}
  - {{id: door-301, site: room-301, kind: door_contact, protocol: zigbee2mqtt, bus: zigbee,
      topic: zigbee2mqtt/door_301}}
  - {{id: sos-301, site: room-301, kind: sos_button, protocol: rflink, bus: rf433,
      match: "{SOS}"}}
  - {{id: gate-a, site: room-301, kind: access_controller, protocol: osdp, bus: rs485-3,
      address: 1, poll: 50ms, reply_timeout: 200ms}}
sites:
  - id: room-301
    resident: r-1001
    rules: [{{type: sos}}, {{type: no_water, window: 12h}}, {{type: device_offline}}]
""")
    return path


class WalkTest:
    """`hearthgate walktest --json` as a child process, its events as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.garbage: list[bytes] = []

    async def next(self, match: Any, timeout: float = 30.0) -> dict[str, Any]:
        for event in self.events:
            if match(event):
                return event
        async with asyncio.timeout(timeout):
            while True:
                assert self.proc.stdout is not None
                line = await self.proc.stdout.readline()
                if not line:
                    assert self.proc.stderr is not None
                    err = (await self.proc.stderr.read()).decode(errors="replace")
                    raise AssertionError(f"walktest ended; events: {self.events}\n{err}")
                try:
                    event = json.loads(line)
                except ValueError:
                    self.garbage.append(line)
                    continue
                self.events.append(event)
                if match(event):
                    return event


@pytest.fixture
async def flat(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    meters, rf, osdp = (PtyLink(tmp_path / n) for n in ("ttyMeters", "ttyRF", "ttyOSDP"))
    bus = MeterBusSimulator(meters, [DLT645Meter("000000005678", energy_kwh=10.0),
                                     CJT188Meter("00000000001234", total_m3=5.0)])
    reader = OSDPPeripheral(address=1)
    # A second reader whose DIP switches say 5: the config names none there.
    stray = OSDPPeripheral(address=5)
    tasks = [asyncio.create_task(bus.run()),
             asyncio.create_task(OSDPBusSimulator(osdp, [reader, stray]).run())]
    try:
        yield {"meters": meters, "rf": rf, "osdp": osdp, "reader": reader, "stray": stray}
    finally:
        for task in tasks:
            task.cancel()
        for link in (meters, rf, osdp):
            link.close()


async def test_walktest_ticks_a_whole_flat(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker,
    flat: dict[str, Any],
) -> None:
    cfg = flat_config(tmp_path, broker, home_broker, flat["meters"].path, flat["rf"].path,
                      flat["osdp"].path)
    gw = GatewayProcess(cfg)
    async with (PlatformSubscriber(broker.host, broker.port, (f"{P}/#",)) as platform,
                PlatformSubscriber(home_broker.host, home_broker.port, ("none/#",)) as home):
        try:
            await wait_started(gw, platform, P, buses=("zigbee",))
            # In service the gateway asks no OSDP address the config does not name.
            assert flat["reader"].commands_seen > 0 and flat["stray"].commands_seen == 0
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hearthgate", "walktest", "-c", str(cfg), "--json",
                "--timeout", "90s", "--by", "installer-7",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                cwd=str(REPO), env=dict(os.environ))
            walk = WalkTest(proc)
            try:
                start = await walk.next(lambda e: e["event"] == "start")
                assert start["attached"] is True
                assert {d["device_id"] for d in start["devices"]} == {
                    "water-301", "power-301", "pir-301", "door-301", "sos-301", "gate-a"}

                await walk.next(lambda e: e["event"] == "listening" and e["bus"] == "zigbee")
                # Bad input on the local broker first: the walk test carries on.
                await home.publish("zigbee2mqtt/pir_301", b"\xff\x00 not json")
                await home.publish("zigbee2mqtt/bridge/devices", b"[garbage")
                # A sensor paired under a misspelt name.
                await home.publish("zigbee2mqtt/pir_3O1", {"occupancy": True, "battery": 90})
                stray = await walk.next(lambda e: e["event"] == "unconfigured"
                                        and e["key"] == "pir_3O1")
                assert stray["entry"]["kind"] == "motion_sensor"
                assert stray["entry"]["topic"] == "zigbee2mqtt/pir_3O1"
                assert stray["yaml"].startswith("- {id: pir-3o1, site: room-301, kind: "
                                                "motion_sensor, protocol: zigbee2mqtt, bus: zigbee")

                # The SOS button: ticked, and its alert is a test alert.
                rflink = RFLinkReceiverSimulator(flat["rf"], {"sos-301": SOS})
                await rflink.transmit(RFLinkMatch.parse(SOS), "ON")
                heard = await walk.next(lambda e: e["event"] == "heard"
                                        and e["device_id"] == "sos-301")
                assert heard["said"] == "said.sos" and heard["said_text"] == "SOS pressed"
                raised = await walk.next(lambda e: e["event"] == "alert"
                                         and e["state"] == "raised")
                assert raised["type"] == "sos" and raised["test"] is True
                [published] = await platform.wait_json(
                    f"{P}/alerts", lambda b: b["alert_id"] == raised["alert_id"])
                assert published["test"] is True

                acked = await run_cli("ack", "-c", str(cfg), raised["alert_id"], "--by", "inst")
                assert acked.returncode == 0, acked.stderr
                cleared = await walk.next(lambda e: e["event"] == "alert"
                                          and e["state"] == "cleared")
                assert cleared["alert_id"] == raised["alert_id"] and cleared["test"] is True
                await platform.wait_json(f"{P}/alerts", lambda b: b["state"] == "cleared"
                                         and b["alert_id"] == raised["alert_id"])

                # An unknown 433 MHz code is listed with its match.
                await rflink.transmit(RFLinkMatch.parse("EV1527;ID=0x11111"), "ON")
                rf_stray = await walk.next(lambda e: e["event"] == "unconfigured"
                                           and e["protocol"] == "rflink")
                assert 'match: "EV1527;ID=' in rf_stray["yaml"]

                # The reader at an address no device has: found by the walk test's sweep.
                osdp_stray = await walk.next(lambda e: e["event"] == "unconfigured"
                                             and e["protocol"] == "osdp")
                assert osdp_stray["key"] == "rs485-3 address 5"
                assert osdp_stray["entry"] == {
                    "id": "reader-5", "site": "room-301", "kind": "access_controller",
                    "protocol": "osdp", "bus": "rs485-3", "address": 5}
                assert osdp_stray["yaml"] == ("- {id: reader-5, site: room-301, kind: "
                                              "access_controller, protocol: osdp, bus: rs485-3,"
                                              " address: 5}")

                # The rest of the flat.
                await home.publish("zigbee2mqtt/door_301", {"contact": False})
                await home.publish("zigbee2mqtt/door_301", {"contact": True})
                await home.publish("zigbee2mqtt/pir_301", {"occupancy": True})
                flat["reader"].present_card(123, 4567)
                summary = await walk.next(lambda e: e["event"] == "summary", timeout=60)
                assert summary["reason"] == "all_heard" and summary["missing"] == []
                assert summary["heard"] == summary["total"] == 6
                assert await asyncio.wait_for(proc.wait(), 20) == 0
                said = {(e["device_id"], e["said_text"]) for e in walk.events
                        if e["event"] == "heard"}
                assert ("door-301", "door opened") in said
                assert ("door-301", "door closed") in said
                assert ("pir-301", "motion") in said
                assert ("water-301", "meter read: 5.0 m³") in said
                assert ("power-301", "meter read: 10.0 kWh") in said
                assert ("gate-a", "card read: 123:4567") in said or any(
                    d == "gate-a" and t.startswith("card read") for d, t in said)
                assert not walk.garbage
            finally:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

            # No escalation of the test alert, and the first-heard lines in the log.
            assert not [m for m in platform.on(f"{P}/alerts")
                        if m.json()["state"] == "escalated"]
            log = gw.log_text()
            assert "device sos-301 heard: SOS pressed" in log
            assert "walk test" in log
            assert gw.stop() == 0
        finally:
            gw.close()


def lonely_config(tmp: Path, home: MosquittoBroker, platform_port: int) -> Path:
    path = tmp / "lonely.yaml"
    path.write_text(config_head(GW, tmp / "data", platform_port, home.port).replace(
        "language: en", "language: zh") + """\
devices:
  - {id: pir-1, site: room-1, kind: motion_sensor, protocol: zigbee2mqtt, bus: zigbee,
      topic: zigbee2mqtt/pir_1}
  - {id: door-1, site: room-1, kind: door_contact, protocol: zigbee2mqtt, bus: zigbee,
      topic: zigbee2mqtt/door_1}
sites:
  - {id: room-1, resident: r-1, rules: [{type: inactivity, window: 4h}, {type: device_offline}]}
""")
    return path


async def test_walktest_on_its_own_says_in_chinese_who_was_never_heard(
    tmp_path: Path, home_broker: MosquittoBroker, broker: MosquittoBroker,
) -> None:
    """No service runs: the walk test runs the gateway itself; one sensor speaks, one never
    does; plain lines (not a terminal), Chinese per `gateway.language`, exit 1."""
    cfg = lonely_config(tmp_path, home_broker, broker.port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hearthgate", "walktest", "-c", str(cfg), "--timeout", "4s",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(REPO))
    async with PlatformSubscriber(home_broker.host, home_broker.port, ("none/#",)) as home:
        assert proc.stdout is not None
        lines: list[str] = []
        async with asyncio.timeout(30):
            while not any("服务未运行" in line for line in lines):
                line = (await proc.stdout.readline()).decode()
                assert line, lines
                lines.append(line)
        # The gateway of the walk test subscribes as it starts: say it until it is heard.
        async with asyncio.timeout(20):
            while not any("pir-1" in line for line in lines):
                await home.publish("zigbee2mqtt/pir_1", {"occupancy": True})
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        lines.append((await proc.stdout.readline()).decode())
        rest, err = await asyncio.wait_for(proc.communicate(), 30)
    out = "".join(lines) + rest.decode()
    assert proc.returncode == 1, (out, err.decode())
    assert "听到 pir-1（motion_sensor）：有人活动" in out
    assert "未听到：door-1" in out
    assert "巡检测试结束（超时）：已听到 1/2 个设备" in out
    assert "\x1b[" not in out  # no terminal codes into a pipe
    assert not (tmp_path / "data" / "control.sock").exists()


async def test_walktest_requests_on_the_control_socket_refuse_bad_input(
    tmp_path: Path, home_broker: MosquittoBroker, broker: MosquittoBroker,
) -> None:
    from hearthgate.config import load_config
    from hearthgate.service import Gateway

    gw = Gateway(load_config(lonely_config(tmp_path, home_broker, broker.port)))
    bad = await gw._local({"command": "walktest_start"})
    assert bad["ok"] is False  # no user
    started = await gw._local({"command": "walktest_start", "user": "u"})
    assert started["ok"] and started["session"] and len(started["devices"]) == 2
    again = await gw._local({"command": "walktest_start", "user": "v"})
    assert again["session"] == started["session"]  # one walk test at a time: joined
    session = started["session"]
    for request in (
        {"command": "walktest_events", "user": "u", "session": "other"},
        {"command": "walktest_events", "user": "u", "session": session, "since": "x"},
        {"command": "walktest_events", "user": "u", "session": session, "wait": [1]},
        {"command": "walktest_unknown", "user": "u", "session": session, "key": 5},
        {"command": "walktest_unknown", "user": "u", "session": session,
         "protocol": "zigbee2mqtt", "key": "k" * 1000, "entry": {}},
        {"command": "walktest_nonsense", "user": "u", "session": session},
    ):
        answer = await gw._local(request)
        assert answer["ok"] is False, request
    waited = await gw._local({"command": "walktest_events", "user": "u", "session": session,
                              "since": 0, "wait": 1e9})  # bounded by the service, not 1e9 s
    assert waited["ok"] and waited["events"] == []
    stopped = await gw._local({"command": "walktest_stop", "user": "u", "session": session})
    assert stopped["ok"] and gw.walk is None
