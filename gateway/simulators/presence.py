"""`hearthgate simulate rflink|osdp|zigbee2mqtt ...`: presence-device simulators for bench tests.

Each simulator acts out a scenario (gateway/simulators/scenario.py) for the devices of its protocol.
Devices come from the scenario's `devices:` and/or a gateway config (`-c`), so an
installer can point the simulator at the very config the gateway runs with.

A simulator stays up until it is stopped (Ctrl-C, SIGTERM) or `--duration` has passed (in
scenario time), whatever it did first: a press, a scenario's last step. Its line goes with it
(the pseudo-terminal and its symlink are removed). The gateway it feeds would otherwise see
its port vanish after each press and call the device offline.

    hearthgate simulate rflink --link /tmp/ttyRF --press "EV1527;ID=5a3c1" --every 30s
    hearthgate simulate rflink --link /tmp/ttyRF --press "EV1527;ID=5a3c1" --key
    hearthgate simulate rflink --link /tmp/ttyRF -c gateway.yaml --scenario night.yaml
    hearthgate simulate osdp --link /tmp/ttyOSDP --address 1 --card 123:4567
    hearthgate simulate zigbee2mqtt --host 127.0.0.1 -c gateway.yaml --scenario night.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from hearthgate.simulators.scenario import (
    Scenario,
    ScenarioDevice,
    ScenarioError,
    devices_from_config,
    load_scenario,
    parse_card,
    play,
)

KINDS = ("rflink", "osdp", "zigbee2mqtt")
log = logging.getLogger("hearthgate.simulate")


def simulate_main(kind: str, argv: list[str]) -> int:
    """Run one simulator; returns the process exit status (0 ok, 2 bad arguments/files)."""
    if kind not in KINDS:
        print(f"error: unknown simulator '{kind}' (known: {', '.join(KINDS)})", file=sys.stderr)
        return 2
    parser = _parser(kind)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        scenario = _scenario(args)
    except (ScenarioError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runner = {"rflink": _run_rflink, "osdp": _run_osdp, "zigbee2mqtt": _run_zigbee2mqtt}[kind]
    try:
        return asyncio.run(runner(args, scenario))
    except KeyboardInterrupt:
        return 0
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _parser(kind: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"hearthgate simulate {kind}")
    p.add_argument("-c", "--config", help="a gateway config: simulate its devices")
    p.add_argument("--scenario", help="a scenario file (YAML or JSON lines)")
    p.add_argument("--speed", type=float, default=1.0, help="scenario time factor (60 = 1 h/min)")
    p.add_argument("--duration", default=None,
                   help="stop after this much (scenario) time, e.g. 2h (default: until Ctrl-C)")
    p.add_argument("--every", metavar="DURATION",
                   help="repeat the --press presses on this schedule (e.g. 30s)")
    p.add_argument("--key", action="store_true",
                   help="press again each time Enter is typed (stdin)")
    if kind in ("rflink", "osdp"):
        p.add_argument("--link", help="create a pseudo-terminal behind this symlink path")
        p.add_argument("--serial", help="use this real serial port instead of a pseudo-terminal")
        p.add_argument("--baudrate", type=int, default=57600 if kind == "rflink" else 9600)
    if kind == "rflink":
        p.add_argument("--press", action="append", default=[], metavar="MATCH",
                       help='send one press of this device, e.g. "EV1527;ID=5a3c1"')
        p.add_argument("--repeats", type=int, default=4, help="radio repeats per press")
    if kind == "osdp":
        p.add_argument("--address", type=int, action="append", default=[],
                       help="a peripheral address to answer (repeatable)")
        p.add_argument("--card", action="append", default=[], metavar="FC:NUMBER",
                       help="a card to present at start (repeatable)")
    if kind == "zigbee2mqtt":
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=1883)
        p.add_argument("--press", action="append", default=[], metavar="TOPIC",
                       help="publish one SOS press on this device topic")
        p.add_argument("--model", default="generic", help="model of --press devices")
        p.add_argument("--repeats", type=int, default=2, help="publishes per press")
    return p


def _scenario(args: argparse.Namespace) -> Scenario:
    scenario = load_scenario(args.scenario) if args.scenario else Scenario()
    if args.config:
        from hearthgate.config import ConfigError, load_config

        try:
            config = load_config(args.config)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        scenario = scenario.with_devices(devices_from_config(config))
    return scenario


def _clock(speed: float) -> Any:
    from hearthgate.core.clock import ScaledClock, SystemClock

    return SystemClock() if speed == 1.0 else ScaledClock(speed)


def _duration(text: str) -> float:
    from hearthgate.core.durations import parse_duration

    return parse_duration(text)


async def _link(args: argparse.Namespace) -> Any:
    from hearthgate.simulators.links import PtyLink, SerialLink

    if args.serial:
        link = SerialLink(args.serial, args.baudrate)
        await link.open()
        return link
    link = PtyLink(args.link)
    print(f"simulated line ready: {link.path}  (point the gateway's serial bus `port:` at it)",
          flush=True)
    return link


async def _play(scenario: Scenario, args: argparse.Namespace, sink: Any, clock: Any) -> None:
    if scenario.steps:
        horizon = _duration(args.duration) if args.duration else 86400.0
        report = await play(scenario, clock, sink, duration=horizon)
        for action in report.unhandled:
            log.warning("no %s device '%s' for step '%s'", args.kind_name, action.device,
                        action.do)


async def _keys() -> None:
    """Return when a line is typed on stdin (Enter); never when stdin is closed."""
    # A reader on the event loop, not a thread: a thread blocked in read() would hold the
    # process at exit.
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    typed: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:
        try:
            data = os.read(fd, 1024)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not typed.done():
            typed.set_result(data)

    loop.add_reader(fd, readable)
    try:
        data = await typed
    finally:
        loop.remove_reader(fd)
    if not data:
        await asyncio.Event().wait()  # stdin closed (a service, a pipe): no keys will come


async def _bench(args: argparse.Namespace, scenario: Scenario, sink: Any,
                 press: Callable[[], Awaitable[None]] | None) -> None:
    """Press once, then keep the simulator up: presses on a schedule or on a key, the
    scenario, until `--duration` (scenario time) or until stopped."""
    clock = _clock(args.speed)
    start = clock.now().mono
    if press is not None:
        await press()

    async def every() -> None:
        assert press is not None
        gap = _duration(args.every)
        while True:
            await clock.sleep(gap)
            await press()

    async def on_key() -> None:
        assert press is not None
        print("press Enter to press again", flush=True)
        while True:
            await _keys()
            await press()

    async with asyncio.TaskGroup() as tg:
        helpers = [tg.create_task(_play(scenario, args, sink, clock))]
        if press is not None and args.every:
            helpers.append(tg.create_task(every()))
        if press is not None and args.key:
            helpers.append(tg.create_task(on_key()))
        if args.duration:
            await clock.sleep_until(start + _duration(args.duration))
        else:
            await asyncio.Event().wait()  # until Ctrl-C or SIGTERM
        for task in helpers:
            task.cancel()


async def _run_rflink(args: argparse.Namespace, scenario: Scenario) -> int:
    from hearthgate.drivers.rflink_codec import RFLinkMatch
    from hearthgate.simulators.rflink import RFLinkReceiverSimulator

    args.kind_name = "rflink"
    link = await _link(args)
    try:
        sim = RFLinkReceiverSimulator(link, scenario.devices_of("rflink"), repeats=args.repeats)
        sim.banner()
        matches = [RFLinkMatch.parse(text) for text in args.press]

        async def press() -> None:
            for text, match in zip(args.press, matches, strict=True):
                await sim.transmit(match, "ON")
                print(f"pressed {text} ({args.repeats} radio repeats)", flush=True)

        await _bench(args, scenario, sim, press if matches else None)
    finally:
        link.close()
    return 0


async def _run_osdp(args: argparse.Namespace, scenario: Scenario) -> int:
    from hearthgate.simulators.osdp import OSDPBusSimulator, OSDPPeripheral

    args.kind_name = "osdp"
    devices: dict[str, ScenarioDevice] = scenario.devices_of("osdp")
    addresses = args.address or ([] if devices else [1])
    link = await _link(args)
    sim = OSDPBusSimulator(link, [OSDPPeripheral(a) for a in addresses], devices)
    first = next(iter(sim.peripherals.values()), None)
    for card in args.card:
        if first is None:
            raise ValueError("--card needs a peripheral (--address)")
        first.present_card(*parse_card(card))
    print(f"answering OSDP addresses {sorted(sim.peripherals)}", flush=True)
    try:
        async with asyncio.TaskGroup() as tg:
            server = tg.create_task(sim.run())  # a control panel keeps polling
            await _bench(args, scenario, sim, None)
            server.cancel()
    finally:
        link.close()
    return 0


async def _run_zigbee2mqtt(args: argparse.Namespace, scenario: Scenario) -> int:
    from hearthgate.simulators.zigbee2mqtt import Zigbee2MqttPublisher, mqtt_publish

    args.kind_name = "zigbee2mqtt"
    devices = scenario.devices_of("zigbee2mqtt")
    for n, topic in enumerate(args.press):
        devices[f"press-{n}"] = ScenarioDevice(protocol="zigbee2mqtt", topic=topic,
                                               model=args.model)
    async with mqtt_publish(args.host, args.port) as publish:
        from hearthgate.simulators.zigbee2mqtt import sos_action_for

        sim = Zigbee2MqttPublisher(publish, devices, repeats=args.repeats)
        await sim.announce()

        async def press() -> None:
            for n, topic in enumerate(args.press):
                await sim.state(f"press-{n}", {"action": sos_action_for(args.model)},
                                args.repeats)
                print(f"pressed SOS on {topic}", flush=True)

        await _bench(args, scenario, sim, press if args.press else None)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m hearthgate.simulators.presence KIND ...` (the same as `hearthgate simulate`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(f"usage: simulate {{{','.join(KINDS)}}} ...", file=sys.stderr)
        return 2
    return simulate_main(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
