"""The `modbus` protocol: Modbus RTU meters on a `serial` bus.

Sharing the line: Modbus devices go through `SerialBus.exchange` like every other meter on
the bus (so a Modbus meter and DL/T 645 meters may share one RS-485 pair, and no device
opens a port itself). pymodbus does the Modbus part sans-I/O: its `FramerRTU` builds and
checks frames (CRC-16/MODBUS), its PDU classes encode requests and decode replies. We do not
use `AsyncModbusSerialClient`, which would want the port for itself.

Device keys: `unit` (Modbus address 1-247), `poll` (default 1m), and either `model`
(`sdm120`, `sdm630`: built-in register maps) or `registers:` (a list, for water meters and
other models) with per register: `address`, `function` (3 holding / 4 input), `type`
(`uint16` `int16` `uint32` `int32` `float32` `uint64` `int64` `float64`), `word_order` and
`byte_order` (`big`/`little`), `scale` (multiplied in), `unit` (the register's unit when it
differs from the metric's, e.g. `L` or `Wh`), `metric`. `max_rate` as for the other meters.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from hearthgate.core.durations import Duration
from hearthgate.core.model import METRIC_UNITS
from hearthgate.core.options import DeviceConfig, Options
from hearthgate.drivers.base import DriverContext, ProtocolSpec
from hearthgate.drivers.meter_poller import MeterPoller, PollFailed, Reading
from hearthgate.drivers.meter_sense import convert, convertible_units
from hearthgate.drivers.serial_bus import SerialBus

if TYPE_CHECKING:
    from pymodbus.pdu import ModbusPDU

RegisterType = Literal["uint16", "int16", "uint32", "int32", "float32", "uint64", "int64",
                       "float64"]
_STRUCT = {"uint16": "H", "int16": "h", "uint32": "I", "int32": "i", "float32": "f",
           "uint64": "Q", "int64": "q", "float64": "d"}
NUMERIC_METRICS = sorted(
    m for m in METRIC_UNITS
    if m not in {"motion", "occupancy", "door_open", "sos", "fall", "tamper", "card",
                 "access_granted", "exit_button", "alive"}
)
MAX_REGISTERS_PER_READ = 125


class RegisterSpec(Options):
    """One value in a register map."""

    address: int = Field(ge=0, le=0xFFFF)
    function: Literal[3, 4] = 3
    type: RegisterType = "uint16"
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    unit: str | None = None
    metric: str

    @property
    def count(self) -> int:
        return struct.calcsize(">" + _STRUCT[self.type]) // 2

    @model_validator(mode="after")
    def _metric_known(self) -> RegisterSpec:
        if self.metric not in NUMERIC_METRICS:
            known = ", ".join(NUMERIC_METRICS)
            raise ValueError(f"unknown metric '{self.metric}'; one of: {known}")
        target = METRIC_UNITS[self.metric]
        if self.unit is not None and self.unit != target:
            if target is None or self.unit not in convertible_units(target):
                raise ValueError(f"unit '{self.unit}' does not convert to {target or 'a number'}"
                                 f" for {self.metric}")
        return self

    def decode(self, registers: list[int]) -> float:
        raw = b"".join(r.to_bytes(2, "big") for r in registers)
        words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
        if self.word_order == "little":
            words.reverse()
        if self.byte_order == "little":
            words = [w[::-1] for w in words]
        (value,) = struct.unpack(">" + _STRUCT[self.type], b"".join(words))
        value = float(value) * self.scale
        if self.unit is not None and self.unit != METRIC_UNITS[self.metric]:
            value = convert(value, self.unit, METRIC_UNITS[self.metric] or "")
        return value

    def encode(self, value: float) -> list[int]:
        """The registers a meter holds for `value` (simulators, tests)."""
        if self.unit is not None and self.unit != METRIC_UNITS[self.metric]:
            value = value / convert(1.0, self.unit, METRIC_UNITS[self.metric] or "")
        raw_value: float | int = value / self.scale
        if _STRUCT[self.type] not in "fd":
            raw_value = round(raw_value)
        raw = struct.pack(">" + _STRUCT[self.type], raw_value)
        words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
        if self.byte_order == "little":
            words = [w[::-1] for w in words]
        if self.word_order == "little":
            words.reverse()
        return [int.from_bytes(w, "big") for w in words]


def _f32(address: int, metric: str, function: Literal[3, 4] = 4) -> RegisterSpec:
    return RegisterSpec(address=address, function=function, type="float32", metric=metric)


# Eastron input registers (FC 04), float32, high word first.
MODELS: dict[str, tuple[RegisterSpec, ...]] = {
    "sdm120": (
        _f32(0x0000, "voltage_v"),
        _f32(0x0006, "current_a"),
        _f32(0x000C, "power_w"),
        _f32(0x001E, "power_factor"),
        _f32(0x0046, "frequency_hz"),
        _f32(0x0048, "energy_total_kwh"),
        _f32(0x004A, "energy_export_kwh"),
    ),
    "sdm630": (
        _f32(0x0000, "voltage_v"),  # phase 1 line to neutral
        _f32(0x0030, "current_a"),  # sum of line currents
        _f32(0x0034, "power_w"),  # total system power
        _f32(0x003E, "power_factor"),  # total system power factor
        _f32(0x0046, "frequency_hz"),
        _f32(0x0048, "energy_total_kwh"),  # total import
        _f32(0x004A, "energy_export_kwh"),
    ),
}


class ModbusOptions(Options):
    unit: int = Field(ge=1, le=247, description="the meter's Modbus address")
    poll: Duration = Field(default=60.0, ge=1.0)
    model: Literal["sdm120", "sdm630"] | None = None
    registers: tuple[RegisterSpec, ...] | None = None
    max_rate: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_map(self) -> ModbusOptions:
        if (self.model is None) == (self.registers is None):
            raise ValueError("give either model: (sdm120, sdm630) or a registers: map, not both")
        if self.registers is not None and not self.registers:
            raise ValueError("registers: is empty")
        return self

    @property
    def register_map(self) -> tuple[RegisterSpec, ...]:
        return self.registers if self.registers is not None else MODELS[self.model or ""]


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One request: contiguous registers of one function, and the values inside."""

    function: int
    address: int
    count: int
    specs: tuple[RegisterSpec, ...]


def plan_reads(specs: tuple[RegisterSpec, ...]) -> list[ReadBlock]:
    """Group a register map into as few requests as possible, without reading registers the
    map does not name (meters answer 'illegal address' to gaps)."""
    blocks: list[ReadBlock] = []
    for spec in sorted(specs, key=lambda s: (s.function, s.address)):
        last = blocks[-1] if blocks else None
        if (
            last is not None
            and last.function == spec.function
            and spec.address == last.address + last.count
            and last.count + spec.count <= MAX_REGISTERS_PER_READ
        ):
            blocks[-1] = ReadBlock(last.function, last.address, last.count + spec.count,
                                   (*last.specs, spec))
        else:
            blocks.append(ReadBlock(spec.function, spec.address, spec.count, (spec,)))
    return blocks


class ModbusRTU:
    """Sans-I/O Modbus RTU client side, built on pymodbus's framer and PDU classes."""

    def __init__(self) -> None:
        from pymodbus.framer import FramerRTU
        from pymodbus.pdu import DecodePDU

        self.framer = FramerRTU(DecodePDU(is_server=False))

    def read_request(self, unit: int, function: int, address: int, count: int) -> bytes:
        from pymodbus.pdu.register_message import (
            ReadHoldingRegistersRequest,
            ReadInputRegistersRequest,
        )

        cls = ReadInputRegistersRequest if function == 4 else ReadHoldingRegistersRequest
        return self.framer.buildFrame(cls(address=address, count=count, dev_id=unit))

    def next_reply(
        self, buf: bytearray, unit: int, function: int,
        report: Callable[[str, bytes, str], None],
    ) -> ModbusPDU | None:
        """Take the reply of `unit` to `function` from the buffer; None while incomplete.

        pymodbus's own framer hunts byte by byte and throws the whole buffer away on a CRC
        error; knowing which unit and function must answer lets us resynchronise on a reply
        hidden behind garbage, and count what we drop.
        """
        from pymodbus.framer import FramerRTU

        starts = (function, function | 0x80)
        while len(buf) >= 2:
            at = next(
                (i for i in range(len(buf) - 1) if buf[i] == unit and buf[i + 1] in starts), -1
            )
            if at < 0:
                keep = 1 if buf[-1] == unit else 0
                report("garbage", bytes(buf[: len(buf) - keep]), "bytes outside a reply")
                del buf[: len(buf) - keep]
                return None
            if at:
                report("garbage", bytes(buf[:at]), "bytes before the reply")
                del buf[:at]
            if buf[1] & 0x80:
                size = 5
            elif len(buf) >= 3:
                size = 5 + buf[2]
            else:
                return None
            if len(buf) < size:
                return None
            frame = bytes(buf[:size])
            crc = int.from_bytes(frame[-2:], "big")
            if not FramerRTU.check_CRC(frame[:-2], crc):
                report("checksum", frame, "CRC mismatch")
                del buf[:1]
                continue
            del buf[:size]
            pdu = self.framer.decoder.decode(frame[1:-2])
            if pdu is None:
                report("format", frame, "undecodable reply")
                continue
            pdu.dev_id = unit
            return pdu
        return None


class ModbusDriver(MeterPoller):
    protocol = "modbus"

    def __init__(self, bus: SerialBus, devices: list[DeviceConfig], ctx: DriverContext) -> None:
        super().__init__(bus, devices, ctx)
        self.rtu = ModbusRTU()
        self._plans: dict[str, list[ReadBlock]] = {}

    def _plan(self, device: DeviceConfig) -> list[ReadBlock]:
        plan = self._plans.get(device.id)
        if plan is None:
            opts = device.options
            assert isinstance(opts, ModbusOptions)
            plan = self._plans[device.id] = plan_reads(opts.register_map)
        return plan

    def _parse_for(self, device: DeviceConfig, unit: int, block: ReadBlock) -> Callable[
        [bytearray], Any
    ]:
        ctx = self.ctx

        def report(kind: str, data: bytes, detail: str) -> None:
            ctx.frame_error(device.id, kind, data, detail)

        def parse(buf: bytearray) -> ModbusPDU | None:
            return self.rtu.next_reply(buf, unit, block.function, report)

        return parse

    async def poll(self, device: DeviceConfig) -> list[Reading]:
        opts = device.options
        assert isinstance(opts, ModbusOptions)
        readings: list[Reading] = []
        refused = 0
        plan = self._plan(device)
        for block in plan:
            request = self.rtu.read_request(opts.unit, block.function, block.address, block.count)
            pdu = await self.bus.exchange(request, self._parse_for(device, opts.unit, block))
            if pdu.function_code & 0x80:
                refused += 1
                report = f"exception {getattr(pdu, 'exception_code', '?')} at {block.address:#06x}"
                self.ctx.frame_error(device.id, "error_reply", b"", report)
                continue
            registers = list(pdu.registers)
            if len(registers) != block.count:
                self.ctx.frame_error(device.id, "length", b"",
                                     f"{len(registers)} registers, asked {block.count}")
                continue
            for spec in block.specs:
                start = spec.address - block.address
                value = spec.decode(registers[start : start + spec.count])
                if value != value or value in (float("inf"), float("-inf")):
                    self.ctx.frame_error(device.id, "not_a_number", b"", spec.metric)
                    continue
                readings.append(Reading(spec.metric, round(value, 6)))
        if plan and refused == len(plan):
            raise PollFailed(f"unit {opts.unit} refused every read")
        return readings


def _create(bus: object, devices: list[DeviceConfig], ctx: DriverContext) -> ModbusDriver:
    return ModbusDriver(bus, devices, ctx)  # type: ignore[arg-type]  # checked there


PROTOCOL = ProtocolSpec(
    name="modbus",
    options=ModbusOptions,
    kinds=frozenset({"power_meter", "water_meter"}),
    bus_types=frozenset({"serial"}),
    create=_create,
    description="Modbus RTU meters (Eastron SDM120/SDM630 or a register map)",
    address=("unit",),
    parities=frozenset({"N", "E"}),
)
