"""`hearthgate simulate rflink|osdp|zigbee2mqtt ...`: presence-device simulators for bench tests.

Each simulator acts out a scenario (gateway/simulators/scenario.py) for the devices of its protocol.
Devices come from the scenario's `devices:` and/or a gateway config (`-c`), so an
installer can point the simulator at the very config the gateway runs with.

    hearthgate simulate rflink --link /tmp/ttyRF --press "EV1527;ID=5a3c1"
    hearthgate simulate rflink --link /tmp/ttyRF -c gateway.yaml --scenario night.yaml
    hearthgate simulate osdp --link /tmp/ttyOSDP --address 1 --card 123:4567
    hearthgate simulate zigbee2mqtt --host 127.0.0.1 -c gateway.yaml --scenario night.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
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
    p.add_argument("--duration", default="1d", help="how much scenario time to play (e.g. 2h)")
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


async def _play_then_wait(scenario: Scenario, args: argparse.Namespace, sink: Any) -> None:
    if scenario.steps:
        report = await play(scenario, _clock(args.speed), sink, duration=_duration(args.duration))
        for action in report.unhandled:
            log.warning("no %s device '%s' for step '%s'", args.kind_name, action.device,
                        action.do)


async def _run_rflink(args: argparse.Namespace, scenario: Scenario) -> int:
    from hearthgate.drivers.rflink_codec import RFLinkMatch
    from hearthgate.simulators.rflink import RFLinkReceiverSimulator

    args.kind_name = "rflink"
    link = await _link(args)
    try:
        sim = RFLinkReceiverSimulator(link, scenario.devices_of("rflink"), repeats=args.repeats)
        sim.banner()
        for text in args.press:
            await sim.transmit(RFLinkMatch.parse(text), "ON")
            print(f"pressed {text} ({args.repeats} radio repeats)", flush=True)
        await _play_then_wait(scenario, args, sim)
        if not args.press and not scenario.steps:
            await asyncio.Event().wait()  # keep the line up for manual checks
        await asyncio.sleep(0.5)  # let the last bytes drain to the reader
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
    server = asyncio.create_task(sim.run())
    try:
        await _play_then_wait(scenario, args, sim)
        await server  # a control panel keeps polling: serve until interrupted
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
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
        sim = Zigbee2MqttPublisher(publish, devices, repeats=args.repeats)
        await sim.announce()
        for n, topic in enumerate(args.press):
            from hearthgate.simulators.zigbee2mqtt import sos_action_for

            await sim.state(f"press-{n}", {"action": sos_action_for(args.model)}, args.repeats)
            print(f"pressed SOS on {topic}", flush=True)
        await _play_then_wait(scenario, args, sim)
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
