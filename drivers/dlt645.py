"""The `dlt645` protocol: DL/T 645-2007 electricity meters on a `serial` bus.

Device keys: `address` (all 12 digits from the nameplate, in quotes; `check` refuses fewer), `poll`
(default 5m), `read` (which values to read each poll), `energy` (`forward` active energy,
the usual choice, or `combined`), `preamble` (FE bytes before each request, default 4),
`max_rate` (kWh per hour a total may plausibly grow; default 50).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import Field

from hearthgate.core.options import DeviceConfig
from hearthgate.drivers import dlt645_codec as codec
from hearthgate.drivers.base import DriverContext, ProtocolSpec
from hearthgate.drivers.meter_poller import BCDMeterOptions, MeterPoller, PollFailed, Reading
from hearthgate.drivers.meter_sense import convert

ReadItem = Literal["energy_total_kwh", "power_w", "voltage_v", "current_a"]

_DI = {
    "power_w": 0x02030000,
    "voltage_v": 0x02010100,
    "current_a": 0x02020100,
}
_ENERGY_DI = {"forward": 0x00010000, "combined": 0x00000000}


class DLT645Options(BCDMeterOptions):
    codec = codec
    address: str = Field(description="meter address, 12 digits as on the nameplate")
    read: tuple[ReadItem, ...] = ("energy_total_kwh", "power_w", "voltage_v", "current_a")
    energy: Literal["forward", "combined"] = "forward"


class DLT645Driver(MeterPoller):
    protocol = "dlt645"

    @staticmethod
    def _answers(di: int) -> Callable[[codec.ReadReply | codec.ErrorReply], tuple[str, str] | None]:
        def check(reply: codec.ReadReply | codec.ErrorReply) -> tuple[str, str] | None:
            if isinstance(reply, codec.ReadReply) and reply.di != di:
                return "other_di", f"reply for {reply.di:08X}, asked {di:08X}"
            return None

        return check

    async def poll(self, device: DeviceConfig) -> list[Reading]:
        opts = device.options
        assert isinstance(opts, DLT645Options)
        readings: list[Reading] = []
        refused = 0
        for item in opts.read:
            di = _ENERGY_DI[opts.energy] if item == "energy_total_kwh" else _DI[item]
            request = codec.read_request(opts.address, di, preamble=opts.preamble)
            parse = self.reply_parser(
                device, codec, codec.DLT645StreamDecoder(), opts.address, self._answers(di)
            )
            reply = await self.exchange(request, parse)
            if isinstance(reply, codec.ErrorReply):
                refused += 1
                self.ctx.frame_error(device.id, "error_reply", b"",
                                     f"{di:08X}: {', '.join(reply.reasons)}")
                continue
            value = float(reply.value)
            if item == "power_w":
                value = convert(value, "kW", "W")
            monotonic = not (item == "energy_total_kwh" and opts.energy == "combined")
            readings.append(Reading(item, round(value, 4), monotonic))
        if opts.read and refused == len(opts.read):
            raise PollFailed(f"meter {opts.address} refused every read")
        return readings


def _create(bus: object, devices: list[DeviceConfig], ctx: DriverContext) -> DLT645Driver:
    return DLT645Driver(bus, devices, ctx)  # type: ignore[arg-type]  # checked there


PROTOCOL = ProtocolSpec(
    name="dlt645",
    options=DLT645Options,
    kinds=frozenset({"power_meter"}),
    bus_types=frozenset({"serial"}),
    create=_create,
    description="DL/T 645-2007 electricity meters (China) on RS-485",
    address=("address",),
    parities=frozenset({"E"}),
)
