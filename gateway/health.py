"""Device health: last seen, last values, battery, link quality, online.

Built from the observations that pass through the gateway, so drivers need
only emit. A device is online when it has been heard from within its silence
limit and its driver has not reported it unreachable (`alive` false). The limit
is the one the `device_offline` rule uses (`hearthgate.core.health`), so
`P/devices` and the alert agree on when a device went offline. A device never
heard since the start is offline here (nothing is known of it yet); the rule
gives it its limit from the start before it raises an alert.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hearthgate.config import GatewayConfig
from hearthgate.core.health import offline_since
from hearthgate.core.model import Instant, Observation, ObservationValue, isoformat
from hearthgate.core.options import DeviceConfig

# Readings that describe the device rather than the home.
_HEALTH_METRICS = {"alive", "battery_pct", "linkquality", "rssi"}


@dataclass
class DeviceState:
    device: DeviceConfig
    limit: float | None
    last_seen: Instant | None = None
    alive: bool | None = None
    battery: float | None = None
    linkquality: float | None = None
    values: dict[str, ObservationValue] = field(default_factory=dict)
    why: str | None = None  # why its driver reports it unreachable (an OSDP reader's refusal)

    def online(self, now: Instant) -> bool:
        if self.last_seen is None or self.alive is False:
            return False
        off = offline_since(self.last_seen.mono, self.limit)
        return off is None or now.mono < off


class DeviceHealth:
    """What `P/devices` says of every configured device, from the observations seen.

    Feed it every observation (`observe`); ask `changed(now)` after each batch and
    `next_expiry(now)` for the moment to look again when nothing arrives.

    Args:
        config: The gateway's config: its devices, and what makes each one offline.
    """

    def __init__(self, config: GatewayConfig) -> None:
        self.tz = config.gateway.tz
        self.devices = {d.id: DeviceState(d, config.silence_limit(d)) for d in config.devices}
        self._online: dict[str, bool] = {}

    def observe(self, obs: Observation) -> None:
        state = self.devices.get(obs.device_id)
        if state is None:
            return
        if obs.metric == "warning":
            # What a driver found wrong with the device's setup: shown, not a sign of life.
            state.values["warning"] = obs.value
            return
        if obs.metric == "alive":
            state.alive = bool(obs.value)
            state.why = None if obs.value else str(obs.attrs.get("reason") or "") or None
            if obs.value is False:
                return  # "unreachable" is not a sign of life
        else:
            state.alive = True  # a device that says anything is reachable
        state.last_seen = obs.at
        if obs.metric == "battery_pct" and isinstance(obs.value, int | float):
            state.battery = float(obs.value)
        elif obs.metric == "linkquality" and isinstance(obs.value, int | float):
            state.linkquality = float(obs.value)
        if obs.metric not in _HEALTH_METRICS:
            state.values[obs.metric] = obs.value

    def changed(self, now: Instant) -> bool:
        """Whether any device went online or offline since the last call."""
        current = {d: s.online(now) for d, s in self.devices.items()}
        changed = current != self._online
        self._online = current
        return changed

    def next_expiry(self, now: Instant) -> float | None:
        """Monotonic time at which some online device will go offline by silence."""
        times = [
            off
            for s in self.devices.values()
            if s.last_seen is not None and s.online(now)
            and (off := offline_since(s.last_seen.mono, s.limit)) is not None
        ]
        return min(times, default=None)

    def snapshot(self, now: Instant) -> list[dict[str, Any]]:
        out = []
        for device_id, s in self.devices.items():
            out.append(
                {
                    "device_id": device_id,
                    "site_id": s.device.site,
                    "kind": s.device.kind,
                    "protocol": s.device.protocol,
                    "online": s.online(now),
                    "why": None if s.online(now) else s.why,
                    "last_seen": isoformat(s.last_seen.wall, self.tz) if s.last_seen else None,
                    "battery": s.battery,
                    "linkquality": s.linkquality,
                    "values": dict(s.values),
                }
            )
        return out

    def payload(self, now: Instant, raw_sites: frozenset[str] = frozenset()) -> str:
        """The `P/devices` message: health only. A device's last values (a door open, the
        meter's total) go out only for sites at the `raw` telemetry level; for the others
        `last_seen` is given to the hour, because a motion sensor's last message to the second,
        published every minute, would replay the resident's movements (docs/privacy.md)."""
        devices = self.snapshot(now)
        for d in devices:
            if d["site_id"] in raw_sites:
                continue
            del d["values"]
            seen = self.devices[d["device_id"]].last_seen
            if seen is not None:
                hour = seen.wall.astimezone(self.tz).replace(minute=0, second=0, microsecond=0)
                d["last_seen"] = isoformat(hour, self.tz)
        return json.dumps(
            {
                "schema": "hearthgate.devices/1",
                "ts": isoformat(now.wall, self.tz),
                "devices": devices,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    def online_count(self, now: Instant) -> int:
        return sum(1 for s in self.devices.values() if s.online(now))
