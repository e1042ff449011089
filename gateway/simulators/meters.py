"""Meter simulators that answer with real DL/T 645, CJ/T 188 and Modbus RTU bytes.

- `MeterBusSimulator(link, meters=[DLT645Meter(...), CJT188Meter(...)])`: any mix of DL/T 645
  and CJ/T 188 meters on one simulated RS-485 line, answering through the same codecs the
  drivers use. `await sim.run()` serves until cancelled.
- `SDM120Simulator(link, meters=[SDM120Meter(unit=1)])`: Eastron SDM120 meters served by
  pymodbus's own `ModbusSerialServer` (SimDevice/SimData), on a second pseudo-terminal that
  is cross-connected to `link` (a null modem), so faults can be injected on the way back.
- `simulate_main(kind, argv)`: the `hearthgate simulate dlt645|cjt188|sdm120` command.

Consumption is scripted by rates (`power_w`, `flow_m3h`) on a clock (real time by default, a
`ScaledClock` to make hours pass in seconds). Faults, per meter, on every `fault_every`-th
request: `no_answer`, `bad_checksum`, `garbage` (noise around a good reply), `slow` (answers
after `slow_seconds`), `error_reply`, `wrong_address` (answers as another meter), `truncated`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from hearthgate.core.clock import Clock, ScaledClock, SystemClock
from hearthgate.core.codec import NEED_MORE, CodecError
from hearthgate.drivers import cjt188_codec, dlt645_codec
from hearthgate.simulators.links import Link, PtyLink, SerialLink

log = logging.getLogger("hearthgate.simulate")

Fault = Literal[
    "no_answer", "bad_checksum", "garbage", "slow", "error_reply", "wrong_address", "truncated"
]
FAULTS: tuple[str, ...] = Fault.__args__  # type: ignore[attr-defined]


@dataclass
class SimulatedMeter:
    """What every simulated meter has: an address, a fault mode, counters."""

    address: str = ""
    fault: Fault | None = None
    fault_every: int = 1
    slow_seconds: float = 1.5
    requests: int = 0
    _last_mono: float | None = field(default=None, repr=False)

    def next_fault(self) -> Fault | None:
        self.requests += 1
        if self.fault is None or self.requests % max(1, self.fault_every):
            return None
        return self.fault

    def settle(self, mono: float) -> None:
        """Advance the consumption to the clock reading `mono`."""
        if self._last_mono is not None and mono > self._last_mono:
            self.consume((mono - self._last_mono) / 3600.0)
        self._last_mono = mono

    def consume(self, hours: float) -> None:
        raise NotImplementedError


@dataclass
class DLT645Meter(SimulatedMeter):
    energy_kwh: float = 1234.56
    power_w: float = 500.0
    voltage_v: float = 220.1
    current_a: float | None = None  # derived from power and voltage unless set

    def consume(self, hours: float) -> None:
        self.energy_kwh += self.power_w / 1000.0 * hours

    def value(self, di: int) -> Decimal | str | None:
        if di in (0x00000000, 0x00010000):
            return Decimal(f"{self.energy_kwh:.2f}")
        if di == 0x02030000:
            return Decimal(f"{self.power_w / 1000.0:.4f}")
        if di == 0x02010100:
            return Decimal(f"{self.voltage_v:.1f}")
        if di == 0x02020100:
            amps = self.current_a
            if amps is None:
                amps = self.power_w / self.voltage_v if self.voltage_v else 0.0
            return Decimal(f"{amps:.3f}")
        if di == dlt645_codec.DI_ADDRESS:
            return self.address
        return None


@dataclass
class CJT188Meter(SimulatedMeter):
    total_m3: float = 123.45
    settlement_m3: float = 100.0
    flow_m3h: float = 0.0
    meter_type: int = 0x10
    unit: Literal["m3", "L"] = "m3"
    di_order: cjt188_codec.DiOrder = "high_first"
    status_layout: str = "standard"
    valve: Literal["open", "closed", "abnormal"] = "open"
    battery_low: bool = False
    meter_time: datetime | None = None

    def consume(self, hours: float) -> None:
        if self.valve == "open":
            self.total_m3 += self.flow_m3h * hours

    def reading(self, ser: int) -> cjt188_codec.FlowReading:
        if self.unit == "L":
            total, settlement = Decimal(f"{self.total_m3 * 1000:.2f}"), Decimal(
                f"{self.settlement_m3 * 1000:.2f}")
        else:
            total, settlement = Decimal(f"{self.total_m3:.2f}"), Decimal(
                f"{self.settlement_m3:.2f}")
        code = cjt188_codec.UNIT_CODES[self.unit]
        layout = cjt188_codec.STATUS_LAYOUTS[self.status_layout]
        return cjt188_codec.FlowReading(
            ser=ser, total=total, total_unit=code, settlement=settlement, settlement_unit=code,
            meter_time=self.meter_time or datetime(2024, 5, 17, 8, 30),
            status=layout.encode(self.valve, self.battery_low),
        )


def _other_address(address: str) -> str:
    return address[:-1] + ("1" if address[-1] != "1" else "2")


def _corrupt(reply: bytes) -> bytes:
    return reply[:-2] + bytes([(reply[-2] + 1) & 0xFF]) + reply[-1:]


class MeterBusSimulator:
    """DL/T 645 and CJ/T 188 meters sharing one simulated RS-485 line."""

    def __init__(
        self, link: Link, meters: Sequence[SimulatedMeter], *, clock: Clock | None = None,
        reply_delay: float = 0.0, rng: random.Random | None = None,
        line_baud: int | None = None,
    ) -> None:
        self.link = link
        # With `line_baud`, a reply is held back by the time the request and the reply would
        # take on a real wire (10 bits a byte), since a pseudo-terminal delivers at once.
        self.line_baud = line_baud
        self.meters = list(meters)
        self.clock: Clock = clock or SystemClock()
        self.reply_delay = reply_delay
        self.rng = rng or random.Random(645188)
        self.bad_requests = 0
        self.replies = 0
        self._buf = bytearray()
        self._decoders = (dlt645_codec.DLT645StreamDecoder(), cjt188_codec.CJT188StreamDecoder())
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def path(self) -> str:
        return self.link.path

    def dlt645(self) -> list[DLT645Meter]:
        return [m for m in self.meters if isinstance(m, DLT645Meter)]

    def cjt188(self) -> list[CJT188Meter]:
        return [m for m in self.meters if isinstance(m, CJT188Meter)]

    async def run(self) -> None:
        try:
            while True:
                self._buf += await self.link.read()
                for reply, delay in self._take_requests():
                    await self._send(reply, delay)
        finally:
            for task in self._pending:
                task.cancel()

    async def _send(self, reply: bytes, delay: float) -> None:
        delay += self.reply_delay
        if delay <= 0:
            self.link.write(reply)
            return
        # A slow meter must not stall the line for the others' (later) requests.
        task = asyncio.create_task(self._send_later(reply, delay))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send_later(self, reply: bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        self.link.write(reply)

    def _wire_time(self, nbytes: int) -> float:
        return nbytes * 10 / self.line_baud if self.line_baud else 0.0

    def _take_requests(self) -> list[tuple[bytes, float]]:
        out: list[tuple[bytes, float]] = []
        buf = self._buf
        while True:
            preamble = 0
            while buf and buf[0] == 0xFE:
                del buf[0]
                preamble += 1
            if not buf:
                return out
            if buf[0] != 0x68:
                cut = buf.find(0x68)
                del buf[: cut if cut >= 0 else len(buf)]
                self.bad_requests += 1
                continue
            # Both standards start a frame with 68: ask each what the bytes are.
            head = bytes(buf)
            results = [decoder.decode(head) for decoder in self._decoders]
            frames = [(used, item) for used, item in results
                      if item is not None and not isinstance(item, CodecError)]
            if frames:
                used, frame = frames[0]
                del buf[:used]
                reply = self._answer(frame)
                if reply is not None:
                    data, delay = reply
                    out.append((data, delay + self._wire_time(preamble + used + len(data))))
                continue
            if any(result == NEED_MORE for result in results) and len(buf) < 300:
                return out
            del buf[0]
            self.bad_requests += 1

    def _answer(self, frame: Any) -> tuple[bytes, float] | None:
        now = self.clock.now().mono
        for meter in self.meters:
            meter.settle(now)
        try:
            if isinstance(frame, dlt645_codec.DLT645Frame):
                return self._answer_dlt645(frame)
            return self._answer_cjt188(frame)
        except ValueError as exc:  # a request we cannot serve: a real meter stays silent
            log.debug("ignoring request: %s", exc)
            self.bad_requests += 1
            return None

    def _apply_fault(self, meter: SimulatedMeter, reply: bytes, error: bytes,
                     other: bytes) -> tuple[bytes, float] | None:
        fault = meter.next_fault()
        self.replies += 1
        if fault is None:
            return reply, 0.0
        if fault == "no_answer":
            return None
        if fault == "bad_checksum":
            return _corrupt(reply), 0.0
        if fault == "garbage":
            noise = bytes(self.rng.randrange(0, 0xFE) for _ in range(self.rng.randint(1, 12)))
            return noise + reply + noise[:3], 0.0
        if fault == "slow":
            return reply, meter.slow_seconds
        if fault == "error_reply":
            return error, 0.0
        if fault == "wrong_address":
            return other, 0.0
        return reply[: len(reply) // 2], 0.0  # truncated

    def _answer_dlt645(self, frame: dlt645_codec.DLT645Frame) -> tuple[bytes, float] | None:
        function, di = dlt645_codec.decode_request(frame)
        meters = self.dlt645()
        if frame.address == dlt645_codec.BROADCAST_ADDRESS:
            return None
        if function == dlt645_codec.READ_ADDRESS:
            if len(meters) != 1:
                return None  # several meters answering at once would collide on the line
            meter = meters[0]
            reply = dlt645_codec.encode_address_reply(meter.address)
            error = dlt645_codec.encode_error_reply(meter.address, 0x01, dlt645_codec.READ_ADDRESS)
            other = dlt645_codec.encode_address_reply(_other_address(meter.address))
            return self._apply_fault(meter, reply, error, other)
        wanted = frame.address
        meter = next((m for m in meters if _matches(wanted, m.address)), None)
        if meter is None or di is None:
            return None
        value = meter.value(di)
        error = dlt645_codec.encode_error_reply(meter.address, 0x02)
        if value is None:
            reply = error
            other = dlt645_codec.encode_error_reply(_other_address(meter.address), 0x02)
        else:
            reply = dlt645_codec.encode_read_reply(meter.address, di, value)
            other = dlt645_codec.encode_read_reply(_other_address(meter.address), di, value)
        return self._apply_fault(meter, reply, error, other)

    def _answer_cjt188(self, frame: cjt188_codec.CJT188Frame) -> tuple[bytes, float] | None:
        request = cjt188_codec.decode_request(frame)
        meters = self.cjt188()
        if request.address == cjt188_codec.ANY_ADDRESS:
            if len(meters) != 1:
                return None
            meter = meters[0]
        else:
            meter = next((m for m in meters if _matches(request.address, m.address)), None)
            if meter is None:
                return None
        if request.meter_type not in (meter.meter_type, cjt188_codec.ANY_TYPE):
            return None
        t, addr, ser = meter.meter_type, meter.address, request.ser
        error = cjt188_codec.encode_error_reply(t, addr, ser, b"\x01\x00",
                                                function=request.function)
        if request.function == cjt188_codec.READ_ADDRESS:
            reply = cjt188_codec.encode_address_reply(t, addr, ser)
            other = cjt188_codec.encode_address_reply(t, _other_address(addr), ser)
        elif request.function == cjt188_codec.READ and request.di == cjt188_codec.DI_CURRENT_FLOW:
            reading = meter.reading(ser)
            reply = cjt188_codec.encode_flow_reply(t, addr, reading, di_order=meter.di_order)
            other = cjt188_codec.encode_flow_reply(t, _other_address(addr), reading,
                                                   di_order=meter.di_order)
        elif request.function == cjt188_codec.WRITE and request.di == cjt188_codec.DI_VALVE:
            if request.payload[:1] == bytes([cjt188_codec.VALVE_OPEN]):
                meter.valve = "open"
            elif request.payload[:1] == bytes([cjt188_codec.VALVE_CLOSE]):
                meter.valve = "closed"
            data = cjt188_codec.encode_di(cjt188_codec.DI_VALVE, request.di_order) + bytes([ser])
            reply = cjt188_codec.encode_frame(cjt188_codec.CJT188Frame(
                t, addr, cjt188_codec.WRITE | cjt188_codec.FLAG_REPLY, data + b"\0\0"))
            other = error
        else:
            reply = other = error
        return self._apply_fault(meter, reply, error, other)


def _matches(wanted: str, address: str) -> bool:
    """Address match with `A` wildcard nibbles (DL/T 645 and CJ/T 188 both use them)."""
    return all(w == "A" or w == a for w, a in zip(wanted, address, strict=True))


# -- Modbus RTU: Eastron SDM120 on pymodbus's server ------------------------------------------


@dataclass
class SDM120Meter(SimulatedMeter):
    unit: int = 1
    voltage_v: float = 230.0
    power_w: float = 500.0
    power_factor: float = 1.0
    frequency_hz: float = 50.0
    import_kwh: float = 1234.5
    export_kwh: float = 0.0

    def consume(self, hours: float) -> None:
        self.import_kwh += self.power_w / 1000.0 * hours

    def registers(self) -> dict[int, float]:
        amps = self.power_w / self.voltage_v if self.voltage_v else 0.0
        return {
            0x0000: self.voltage_v, 0x0006: amps, 0x000C: self.power_w,
            0x0012: self.power_w / self.power_factor if self.power_factor else 0.0,
            0x0018: 0.0, 0x001E: self.power_factor, 0x0046: self.frequency_hz,
            0x0048: self.import_kwh, 0x004A: self.export_kwh,
            0x0156: self.import_kwh + self.export_kwh,
        }


class SDM120Simulator:
    """SDM120 meters answered by pymodbus's `ModbusSerialServer` behind a null modem.

    The server opens the slave of a private pseudo-terminal; its master is cross-connected
    with `link` (the line the gateway opens). Replies pass through `_deliver`, where faults
    are applied, since the server itself cannot be made to misbehave.
    """

    def __init__(self, link: Link, meters: Sequence[SDM120Meter], *, clock: Clock | None = None,
                 rng: random.Random | None = None) -> None:
        self.link = link
        self.meters = {m.unit: m for m in meters}
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random(120)

    @property
    def path(self) -> str:
        return self.link.path

    def _device(self, meter: SDM120Meter) -> Any:
        from pymodbus.simulator import DataType, SimData, SimDevice

        async def refresh(function_code: int, start_address: int, address: int, count: int,
                          registers: list[int], set_values: Any) -> None:
            meter.settle(self.clock.now().mono)
            for reg, value in meter.registers().items():
                if address <= reg < address + count or address <= reg + 1 < address + count:
                    words = _float_words(value)
                    registers[reg - start_address] = words[0]
                    registers[reg + 1 - start_address] = words[1]
            return None

        data = [SimData(reg, values=float(value), datatype=DataType.FLOAT32)
                for reg, value in sorted(meter.registers().items())]
        return SimDevice(id=meter.unit, simdata=data, action=refresh)

    async def run(self) -> None:
        from pymodbus.server import ModbusSerialServer

        inner = PtyLink()
        server = ModbusSerialServer(
            [self._device(m) for m in self.meters.values()], port=inner.slave_name,
            baudrate=9600, parity="N",
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._requests(inner))
                group.create_task(self._replies(inner))
                group.create_task(server.serve_forever())
        finally:
            with contextlib.suppress(Exception):
                await server.shutdown()
            inner.unplug()

    async def _requests(self, inner: PtyLink) -> None:
        while True:
            inner.write(await self.link.read())

    async def _replies(self, inner: PtyLink) -> None:
        while True:
            data = await inner.read()
            meter = self.meters.get(data[0]) if data else None
            fault = meter.next_fault() if meter is not None else None
            if fault is None or meter is None:
                self.link.write(data)
            elif fault == "no_answer":
                continue
            elif fault == "bad_checksum":
                self.link.write(data[:-1] + bytes([data[-1] ^ 0xFF]))
            elif fault == "garbage":
                noise = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 8)))
                self.link.write(noise + data)
            elif fault == "slow":
                await asyncio.sleep(meter.slow_seconds)
                self.link.write(data)
            elif fault == "error_reply":
                self.link.write(_modbus_exception(data[0], data[1], 0x04))
            elif fault == "wrong_address":
                self.link.write(_modbus_recrc(bytes([(data[0] % 247) + 1]) + data[1:-2]))
            else:
                self.link.write(data[: len(data) // 2])


def _float_words(value: float) -> tuple[int, int]:
    import struct

    raw = struct.pack(">f", value)
    return int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big")


def _modbus_recrc(body: bytes) -> bytes:
    from pymodbus.framer import FramerRTU

    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


def _modbus_exception(unit: int, function: int, code: int) -> bytes:
    return _modbus_recrc(bytes([unit, function | 0x80, code]))


# -- command line --------------------------------------------------------------------------


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
    example = {"dlt645": "000000005678=1234.56", "cjt188": "00000000001234=123.45",
               "sdm120": "1=1234.5"}[kind]
    parser.add_argument(
        "--meter", action="append", default=[], metavar="ADDRESS[=TOTAL]",
        help=f"a meter on the line (repeat for several), e.g. {example}",
    )
    if kind == "cjt188":
        parser.add_argument("--flow", type=float, default=0.0, help="m³/h each meter passes")
        parser.add_argument("--liters", action="store_true", help="report totals in L")
        parser.add_argument("--di-order", choices=["high_first", "low_first"],
                            default="high_first")
    else:
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
    names = ", ".join(str(getattr(m, "address", getattr(m, "unit", "?"))) for m in meters)
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
    if kind not in ("dlt645", "cjt188", "sdm120"):
        print(f"unknown meter kind '{kind}': dlt645, cjt188 or sdm120", file=sys.stderr)
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
