"""Simulated meters: what each one reads, how it consumes, and how it misbehaves.

Consumption is scripted by rates (`power_w`, `flow_m3h`) and advanced by `settle` on the
clock of the simulator that serves the meter. Faults, per meter, on every `fault_every`-th
request: `no_answer`, `bad_checksum`, `garbage` (noise around a good reply), `slow` (answers
after `slow_seconds`), `error_reply`, `wrong_address` (answers as another meter), `truncated`.
The servers that answer for them on a line are `meter_bus` (DL/T 645, CJ/T 188) and
`sdm120` (Modbus RTU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from hearthgate.drivers import cjt188_codec, dlt645_codec

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
    """A DL/T 645-2007 electricity meter: energy, power, voltage, current."""

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
    """A CJ/T 188-2004 water meter: totals, status (valve, battery), a valve to switch."""

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
    # Like many real meters: FF-fill the fields it does not keep (the settlement-day total,
    # the clock, ST) instead of sending BCD (docs/protocols.md, CJ/T 188).
    pads: bool = False

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
        if self.pads:
            return cjt188_codec.FlowReading(
                ser=ser, total=total, total_unit=code, settlement=None, settlement_unit=code,
                meter_time=None, status=None,
            )
        return cjt188_codec.FlowReading(
            ser=ser, total=total, total_unit=code, settlement=settlement, settlement_unit=code,
            meter_time=self.meter_time or datetime(2024, 5, 17, 8, 30),
            status=layout.encode(self.valve, self.battery_low),
        )


@dataclass
class SDM120Meter(SimulatedMeter):
    """An Eastron SDM120 Modbus RTU energy meter: its readings as float32 registers."""

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
