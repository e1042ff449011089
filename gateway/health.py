"""Device health: last seen, last values, battery, link quality, online.

Built from the observations that pass through the gateway, so drivers need
only emit. A device is online when it has been heard from within its silence
limit and its driver has not reported it unreachable (`alive` false). The limit
is the one the `device_offline` rule uses (`hearthgate.core.health`), and a device
never heard counts from the gateway's start as the rule counts it, so `P/devices`
and the alert agree on when a device went offline.

Three states, not two: `online`, `offline`, and `not heard yet` (`online: null`): a
device nothing has been heard from since it was installed — a 433 MHz button never
pressed, a sensor within its first silence limit — is neither known to work nor known
dead. "Last seen" is the last word from the device itself, kept across restarts (saved
with the rule state); the link's opinion (zigbee2mqtt's retained availability, `heard:
false` on the `alive` report) keeps a device online without moving it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
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
    last_seen: Instant | None = None  # the last word from the device itself
    life: float | None = None  # monotonic: the last sign of life, the link's word included
    alive: bool | None = None
    battery: float | None = None
    linkquality: float | None = None
    values: dict[str, ObservationValue] = field(default_factory=dict)
    why: str | None = None  # why its driver reports it unreachable (an OSDP reader's refusal)
    values_version: int = 0  # moved with `values`: P/devices encodes a device again then

    def state(self, now: Instant, started: float | None) -> str:
        """`online`, `offline` or `not heard yet` at `now` (`started`: the gateway's start,
        from which a device never heard counts its silence)."""
        if self.alive is False:
            return OFFLINE
        since = self.life if self.life is not None else started
        if since is None:
            return NOT_HEARD
        off = offline_since(since, self.limit)
        if off is not None and now.mono >= off:
            return OFFLINE
        return ONLINE if self.life is not None else NOT_HEARD

    def online(self, now: Instant, started: float | None = None) -> bool:
        return self.state(now, started) == ONLINE


ONLINE, OFFLINE, NOT_HEARD = "online", "offline", "not heard yet"


class DeviceHealth:
    """What `P/devices` and `hearthgate devices` say of every configured device.

    Feed it every observation (`observe`); ask `changed(now)` after each batch and
    `next_expiry(now)` for the moment to look again when nothing arrives. Call `start(now)`
    when the gateway starts (after `restore`, if a saved snapshot is at hand).

    Args:
        config: The gateway's config: its devices, and what makes each one offline.
    """

    def __init__(self, config: GatewayConfig) -> None:
        self.tz = config.gateway.tz
        self.devices = {d.id: DeviceState(d, config.silence_limit(d)) for d in config.devices}
        self.started: float | None = None
        self._states: dict[str, str] = {}
        # device -> (what P/devices shows of it, its encoded part): see `payload`.
        self._encoded: dict[str, tuple[tuple[Any, ...], str]] = {}
        # A device observed whose state differs from the last `changed` call's: cheap to
        # know per observation, so that a device back (or gone) is not left to a rarer scan.
        self.news = False

    def start(self, now: Instant) -> None:
        if self.started is None:
            self.started = now.mono

    def restore(self, saved: Any, now: Instant) -> None:
        """Take back what a saved `snapshot` knew: when each device was last heard, its last
        values, battery and link. A device online when it was saved stays online for the
        rest of its limit (nobody could hear it while the gateway was down, which is not its
        silence: the rule's policy, `hearthgate.rules.site_state`); its reachability is left
        to its driver, which reports it afresh."""
        if not isinstance(saved, dict) or not isinstance(saved.get("devices"), list):
            return
        try:
            saved_at = datetime.fromisoformat(str(saved.get("ts")))
        except ValueError:
            return
        for item in saved["devices"]:
            if not isinstance(item, dict):
                continue
            state = self.devices.get(str(item.get("device_id")))
            if state is None or state.last_seen is not None:
                continue
            try:
                seen = datetime.fromisoformat(str(item.get("last_seen")))
            except ValueError:
                continue
            if seen.tzinfo is None:
                continue
            age = max(0.0, (saved_at - seen).total_seconds())
            online = item.get("online") is True
            # Offline at the save: its silence ran out before the gateway stopped.
            mono = now.mono - age if online or state.limit is None else (
                now.mono - (state.limit + 1.0))
            state.last_seen = Instant(mono, seen)
            state.life = mono
            for key in ("battery", "linkquality"):
                if isinstance(item.get(key), int | float) and not isinstance(item[key], bool):
                    setattr(state, key, float(item[key]))
            if isinstance(item.get("values"), dict):
                state.values = dict(item["values"])
                state.values_version += 1

    def observe(self, obs: Observation) -> None:
        state = self.devices.get(obs.device_id)
        if state is None:
            return
        self._observe(state, obs)
        if not self.news and state.state(obs.at, self.started) != self._states.get(obs.device_id):
            self.news = True

    def _observe(self, state: DeviceState, obs: Observation) -> None:
        if obs.metric == "warning":
            # What a driver found wrong with the device's setup: shown, not a sign of life.
            state.values["warning"] = obs.value
            state.values_version += 1
            return
        if obs.metric == "alive":
            state.alive = bool(obs.value)
            state.why = None if obs.value else str(obs.attrs.get("reason") or "") or None
            if obs.value is False:
                return  # "unreachable" is not a sign of life
            state.life = obs.at.mono
            if obs.attrs.get("heard") is False:
                return  # the link vouches for it; the device said nothing
        else:
            state.alive = True  # a device that says anything is reachable
        state.last_seen = obs.at
        state.life = obs.at.mono
        if obs.metric == "battery_pct" and isinstance(obs.value, int | float):
            state.battery = float(obs.value)
        elif obs.metric == "linkquality" and isinstance(obs.value, int | float):
            state.linkquality = float(obs.value)
        if obs.metric not in _HEALTH_METRICS:
            state.values[obs.metric] = obs.value
            state.values_version += 1

    def changed(self, now: Instant) -> bool:
        """Whether any device went online, offline or was heard first since the last call."""
        current = {d: s.state(now, self.started) for d, s in self.devices.items()}
        changed = current != self._states
        self._states = current
        self.news = False
        return changed

    def next_expiry(self, now: Instant) -> float | None:
        """Monotonic time at which some device not offline yet will go offline by silence."""
        times = []
        for s in self.devices.values():
            since = s.life if s.life is not None else self.started
            if since is None or s.state(now, self.started) == OFFLINE:
                continue
            off = offline_since(since, s.limit)
            if off is not None:
                times.append(off)
        return min(times, default=None)

    def snapshot(self, now: Instant) -> list[dict[str, Any]]:
        return [self._entry(device_id, s, s.state(now, self.started))
                for device_id, s in self.devices.items()]

    def _entry(self, device_id: str, s: DeviceState, state: str) -> dict[str, Any]:
        return {
            "device_id": device_id,
            "site_id": s.device.site,
            "kind": s.device.kind,
            "protocol": s.device.protocol,
            # null: not heard yet (neither known working nor known dead)
            "online": None if state == NOT_HEARD else state == ONLINE,
            "why": None if state != OFFLINE else s.why or (
                "never heard" if s.last_seen is None else None),
            "last_seen": isoformat(s.last_seen.wall, self.tz) if s.last_seen else None,
            "battery": s.battery,
            "linkquality": s.linkquality,
            "values": dict(s.values),
        }

    def payload(self, now: Instant, raw_sites: frozenset[str] = frozenset()) -> str:
        """The `P/devices` message: health only. A device's last values (a door open, the
        meter's total) go out only for sites at the `raw` telemetry level; for the others
        `last_seen` is given to the hour, because a motion sensor's last message to the second,
        published every minute, would replay the resident's movements (docs/privacy.md).

        Each device's part is encoded again only when what it shows changed: 800 devices
        encoded whole took 12-20 ms of the loop an SOS waits for, every second devices came
        online."""
        parts = []
        for device_id, s in self.devices.items():
            state = s.state(now, self.started)
            raw = s.device.site in raw_sites
            seen = s.last_seen.wall if s.last_seen is not None else None
            if seen is not None and not raw:
                seen = seen.astimezone(self.tz).replace(minute=0, second=0, microsecond=0)
            shown = (state, s.why, seen, s.battery, s.linkquality,
                     s.values_version if raw else -1)
            cached = self._encoded.get(device_id)
            if cached is None or cached[0] != shown:
                entry = self._entry(device_id, s, state)
                if not raw:
                    del entry["values"]
                    entry["last_seen"] = isoformat(seen, self.tz) if seen is not None else None
                cached = (shown, json.dumps(entry, ensure_ascii=False, separators=(",", ":")))
                self._encoded[device_id] = cached
            parts.append(cached[1])
        head = json.dumps({"schema": "hearthgate.devices/1", "ts": isoformat(now.wall, self.tz)},
                          ensure_ascii=False, separators=(",", ":"))
        return f'{head[:-1]},"devices":[{",".join(parts)}]}}'

    def online_count(self, now: Instant) -> int:
        return sum(1 for s in self.devices.values() if s.online(now, self.started))
