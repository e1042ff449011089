"""The `cjt188` protocol: CJ/T 188-2004 water meters on a `serial` (RS-485) bus.

Device keys: `address` (all 14 digits from the nameplate, in quotes; `check` refuses fewer), `poll`
(default 5m), `meter_type` (default `cold_water`), `di_order` (`high_first` sends DI 901F as
`90 1F`, `low_first` as `1F 90`; replies are accepted either way), `status` (where the model
keeps valve and battery bits: `standard`, `high_bits`, or `none`), `preamble` (FE bytes,
default 4), `max_rate` (m³ per hour the total may plausibly grow; default 5).

Each poll reads DI 901F and emits `water_total_m3` (L converted to m³), and unless
`status: none`, `valve_open`, `valve_fault` and `battery_low`. Fields the meter fills with
`FF` (not supported: often the settlement-day total, the clock, ST) are left out; the total
is still published. A meter whose every answer is refused is reported unreachable with what
was wrong ("reply not understood: ..."), not as "no reply".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field

from hearthgate.core.options import DeviceConfig
from hearthgate.drivers import cjt188_codec as codec
from hearthgate.drivers.base import DriverContext, ProtocolSpec
from hearthgate.drivers.meter_poller import BCDMeterOptions, MeterPoller, PollFailed, Reading
from hearthgate.drivers.meter_sense import convert
from hearthgate.drivers.serial_bus import SerialBus

METER_TYPE_CODES = {
    "cold_water": 0x10,
    "hot_water": 0x11,
    "drinking_water": 0x12,
    "reclaimed_water": 0x13,
}


class CJT188Options(BCDMeterOptions):
    codec = codec
    address: str = Field(description="meter address, 14 digits as on the nameplate")
    meter_type: Literal["cold_water", "hot_water", "drinking_water", "reclaimed_water"] = (
        "cold_water"
    )
    di_order: codec.DiOrder = "high_first"
    status: Literal["standard", "high_bits", "none"] = "standard"


class CJT188Driver(MeterPoller):
    protocol = "cjt188"

    def __init__(self, bus: SerialBus, devices: list[DeviceConfig], ctx: DriverContext) -> None:
        super().__init__(bus, devices, ctx)
        self._ser = 0

    def _next_ser(self) -> int:
        self._ser = (self._ser + 1) & 0xFF
        return self._ser

    @staticmethod
    def _answers(ser: int) -> Callable[[codec.FlowReading | codec.ErrorReply],
                                       tuple[str, str] | None]:
        def check(reply: codec.FlowReading | codec.ErrorReply) -> tuple[str, str] | None:
            if reply.ser != ser:
                # A late answer to an earlier request: not this exchange's reply.
                return "stale_reply", f"SER {reply.ser}, expected {ser}"
            return None

        return check

    async def poll(self, device: DeviceConfig) -> list[Reading]:
        opts = device.options
        assert isinstance(opts, CJT188Options)
        ser = self._next_ser()
        request = codec.read_request(
            METER_TYPE_CODES[opts.meter_type], opts.address, ser,
            di_order=opts.di_order, preamble=opts.preamble,
        )
        parse = self.reply_parser(
            device, codec, codec.CJT188StreamDecoder(), opts.address, self._answers(ser)
        )
        reply = await self.exchange(request, parse)
        if isinstance(reply, codec.ErrorReply):
            self.ctx.frame_error(device.id, "error_reply", b"", f"ST {reply.status.hex(' ')}")
            raise PollFailed(f"meter {opts.address} answered with an error (ST "
                             f"{reply.status.hex(' ')})")
        readings: list[Reading] = []
        unit = codec.UNITS.get(reply.total_unit)
        if reply.total is None:
            # The one field this driver exists for is FF-filled: the meter answers but tells
            # nothing, which must not look like a healthy water meter.
            self.ctx.frame_error(device.id, "not_supported", b"", "total is FF-filled")
            raise PollFailed(f"reply not understood: meter {opts.address} sends no total "
                             "(FF-filled)")
        if unit in ("m3", "L"):
            total = convert(float(reply.total), unit, "m3")
            readings.append(Reading("water_total_m3", round(total, 5)))
        else:
            self.ctx.frame_error(device.id, "unit", bytes([reply.total_unit]),
                                 f"unit code {reply.total_unit:02X} is not a volume")
        if opts.status != "none" and reply.status is not None:
            layout = codec.STATUS_LAYOUTS[opts.status]
            valve = layout.valve(reply.status)
            readings.append(Reading("valve_open", valve == "open"))
            readings.append(Reading("valve_fault", valve == "abnormal"))
            readings.append(Reading("battery_low", layout.battery_low(reply.status)))
        return readings


def _create(bus: object, devices: list[DeviceConfig], ctx: DriverContext) -> CJT188Driver:
    return CJT188Driver(bus, devices, ctx)  # type: ignore[arg-type]  # checked there


PROTOCOL = ProtocolSpec(
    name="cjt188",
    options=CJT188Options,
    kinds=frozenset({"water_meter"}),
    bus_types=frozenset({"serial"}),
    create=_create,
    description="CJ/T 188-2004 water meters (China) on RS-485",
    address=("address",),
    parities=frozenset({"E"}),
)
