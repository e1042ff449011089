"""What every driver is given and what it must be.

A *bus runtime* owns one physical or logical link (a serial port, an MQTT
connection, GPIO pins). A *driver* speaks one protocol to the devices of that
protocol on one bus, through the bus runtime, and emits `Observation`s. Both
have an `async run()` that the supervisor owns; raising from it means "crashed,
restart me with backoff". Neither knows about rules or the uplink.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hearthgate.core.clock import Clock
from hearthgate.core.model import Instant, Observation, ObservationValue
from hearthgate.core.options import BusConfig, DeviceConfig, Options

log = logging.getLogger("hearthgate.drivers")


class BusRuntime(Protocol):
    async def run(self) -> None:
        """Own the link until cancelled (reopen it when it drops); may return at once."""


class Driver(Protocol):
    async def run(self) -> None:
        """Poll or listen until cancelled, emitting observations through the context."""


@dataclass
class DriverContext:
    """The gateway as a driver sees it: a clock, a sink for observations, error counters."""

    clock: Clock
    sink: Callable[[Observation], None]
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Told of every device heard on a bus that the config does not name (a walk test lists
    # them with a ready YAML entry): `(protocol, key, entry)`, where `entry` is the device's
    # `devices:` keys as far as the driver knows them.
    on_unknown: Callable[[str, str, dict[str, Any]], None] | None = None
    # Whether a walk test is in progress: a driver may then look for devices it was not told
    # of (the OSDP driver asks the addresses no reader has), which it must not do otherwise.
    walking: Callable[[], bool] | None = None
    _reachable: dict[str, bool] = field(default_factory=dict)
    # `gateway.id`: what makes a bus's broker session this gateway's own (mqtt client ids).
    gateway_id: str = ""

    def emit(
        self,
        device: DeviceConfig,
        metric: str,
        value: ObservationValue,
        *,
        at: Instant | None = None,
        attrs: dict[str, Any] | None = None,
        unit: str | None = None,
    ) -> Observation:
        """Hand one normalized reading to the gateway; never blocks."""
        obs = Observation(
            device_id=device.id,
            site_id=device.site,
            metric=metric,
            value=value,
            at=at if at is not None else self.clock.now(),
            unit=unit,
            attrs=attrs or {},
        )
        self.sink(obs)
        return obs

    def frame_error(
        self, device_id: str | None, kind: str, data: bytes = b"", detail: str = ""
    ) -> None:
        """Count a bad frame/payload (per device and kind); log the first at info, the rest at
        debug, always with hex, so a noisy line cannot flood the journal."""
        key = (device_id or "-", kind)
        self.errors[key] += 1
        level = logging.INFO if self.errors[key] == 1 else logging.DEBUG
        if log.isEnabledFor(level):
            log.log(
                level,
                "bad input from %s: %s%s%s",
                device_id or "unknown device",
                kind,
                f" ({detail})" if detail else "",
                f" [{data[:256].hex(' ')}]" if data else "",
                extra={"device_id": device_id, "error_kind": kind},
            )

    def heard_unknown(self, protocol: str, key: str, entry: dict[str, Any]) -> None:
        """A device the config does not name spoke on a bus; never raises into a driver."""
        if self.on_unknown is None:
            return
        try:
            self.on_unknown(protocol, key, entry)
        except Exception:
            log.exception("unknown-device hook failed")

    def walk_test_on(self) -> bool:
        """A walk test is in progress (`hearthgate walktest`, the local page)."""
        return self.walking is not None and self.walking()

    def set_reachable(self, device: DeviceConfig, reachable: bool, reason: str = "",
                      *, heard: bool = True) -> None:
        """Report a device (un)reachable; emits an `alive` observation only on a change.

        `heard=False` says that a `reachable` report is the link's opinion (zigbee2mqtt's
        retained availability, a GPIO pin opened), not word from the device itself: it
        keeps the device online but does not move its "last seen" (attrs `heard: false`).
        """
        if self._reachable.get(device.id) == reachable:
            return
        self._reachable[device.id] = reachable
        if not reachable:
            log.warning(
                "device %s unreachable%s", device.id, f": {reason}" if reason else "",
                extra={"device_id": device.id},
            )
        attrs: dict[str, object] = {"reason": reason} if reason else {}
        if reachable and not heard:
            attrs["heard"] = False
        self.emit(device, "alive", reachable, attrs=attrs or None)

    def reachable(self, device: DeviceConfig) -> bool | None:
        """What this driver last reported of the device (None: nothing yet)."""
        return self._reachable.get(device.id)

    def error_count(self, device_id: str | None = None) -> int:
        if device_id is None:
            return sum(self.errors.values())
        return sum(n for (d, _), n in self.errors.items() if d == device_id)


@dataclass(frozen=True)
class BusType:
    """A kind of link (`buses[].type`): its option model and how to open it.

    Each bus module declares one as `BUS_TYPE`; `hearthgate.registry` lists them.
    """

    name: str
    options: type[Options]
    # Builds the object that owns the link (a serial port, an MQTT connection).
    open: Callable[[BusConfig, DriverContext], BusRuntime]
    description: str = ""


@dataclass(frozen=True)
class ProtocolSpec:
    """A device protocol (`devices[].protocol`): its option model, the device kinds it drives,
    the bus types it runs on, and how to build its driver.

    Each driver module declares one as `PROTOCOL`; `hearthgate.registry` lists them.
    """

    name: str
    options: type[Options]  # device keys beyond id/site/kind/protocol/bus/name
    kinds: frozenset[str]  # device kinds this protocol can drive
    bus_types: frozenset[str]  # bus types it runs on
    # Builds one driver for all devices of this protocol on one bus.
    create: Callable[[Any, list[DeviceConfig], DriverContext], Driver]
    description: str = ""
    # The device keys that tell two devices of this protocol on one bus apart (a meter's
    # `address`, a zigbee2mqtt `topic`): `hearthgate check` refuses two devices sharing them.
    address: tuple[str, ...] = ()
    # Parities its devices use on a serial line; `check` warns about any other. Empty: any.
    parities: frozenset[str] = frozenset()

