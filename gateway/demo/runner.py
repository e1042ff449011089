"""`hearthgate demo`: a day in the life of two residents, in accelerated time.

Everything is real except the devices and the people: two private mosquitto
brokers (the home's, that zigbee2mqtt publishes to, and the platform's), a
433 MHz receiver simulator and four RS-485 meters (DL/T 645, CJ/T 188) on
pseudo-terminals, a zigbee2mqtt stand-in, the gateway itself in this process,
and on the platform's side a console that prints what arrives and a care
worker who acknowledges alerts. Time runs on a
`PacedClock`: real pace while everything connects, `--speed` simulated seconds
per real second for the day, real pace again for a clean stop.

What happens is in gateway/demo/day.py: the config, what the residents do (a
scenario in the format of gateway/simulators/scenario.py, which the simulators and
the rules tests use too) and their water and electricity use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from hearthgate.config import ConfigError, GatewayConfig, parse_config_data
from hearthgate.core.model import Instant
from hearthgate.demo.clock import PacedClock
from hearthgate.demo.console import CareWorker, PlatformConsole, console_line, fmt_when
from hearthgate.demo.day import (
    BASE_LOAD_W,
    DAY,
    DAY_START,
    GATEWAY_ID,
    POWER_METERS,
    RESIDENTS,
    TOPIC_PREFIX,
    WATER_METERS,
    build_config,
    usage_timeline,
)
from hearthgate.devkit.local_broker import BrokerUnavailable, MosquittoBroker, mosquitto_binary
from hearthgate.devkit.testkit import PlatformSubscriber
from hearthgate.service import Gateway
from hearthgate.simulators.links import PtyLink
from hearthgate.simulators.meter_bus import MeterBusSimulator
from hearthgate.simulators.meter_models import CJT188Meter, DLT645Meter
from hearthgate.simulators.rflink import RFLinkReceiverSimulator
from hearthgate.simulators.scenario import Scenario, devices_from_config, parse_scenario, play
from hearthgate.simulators.zigbee2mqtt import Zigbee2MqttPublisher

log = logging.getLogger("hearthgate.demo")

PLATFORM = f"{TOPIC_PREFIX}/{GATEWAY_ID}"
SETUP_TIMEOUT = 20.0  # real seconds for brokers, ports and devices to come up
STOP_TIMEOUT = 20.0
EXIT_INTERRUPTED = 130
# Small MQTT packets must not wait out a delayed ACK (Nagle: ~40 ms each, which is
# minutes of simulated time at an hour a second).
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


class UsagePlayer:
    """Turns taps and appliances on and off in the simulated meters, on the demo's clock."""

    def __init__(self, clock: PacedClock, meters: dict[str, DLT645Meter | CJT188Meter]) -> None:
        self.clock = clock
        self.meters = meters
        for device_id, meter in meters.items():
            self._set(device_id, meter, 0.0)

    def _set(self, device_id: str, meter: DLT645Meter | CJT188Meter, rate: float) -> None:
        # Consumption so far runs at the old rate; from now on at the new one.
        meter.settle(self.clock.now().mono)
        if isinstance(meter, CJT188Meter):
            meter.flow_m3h = rate
        else:
            meter.power_w = BASE_LOAD_W.get(device_id, 0.0) + rate

    async def play(self, start: Instant, horizon: float) -> None:
        local = start.wall.astimezone(DAY_START.tzinfo)
        for offset, device_id, rate in usage_timeline(local):
            if offset > horizon:
                break
            await self.clock.sleep_until(start.mono + offset)
            self._set(device_id, self.meters[device_id], rate)


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


@dataclass
class World:
    """The simulated devices, each speaking its real protocol to the gateway."""

    zigbee: Zigbee2MqttPublisher
    rflink: RFLinkReceiverSimulator
    meters: MeterBusSimulator
    usage: UsagePlayer

    @property
    def sinks(self) -> list[Zigbee2MqttPublisher | RFLinkReceiverSimulator]:
        return [self.zigbee, self.rflink]

    async def check_in(self, device_id: str) -> None:
        """What a device sends when it powers up (meters just answer the next poll)."""
        if self.zigbee.handles(device_id):
            await self.zigbee.availability(device_id, True)
            await self.zigbee.state(device_id, {})
        elif self.rflink.handles(device_id):
            await self.rflink.transmit(self.rflink.devices[device_id], "", repeats=1,
                                       extra={"BAT": "OK"})


class Demo:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.clock = PacedClock(DAY_START)
        self.console = PlatformConsole(PLATFORM, quiet=args.quiet)
        self.stop_requested = asyncio.Event()

    async def run(self) -> int:
        async with contextlib.AsyncExitStack() as stack:
            home = _fast_broker(self.work / "home-broker")
            stack.callback(home.close)
            platform = _fast_broker(self.work / "platform-broker")
            stack.callback(platform.close)
            rf_link = PtyLink(self.work / "ttyRFLINK")
            stack.callback(rf_link.unplug)
            meter_link = PtyLink(self.work / "ttyRS485")
            stack.callback(meter_link.unplug)
            raw = build_config(self.work, home.port, platform.port, rf_link.path,
                               meter_link.path, self.args.language)
            try:
                config = parse_config_data(raw)
            except ConfigError as exc:  # a bug in the demo itself, but say it plainly
                print(f"hearthgate demo: its own config is invalid: {exc}", file=sys.stderr)
                return 1
            scenario = parse_scenario(DAY).with_devices(devices_from_config(config))
            sub = await stack.enter_async_context(
                PlatformSubscriber(platform.host, platform.port, (f"{PLATFORM}/#",))
            )
            z2m_client = await stack.enter_async_context(
                aiomqtt.Client(home.host, home.port, identifier="zigbee2mqtt-sim",
                               socket_options=NO_DELAY)
            )

            async def z2m_publish(topic: str, payload: bytes, retain: bool) -> None:
                await z2m_client.publish(topic, payload, qos=1, retain=retain)

            meters: dict[str, DLT645Meter | CJT188Meter] = {
                **{d: CJT188Meter(a, total_m3=100.0 + int(d[-1]) * 37.5)
                   for d, a in WATER_METERS.items()},
                **{d: DLT645Meter(a, energy_kwh=2000.0 + int(d[-1]) * 412.3)
                   for d, a in POWER_METERS.items()},
            }
            world = World(
                zigbee=Zigbee2MqttPublisher(z2m_publish, scenario.devices_of("zigbee2mqtt"),
                                            repeats=1),
                # A radio repeats a press a few times within milliseconds; the driver's
                # debounce makes them one press.
                rflink=RFLinkReceiverSimulator(rf_link, scenario.devices_of("rflink"),
                                               repeats=3, repeat_gap=0.0005),
                meters=MeterBusSimulator(meter_link, list(meters.values()), clock=self.clock),
                usage=UsagePlayer(self.clock, meters),
            )
            meter_task = asyncio.create_task(world.meters.run(), name="meter-simulator")
            stack.push_async_callback(_cancel, meter_task)
            worker = CareWorker(sub.publish, PLATFORM, self.clock, self.console)
            stack.push_async_callback(worker.stop)
            self.console.on_raised = worker.on_raised
            pump = asyncio.create_task(self._pump(sub), name="platform-console")
            stack.push_async_callback(_cancel, pump)
            return await self._play(config, scenario, sub, world)
        return 1  # not reached; keeps type checkers content

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
        self, config: GatewayConfig, scenario: Scenario, sub: PlatformSubscriber, world: World
    ) -> int:
        gateway = Gateway(config, clock=self.clock, data_dir=self.work / "data")
        stop_gateway = asyncio.Event()
        gw_task = asyncio.create_task(gateway.run(stop_gateway), name="gateway")
        try:
            if not await self._bring_up(config, sub, world, gw_task):
                return 1
            self._intro(config)
            started = time.monotonic()
            self.clock.set_pace(self.args.speed)
            day_start = self.clock.now()
            horizon = self.args.hours * 3600.0
            actors = [
                asyncio.create_task(play(scenario, self.clock, world.sinks, duration=horizon)),
                asyncio.create_task(world.usage.play(day_start, horizon)),
            ]
            day_over = asyncio.create_task(self.clock.sleep_until(day_start.mono + horizon))
            interrupted = asyncio.create_task(self.stop_requested.wait())
            await asyncio.wait(
                {day_over, interrupted, gw_task}, return_when=asyncio.FIRST_COMPLETED
            )
            if self.stop_requested.is_set():
                # Ctrl-C in a terminal reaches the brokers too: what follows is a hurried
                # stop without them, so spare the reader the gateway's complaints.
                logging.disable(logging.CRITICAL)
                self.console.print(console_line(
                    fmt_when(self.clock.now().wall.astimezone(DAY_START.tzinfo)), "-",
                    "stopped", "interrupted: the summary covers the day so far"))
            for task in (*actors, day_over, interrupted):
                task.cancel()
            await asyncio.gather(*actors, day_over, interrupted, return_exceptions=True)
            self.clock.set_pace(1.0)
            real = time.monotonic() - started
            simulated = (self.clock.now().mono - day_start.mono) / 3600.0
            if gw_task.done():
                return self._gateway_died(gw_task)
            if not await _stop(gw_task, stop_gateway):
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
            return EXIT_INTERRUPTED if self.stop_requested.is_set() else 0
        finally:
            if not gw_task.done():
                await _stop(gw_task, stop_gateway)
            await _cancel(gw_task)

    async def _bring_up(
        self, config: GatewayConfig, sub: PlatformSubscriber, world: World,
        gw_task: asyncio.Task[None],
    ) -> bool:
        """Wait (at real pace) until the platform sees the gateway and every device online.

        Devices announce themselves the way real ones do on power-up: zigbee2mqtt's
        retained availability, a 433 MHz battery report; meters answer their first poll.
        Until the gateway's ports and subscriptions are up those go nowhere, so they repeat
        until the platform's view (`P/devices`) shows each device online: the whole path
        works end to end before the day begins.
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
            for device_id in sorted(missing):
                await world.check_in(device_id)
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


async def _stop(gw_task: asyncio.Task[None], stop: asyncio.Event) -> bool:
    """Ask the gateway to stop and wait for it; True once it has.

    Its clean stop takes well under a second, a few when the platform's broker is gone
    (`Gateway.run` cancels again any task that swallowed its cancellation).
    """
    stop.set()
    await asyncio.wait({gw_task}, timeout=STOP_TIMEOUT)
    return gw_task.done()


async def _cancel(task: asyncio.Task[Any]) -> None:
    if not task.done():
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


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
