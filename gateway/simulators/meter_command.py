"""`hearthgate simulate dlt645|cjt188|meters|sdm120`: simulated meters on a serial line.

`simulate_main(kind, argv)` serves the meters of `--meter` on a new pseudo-terminal (or
`--port`) until Ctrl-C or `--duration`, with `--fault` and a `--speed` for consumption.
`meters` puts DL/T 645 (`--dlt645`) and CJ/T 188 (`--cjt188`) meters on ONE line, as a flat's
single RS-485 adapter carries both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any

from hearthgate.core.clock import Clock, ScaledClock, SystemClock
from hearthgate.drivers import cjt188_codec, dlt645_codec
from hearthgate.simulators.links import Link, PtyLink, SerialLink
from hearthgate.simulators.meter_bus import MeterBusSimulator
from hearthgate.simulators.meter_models import FAULTS, CJT188Meter, DLT645Meter, SDM120Meter
from hearthgate.simulators.sdm120 import SDM120Simulator


def _parser(kind: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"hearthgate simulate {kind}",
        description=f"Simulate {kind} meters on a serial line (a new pseudo-terminal unless "
        "--port is given). Point a `serial` bus with parity N at the printed path.",
    )
    parser.add_argument("--port", help="serve on this serial port or pyserial URL instead of a pty")
    parser.add_argument("--link", help="also make this symlink to the pty (a stable path)")
    parser.add_argument("--baudrate", type=int, default=2400,
                        help="for --port and --wire-delay (default 2400)")
    parser.add_argument("--parity", choices="NEO", default="N", help="for --port (default N)")
    if kind == "meters":
        parser.add_argument("--dlt645", action="append", default=[], metavar="ADDRESS[=KWH]",
                            help="a DL/T 645 power meter on the line, e.g. 000000005678=1234.56")
        parser.add_argument("--cjt188", action="append", default=[], metavar="ADDRESS[=M3]",
                            help="a CJ/T 188 water meter on the line, e.g. 00000000001234=123.45")
    else:
        example = {"dlt645": "000000005678=1234.56", "cjt188": "00000000001234=123.45",
                   "sdm120": "1=1234.5"}[kind]
        parser.add_argument(
            "--meter", action="append", default=[], metavar="ADDRESS[=TOTAL]",
            help=f"a meter on the line (repeat for several), e.g. {example}",
        )
    if kind in ("cjt188", "meters"):
        parser.add_argument("--flow", type=float, default=0.0, help="m³/h each meter passes")
        parser.add_argument("--liters", action="store_true", help="report totals in L")
        parser.add_argument("--di-order", choices=["high_first", "low_first"],
                            default="high_first")
    if kind != "cjt188":
        parser.add_argument("--power", type=float, default=500.0, help="watts each meter draws")
    parser.add_argument("--fault", choices=FAULTS, help="misbehave this way")
    parser.add_argument("--fault-every", type=int, default=1, metavar="N",
                        help="only on every N-th request (default: all)")
    parser.add_argument("--wire-delay", action="store_true",
                        help="delay replies by the bytes' time on a wire at --baudrate (a pty "
                        "delivers at once)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="time runs this many times faster for consumption (default 1)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (default: run until Ctrl-C)")
    return parser


def _meters(kind: str, args: argparse.Namespace) -> list[Any]:
    if kind == "meters":
        if not args.dlt645 and not args.cjt188:
            raise ValueError("name the meters on the line: --dlt645 and/or --cjt188")
        return (_meters("dlt645", argparse.Namespace(**{**vars(args), "meter": args.dlt645}))
                + _meters("cjt188", argparse.Namespace(**{**vars(args), "meter": args.cjt188})))
    specs = args.meter or [{"dlt645": "000000005678", "cjt188": "00000000001234",
                            "sdm120": "1"}[kind]]
    meters: list[Any] = []
    for spec in specs:
        address, _, total = spec.partition("=")
        common: dict[str, Any] = {"fault": args.fault, "fault_every": args.fault_every}
        if kind == "dlt645":
            meter: Any = DLT645Meter(dlt645_codec.normalize_address(address),
                                     power_w=args.power, **common)
            if total:
                meter.energy_kwh = float(total)
        elif kind == "cjt188":
            meter = CJT188Meter(cjt188_codec.normalize_address(address), flow_m3h=args.flow,
                                unit="L" if args.liters else "m3", di_order=args.di_order,
                                **common)
            if total:
                meter.total_m3 = float(total)
        else:
            meter = SDM120Meter(unit=int(address), power_w=args.power, **common)
            if total:
                meter.import_kwh = float(total)
        meters.append(meter)
    return meters


async def _serve(kind: str, args: argparse.Namespace) -> None:
    link: Link
    if args.port:
        serial_link = SerialLink(args.port, args.baudrate, args.parity)
        await serial_link.open()
        link = serial_link
    else:
        link = PtyLink(args.link)
    clock: Clock = ScaledClock(args.speed) if args.speed != 1.0 else SystemClock()
    meters = _meters(kind, args)
    sim: MeterBusSimulator | SDM120Simulator
    if kind == "sdm120":
        sim = SDM120Simulator(link, meters, clock=clock)
    else:
        sim = MeterBusSimulator(link, meters, clock=clock,
                                line_baud=args.baudrate if args.wire_delay else None)
    # An SDM120 has an empty `address` (it is a Modbus unit): name it by its unit.
    names = ", ".join(str(m.unit) if isinstance(m, SDM120Meter) else m.address for m in meters)
    print(f"{kind} simulator on {link.path}: meters {names}"
          + (f"; fault {args.fault}" if args.fault else ""), flush=True)
    if not args.port:
        print("use a serial bus with parity: N (pseudo-terminals refuse even parity)",
              flush=True)
    try:
        if args.duration > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.duration):
                    await sim.run()
        else:
            await sim.run()
    finally:
        link.close()


def simulate_main(kind: str, argv: list[str]) -> int:
    """`hearthgate simulate KIND ...`; returns the exit code."""
    if kind not in ("dlt645", "cjt188", "meters", "sdm120"):
        print(f"unknown meter kind '{kind}': dlt645, cjt188, meters or sdm120", file=sys.stderr)
        return 2
    parser = _parser(kind)
    args = parser.parse_args(argv)
    try:
        meters = _meters(kind, args)
    except (ValueError, dlt645_codec.FrameError, cjt188_codec.FrameError) as exc:
        parser.error(str(exc))
    del meters
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(kind, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(simulate_main(sys.argv[1] if len(sys.argv) > 1 else "", sys.argv[2:]))
