"""Raspberry Pi GPIO inputs: a PIR motion sensor or a reed switch wired to a pin.

Bus type `gpio` (the Pi's own pins; one per gateway is enough) and protocol `gpio`
(one device per pin). gpiozero does the pin work and is imported only when a gpio bus
is opened, so gateways without GPIO devices never load it.

Debounce: a reed switch chatters for a few milliseconds when a door moves. A pin's new
state is reported once it has been stable for `bounce` (measured on the gateway clock),
so the last state is never lost, unlike dropping edges for a while after the first.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from hearthgate.core.durations import Duration
from hearthgate.core.options import Options
from hearthgate.drivers.base import BusType, ProtocolSpec

if TYPE_CHECKING:
    from hearthgate.core.options import BusConfig, DeviceConfig
    from hearthgate.drivers.base import DriverContext

log = logging.getLogger("hearthgate.gpio")

# Which metric each kind reports, and how a pin's "active" maps to it.
KIND_METRIC = {"motion_sensor": "motion", "door_contact": "door_open"}


class GpioBusOptions(Options):
    # gpiozero's pin libraries; `auto` lets gpiozero pick (lgpio on a current Pi OS),
    # `mock` simulates pins (bench tests, the demo).
    pin_factory: Literal["auto", "lgpio", "rpigpio", "pigpio", "native", "mock"] = "auto"


class GpioDeviceOptions(Options):
    pin: int | str = Field(description="BCM number (17) or a gpiozero name (GPIO17, BOARD11)")
    # Default by kind: a PIR drives its output high (no pull-up), a reed switch closes to
    # ground (pull-up on). `null` leaves the pin floating: then say `active_state`.
    pull_up: bool | None = None
    active_state: bool | None = None
    bounce: Duration = Field(default=0.05, ge=0, le=10)
    # A reed switch is closed (active) while the door is shut; set true if yours is wired
    # the other way round (normally-closed contact, or an active-low PIR module).
    invert: bool = False

    @model_validator(mode="after")
    def _floating_needs_active_state(self) -> GpioDeviceOptions:
        if "pull_up" in self.model_fields_set and self.pull_up is None and (
            self.active_state is None
        ):
            raise ValueError("a floating pin (pull_up: null) needs active_state: true|false")
        if self.active_state is not None and self.pull_up is not None:
            raise ValueError("active_state is only for a floating pin (pull_up: null)")
        return self

    def pull_up_for(self, kind: str) -> bool | None:
        if "pull_up" in self.model_fields_set:
            return self.pull_up
        return kind == "door_contact"


class GpioBus:
    """The Pi's pins, through one gpiozero pin factory."""

    def __init__(self, bus_id: str, options: GpioBusOptions, factory: Any = None) -> None:
        self.id = bus_id
        self.options = options
        self._factory = factory

    @property
    def factory(self) -> Any:
        if self._factory is None:
            name = self.options.pin_factory
            if name == "mock":
                from gpiozero.pins.mock import MockFactory

                self._factory = MockFactory()
            elif name != "auto":
                from gpiozero import Device

                self._factory = _named_factory(name)
                Device.pin_factory = self._factory
        return self._factory

    def input(self, pin: int | str, *, pull_up: bool | None, active_state: bool | None,
              ) -> Any:
        from gpiozero import DigitalInputDevice

        return DigitalInputDevice(
            pin, pull_up=pull_up, active_state=active_state, pin_factory=self.factory
        )

    async def run(self) -> None:
        return None  # pins need no link of their own to keep up


def _named_factory(name: str) -> Any:
    if name == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    if name == "rpigpio":
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        return RPiGPIOFactory()
    if name == "pigpio":
        from gpiozero.pins.pigpio import PiGPIOFactory

        return PiGPIOFactory()
    from gpiozero.pins.native import NativeFactory

    return NativeFactory()


@dataclass
class _Watched:
    device: DeviceConfig
    options: GpioDeviceOptions
    metric: str
    pin: Any = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    last: bool | None = None


class GpioDriver:
    """Watches one pin per device and emits `motion` / `door_open` on settled changes."""

    def __init__(self, bus: GpioBus, devices: list[DeviceConfig], ctx: DriverContext) -> None:
        self.bus = bus
        self.ctx = ctx
        self.watched: list[_Watched] = []
        for dev in devices:
            opts = dev.options
            assert isinstance(opts, GpioDeviceOptions)
            self.watched.append(_Watched(dev, opts, KIND_METRIC[dev.kind]))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.TaskGroup() as tg:
                for w in self.watched:
                    if self._open(w, loop):
                        tg.create_task(self._watch(w))
        finally:
            for w in self.watched:
                if w.pin is not None:
                    w.pin.close()
                    w.pin = None

    def _open(self, w: _Watched, loop: asyncio.AbstractEventLoop) -> bool:
        o = w.options
        try:
            w.pin = self.bus.input(
                o.pin, pull_up=o.pull_up_for(w.device.kind), active_state=o.active_state
            )
        except Exception as exc:  # gpiozero raises many kinds (PinInUse, BadPinFactory, ...)
            self.ctx.set_reachable(w.device, False, f"GPIO pin {o.pin}: {exc}")
            return False

        def on_edge() -> None:
            # gpiozero calls back from its own thread on a real Pi.
            loop.call_soon_threadsafe(w.changed.set)

        w.pin.when_activated = on_edge
        w.pin.when_deactivated = on_edge
        self.ctx.set_reachable(w.device, True, heard=False)  # the pin opened, nothing pressed
        return True

    def _value(self, w: _Watched) -> bool:
        active = bool(w.pin.is_active)
        if w.metric == "door_open":
            active = not active  # reed closed = door shut
        return active != w.options.invert

    async def _watch(self, w: _Watched) -> None:
        self._report(w)
        while True:
            await w.changed.wait()
            w.changed.clear()
            # Settle: report only once no edge arrived for a whole bounce period.
            while True:
                await self.ctx.clock.sleep(w.options.bounce)
                if not w.changed.is_set():
                    break
                w.changed.clear()
            self._report(w)

    def _report(self, w: _Watched) -> None:
        value = self._value(w)
        if value != w.last:
            w.last = value
            self.ctx.emit(w.device, w.metric, value, attrs={"pin": str(w.options.pin)})


def _open_gpio_bus(config: BusConfig, ctx: DriverContext) -> GpioBus:
    assert isinstance(config.options, GpioBusOptions)
    return GpioBus(config.id, config.options)


def _create(bus: Any, devices: list[DeviceConfig], ctx: DriverContext) -> GpioDriver:
    return GpioDriver(bus, devices, ctx)


BUS_TYPE = BusType(
    "gpio", GpioBusOptions, _open_gpio_bus, description="the Raspberry Pi's GPIO pins"
)
PROTOCOL = ProtocolSpec(
    name="gpio",
    options=GpioDeviceOptions,
    kinds=frozenset(KIND_METRIC),
    bus_types=frozenset({"gpio"}),
    create=_create,
    description="a PIR (motion) or reed switch (door) wired to a GPIO pin",
    address=("pin",),
)
