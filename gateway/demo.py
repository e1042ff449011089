"""`hearthgate demo`: a day in the life of two residents, in accelerated time.

Everything is real except the devices and the people: two private mosquitto
brokers (the home's, that zigbee2mqtt publishes to, and the platform's), a
433 MHz receiver simulator on a pseudo-terminal, a zigbee2mqtt stand-in, the
gateway itself in this process, and on the platform's side a console that
prints what arrives and a care worker who acknowledges alerts. Time runs on a
`PacedClock`: real pace while everything connects, `--speed` simulated seconds
per real second for the day, real pace again for a clean stop.

What the residents do is a scenario (drivers/scenario.py), the same format the
simulators and the rules tests use; the devices come from the gateway config
the demo writes, so both always agree.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt

from drivers.scenario import (
    Scenario,
    ScenarioAction,
    ScenarioDevice,
    devices_from_config,
    parse_scenario,
    play,
)
from drivers.simulators.links import PtyLink
from drivers.simulators.rflink import RFLinkReceiverSimulator
from gateway.config import ConfigError, GatewayConfig, parse_config_data
from gateway.demo_clock import PacedClock
from gateway.demo_console import CareWorker, PlatformConsole, console_line
from gateway.local_broker import BrokerUnavailable, MosquittoBroker, mosquitto_binary
from gateway.testkit import PlatformSubscriber

log = logging.getLogger("hearthgate.demo")

TIMEZONE = "Asia/Shanghai"
GATEWAY_ID = "gw-demo-0001"
TOPIC_PREFIX = "hearthgate"
PLATFORM = f"{TOPIC_PREFIX}/{GATEWAY_ID}"
# A Sunday in late November; the day starts at 06:00 in the site's zone.
DAY_START = datetime(2026, 11, 22, 6, 0, tzinfo=ZoneInfo(TIMEZONE))
SETUP_TIMEOUT = 20.0  # real seconds for brokers, ports and devices to come up
STOP_TIMEOUT = 20.0
# Small MQTT packets must not wait out a delayed ACK (Nagle: ~40 ms each, which is
# minutes of simulated time at an hour a second).
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)

RESIDENTS = {
    "room-301": ("r-1001", "an old man living alone"),
    "room-302": ("r-1002", "a woman living alone"),
}


def build_config(
    work: Path, home_port: int, platform_port: int, rf_port: str, language: str
) -> dict[str, Any]:
    """The gateway config an installer would write for these two rooms."""
    rf = {"protocol": "rflink", "bus": "rf433", "debounce": "60s"}
    z2m = {"protocol": "zigbee2mqtt", "bus": "zigbee"}
    return {
        "gateway": {
            "id": GATEWAY_ID,
            "timezone": TIMEZONE,
            "data_dir": str(work / "data"),
            "language": language,
            "log_level": "warning",
        },
        "uplink": {
            "host": "127.0.0.1",
            "port": platform_port,
            "topic_prefix": TOPIC_PREFIX,
            "keepalive": "10s",
            # Simulated time: a telemetry message every quarter of an hour of the day.
            "telemetry_interval": "15m",
            "devices_interval": "1h",
        },
        "buses": [
            {"id": "zigbee", "type": "mqtt", "host": "127.0.0.1", "port": home_port},
            {"id": "rf433", "type": "serial", "port": rf_port, "baudrate": 57600,
             "parity": "N"},
        ],
        "devices": [
            {"id": "sos-301", "site": "room-301", "kind": "sos_button",
             "topic": "zigbee2mqtt/sos_301", "model": "TS0215A_sos", **z2m},
            {"id": "pir-301", "site": "room-301", "kind": "motion_sensor",
             "match": "EV1527;ID=0A0B01", **rf},
            {"id": "door-301", "site": "room-301", "kind": "door_contact",
             "match": "EV1527;ID=0A0B02", **rf},
            {"id": "sos-302", "site": "room-302", "kind": "sos_button",
             "match": "EV1527;ID=05A3C1", **rf},
            {"id": "pir-302", "site": "room-302", "kind": "motion_sensor",
             "match": "EV1527;ID=0B0C01", **rf},
            {"id": "door-302", "site": "room-302", "kind": "door_contact",
             "match": "EV1527;ID=0B0C02", **rf},
        ],
        "sites": [
            {"id": site, "resident": resident, "rules": [{"type": "sos"}]}
            for site, (resident, _) in RESIDENTS.items()
        ],
    }


# What the two residents do. Times of day are read in the site's zone; the day starts
# at 06:00, so "03:00" is the night that follows.
DAY: dict[str, Any] = {
    "timezone": TIMEZONE,
    "steps": [
        # room-301: up at 06:40, a morning walk, a nap after lunch, then a fall of sorts:
        # he presses his SOS button at 15:20.
        {"every": "20m", "from": "06:40", "until": "11:40", "device": "pir-301", "do": "motion"},
        {"at": "09:10", "device": "door-301", "do": "door_open"},
        {"at": "09:11", "device": "door-301", "do": "door_close"},
        {"at": "10:35", "device": "door-301", "do": "door_open"},
        {"at": "10:36", "device": "door-301", "do": "door_close"},
        {"every": "30m", "from": "13:30", "until": "21:40", "device": "pir-301", "do": "motion"},
        {"every": "2h", "from": "06:30", "device": "sos-301", "do": "battery", "value": 86},
        {"at": "15:20", "device": "sos-301", "do": "press"},
        # room-302: up at 07:00, presses her pendant by accident while cooking, goes out
        # in the afternoon, and gets up in the night.
        {"every": "25m", "from": "07:00", "until": "22:00", "device": "pir-302", "do": "motion"},
        {"at": "11:05", "device": "sos-302", "do": "press"},
        {"at": "14:00", "device": "door-302", "do": "door_open"},
        {"at": "14:01", "device": "door-302", "do": "door_close"},
        {"at": "16:30", "device": "door-302", "do": "door_open"},
        {"at": "16:31", "device": "door-302", "do": "door_close"},
        {"at": "03:00", "device": "door-302", "do": "door_open"},
        {"at": "03:04", "device": "door-302", "do": "door_close"},
        {"at": "03:05", "device": "pir-302", "do": "motion"},
    ],
}

Z2M_SOS_ACTION = {"HS1EB": "single"}  # other models say "emergency" (protocols.md)


class Zigbee2MqttPublisher:
    """Publishes what zigbee2mqtt would for the scenario's zigbee devices."""

    def __init__(self, client: aiomqtt.Client, devices: dict[str, ScenarioDevice]) -> None:
        self.client = client
        self.devices = devices
        self.published = 0

    def handles(self, device: str) -> bool:
        return device in self.devices

    def topic(self, device: str) -> str:
        return str(self.devices[device].options["topic"])

    async def publish(self, topic: str, body: dict[str, Any], retain: bool = False) -> None:
        await self.client.publish(topic, json.dumps(body), qos=1, retain=retain)
        self.published += 1

    async def announce(self, device: str) -> None:
        """zigbee2mqtt's retained availability and a first state report."""
        await self.publish(f"{self.topic(device)}/availability", {"state": "online"}, True)
        await self.publish(self.topic(device), {"battery": 90, "linkquality": 120})

    async def perform(self, action: ScenarioAction) -> None:
        dev, step = self.devices[action.device], action.step
        topic = self.topic(action.device)
        body: dict[str, Any] = {"linkquality": 96 + action.index % 40}
        if action.do == "press":
            body["action"] = Z2M_SOS_ACTION.get(str(dev.options.get("model")), "emergency")
        elif action.do in ("motion", "no_motion"):
            body["occupancy"] = action.do == "motion"
        elif action.do in ("door_open", "door_close"):
            body["contact"] = action.do == "door_close"  # zigbee2mqtt: true means closed
        elif action.do == "battery":
            body["battery"] = step.value
        elif action.do == "tamper":
            body["tamper"] = bool(step.value)
        elif action.do in ("offline", "online"):
            await self.publish(f"{topic}/availability", {"state": action.do}, True)
            return
        else:
            return  # silent, card, exit_button: nothing a zigbee2mqtt device would send
        await self.publish(topic, body)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hearthgate demo",
        description="A day in the life of two residents, played in accelerated time through "
        "simulated devices, real brokers and the real gateway.",
    )
    parser.add_argument("--speed", type=float, default=3600.0,
                        help="simulated seconds per real second (default 3600: an hour a second)")
    parser.add_argument("--hours", type=float, default=24.0,
                        help="how much of the day to play, from 06:00 (default 24)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the summary")
    parser.add_argument("--language", choices=["en", "zh"], default="en",
                        help="language of the alert messages (default en)")
    args = parser.parse_args(argv)
    if not 1.0 <= args.speed <= 100_000:
        parser.error("--speed must be between 1 and 100000")
    if not 0 < args.hours <= 72:
        parser.error("--hours must be more than 0 and at most 72")
    return args


class Demo:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.clock = PacedClock(DAY_START)
        self.console = PlatformConsole(PLATFORM, quiet=args.quiet)
        self.stop_requested = asyncio.Event()

    async def run(self) -> int:
        home = _fast_broker(self.work / "home-broker")
        platform = _fast_broker(self.work / "platform-broker")
        rf_link = PtyLink(self.work / "ttyRFLINK")
        try:
            return await self._with_brokers(home, platform, rf_link)
        finally:
            rf_link.unplug()
            home.close()
            platform.close()

    async def _with_brokers(
        self, home: MosquittoBroker, platform: MosquittoBroker, rf_link: PtyLink
    ) -> int:
        raw = build_config(self.work, home.port, platform.port, rf_link.path, self.args.language)
        try:
            config = parse_config_data(raw)
        except ConfigError as exc:  # a bug in the demo itself, but say it plainly
            print(f"hearthgate demo: its own config is invalid: {exc}", file=sys.stderr)
            return 1
        scenario = parse_scenario(DAY).with_devices(devices_from_config(config))
        async with (
            PlatformSubscriber(platform.host, platform.port, (f"{PLATFORM}/#",)) as sub,
            aiomqtt.Client(home.host, home.port, identifier="zigbee2mqtt-sim",
                           socket_options=NO_DELAY) as z2m_client,
        ):
            worker = CareWorker(sub.publish, PLATFORM, self.clock, self.console)
            self.console.on_raised = worker.on_raised
            pump = asyncio.create_task(self._pump(sub))
            try:
                return await self._play(config, scenario, sub, z2m_client, rf_link)
            finally:
                await worker.stop()
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump

    async def _pump(self, sub: PlatformSubscriber) -> None:
        """Hand every message the platform receives to the console, in order."""
        seen = 0

        def more(messages: list[Any]) -> bool:
            return len(messages) > seen

        while True:
            with contextlib.suppress(TimeoutError):
                await sub.wait_for(more, timeout=3600)
            while seen < len(sub.messages):
                m = sub.messages[seen]
                seen += 1
                self.console.handle(m.topic, m.payload)

    async def _play(
        self,
        config: GatewayConfig,
        scenario: Scenario,
        sub: PlatformSubscriber,
        z2m_client: aiomqtt.Client,
        rf_link: PtyLink,
    ) -> int:
        from gateway.service import Gateway

        zigbee = Zigbee2MqttPublisher(z2m_client, scenario.devices_of("zigbee2mqtt"))
        rflink = RFLinkReceiverSimulator(
            rf_link, scenario.devices_of("rflink"), repeats=3, repeat_gap=0.0005
        )
        gateway = Gateway(config, clock=self.clock, data_dir=self.work / "data")
        stop_gateway = asyncio.Event()
        gw_task = asyncio.create_task(gateway.run(stop_gateway), name="gateway")
        try:
            if not await self._bring_up(config, sub, zigbee, rflink, gw_task):
                return 1
            self._intro(config)
            started = time.monotonic()
            self.clock.set_pace(self.args.speed)
            day_start = self.clock.now()
            horizon = self.args.hours * 3600.0
            player = asyncio.create_task(
                play(scenario, self.clock, [zigbee, rflink], duration=horizon)
            )
            day_over = asyncio.create_task(self.clock.sleep_until(day_start.mono + horizon))
            interrupted = asyncio.create_task(self.stop_requested.wait())
            await asyncio.wait(
                {day_over, interrupted, gw_task}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in (player, day_over, interrupted):
                task.cancel()
            await asyncio.gather(player, day_over, interrupted, return_exceptions=True)
            self.clock.set_pace(1.0)
            real = time.monotonic() - started
            simulated = (self.clock.now().mono - day_start.mono) / 3600.0
            if gw_task.done():
                return self._gateway_died(gw_task)
            stop_gateway.set()
            try:
                await asyncio.wait_for(asyncio.shield(gw_task), STOP_TIMEOUT)
            except TimeoutError:
                print("hearthgate demo: the gateway did not stop in time", file=sys.stderr)
                return 1
            if gw_task.exception() is not None:
                return self._gateway_died(gw_task)
            # Its last words (telemetry it flushed, `offline`) are on their way.
            with contextlib.suppress(TimeoutError):
                await sub.wait_json(f"{PLATFORM}/status", lambda b: b.get("state") == "offline",
                                    timeout=5)
            await asyncio.sleep(0.2)
            self.console.flush_telemetry()
            out = self.console.out
            print(file=out)
            for line in self.console.summary(min(simulated, self.args.hours), real):
                print(line, file=out, flush=True)
            return 0
        finally:
            if not gw_task.done():
                stop_gateway.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(gw_task, STOP_TIMEOUT)
            if not gw_task.done():
                gw_task.cancel()
                await asyncio.gather(gw_task, return_exceptions=True)

    async def _bring_up(
        self,
        config: GatewayConfig,
        sub: PlatformSubscriber,
        zigbee: Zigbee2MqttPublisher,
        rflink: RFLinkReceiverSimulator,
        gw_task: asyncio.Task[None],
    ) -> bool:
        """Wait (at real pace) until the platform sees the gateway and every device online.

        Devices announce themselves the way real ones do on power-up: zigbee2mqtt's
        retained availability, a 433 MHz battery report. Until the gateway's ports and
        subscriptions are up those go nowhere, so they repeat until the platform's view
        (`P/devices`) shows each device online: the whole path works end to end.
        """
        wanted = {d.id for d in config.devices}
        deadline = time.monotonic() + SETUP_TIMEOUT
        while True:
            if gw_task.done():
                self._gateway_died(gw_task)
                return False
            missing = wanted - self.console.online_devices()
            if not missing:
                return True
            if time.monotonic() > deadline:
                print(f"hearthgate demo: devices never came online: {', '.join(sorted(missing))}",
                      file=sys.stderr)
                return False
            for device in sorted(missing):
                if zigbee.handles(device):
                    await zigbee.announce(device)
                elif rflink.handles(device):
                    await rflink.transmit(rflink.devices[device], "", repeats=1,
                                          extra={"BAT": "OK"})
            with contextlib.suppress(TimeoutError):
                await sub.wait_for(
                    lambda _: not (wanted - self.console.online_devices()), timeout=0.5
                )

    def _intro(self, config: GatewayConfig) -> None:
        c = self.console
        c.print(f"hearthgate demo: {config.summary()}; the platform's view, "
                f"{self.args.speed:g}x real time ({self.args.speed / 3600:g} h a second)")
        for site, (resident, who) in RESIDENTS.items():
            devices = ", ".join(d.id for d in config.devices if d.site == site)
            c.print(f"  {site}: resident {resident}, {who}; devices {devices}")
        c.print("")
        c.header()
        c.print(console_line(DAY_START.strftime("%a %H:%M"), "-", "gateway",
                             "online; every device reporting"))

    def _gateway_died(self, gw_task: asyncio.Task[None]) -> int:
        exc = gw_task.exception() if not gw_task.cancelled() else None
        print(f"hearthgate demo: the gateway stopped unexpectedly: {exc!r}", file=sys.stderr)
        return 1


def _fast_broker(workdir: Path) -> MosquittoBroker:
    broker = MosquittoBroker(workdir)
    # Without TCP_NODELAY every small QoS 1 exchange waits out a delayed ACK (~40 ms):
    # minutes of simulated time at an hour a second.
    broker.conf.write_text(broker.conf.read_text() + "set_tcp_nodelay true\n")
    return broker.start()


@contextlib.asynccontextmanager
async def _signals(demo: Demo) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, demo.stop_requested.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="hearthgate-demo-") as tmp:
        demo = Demo(args, Path(tmp))
        async with _signals(demo):
            return await demo.run()


def run_demo(argv: list[str]) -> int:
    argv = list(argv)
    args = parse_args(argv[1:] if argv[:1] == ["--"] else argv)
    if mosquitto_binary() is None:
        print("hearthgate demo: mosquitto is not installed; install it with "
              "`sudo apt-get install mosquitto` (`make demo` does this for you)", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_main(args))
    except BrokerUnavailable as exc:
        print(f"hearthgate demo: cannot start a local broker: {exc}", file=sys.stderr)
        return 1
