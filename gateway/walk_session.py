"""A walk test as the service keeps it: which devices were heard, what they said, what spoke
that the config does not name, and the alerts raised meanwhile (marked `test`).

The service holds at most one `WalkSession`; `hearthgate walktest` (and the local page) start
it, read its events over the control socket and stop it. Nothing here does I/O: the service
feeds it observations, unknown devices and alert transitions, and a reader waits on
`wait_events`. A session nobody has read for `IDLE_EXPIRY` ends by itself, so a walk test
killed with its terminal does not leave the gateway marking real alerts `test` forever.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hearthgate.config import GatewayConfig
from hearthgate.core.model import AlertTransition, Observation

IDLE_EXPIRY = 60.0  # s without a reader before a session ends by itself
MAX_EVENTS = 2000  # kept for readers that fall behind; older ones are dropped
MAX_UNKNOWN = 200  # unconfigured devices listed at most (a noisy 433 MHz street)

# Readings that say a device is there but not that the installer made it speak.
QUIET_METRICS = frozenset({"alive", "battery_pct", "battery_low", "linkquality", "rssi"})


def said(obs: Observation, previous: Any = None) -> tuple[str, dict[str, Any]]:
    """What a reading means to an installer, as a message id of `hearthgate.messages` and
    its parameters (the page and the terminal translate it)."""
    m, v = obs.metric, obs.value
    if m == "sos":
        return ("said.sos", {}) if v else ("said.sos_released", {})
    if m == "fall":
        return ("said.fall", {}) if v else ("said.fall_cleared", {})
    if m == "door_open":
        return ("said.door_opened", {}) if v else ("said.door_closed", {})
    if m in ("motion", "occupancy"):
        return ("said.motion", {}) if v else ("said.no_motion", {})
    if m == "presence":
        return ("said.presence", {}) if v else ("said.no_presence", {})
    if m == "water_total_m3":
        if isinstance(previous, int | float) and isinstance(v, int | float) and v > previous:
            return "said.water_used", {"litres": round((v - previous) * 1000, 1), "total": v}
        return "said.water_read", {"total": v}
    if m in ("energy_total_kwh", "power_w"):
        return "said.meter_read", {"value": v, "unit": obs.unit or ""}
    if m in ("card", "access_granted"):
        return "said.card", {"value": v}
    if m in ("smoke", "gas", "carbon_monoxide", "water_leak", "tamper") and v:
        return "said.alarm", {"metric": m}
    return "said.other", {"metric": m, "value": v}


@dataclass
class DeviceTick:
    """One configured device in the checklist."""

    device_id: str
    site_id: str
    kind: str
    protocol: str
    heard_at: str | None = None  # ISO time of the first reading that counts
    said: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class WalkSession:
    """One walk test: a checklist of the config's devices and the events since it began.

    Args:
        config: the running config; its devices make the checklist.
        session_id: the id readers name the session by.
        user: who started it (for the access trail and the summary).
    """

    def __init__(self, config: GatewayConfig, session_id: str, user: str) -> None:
        self.id = session_id
        self.user = user
        self.devices = {
            d.id: DeviceTick(d.id, d.site, d.kind, d.protocol) for d in config.devices
        }
        self.unknown: dict[tuple[str, str], dict[str, Any]] = {}
        self.test_alerts: dict[str, dict[str, Any]] = {}  # alert_id -> latest transition
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.seq = 0
        self.last_read = time.monotonic()
        self._last_value: dict[tuple[str, str], Any] = {}
        self._changed = asyncio.Event()
        self.ended = False

    # -- what the service feeds it ---------------------------------------------------

    def observe(self, obs: Observation, ts: str) -> None:
        tick = self.devices.get(obs.device_id)
        if tick is None:
            return
        key = (obs.device_id, obs.metric)
        previous = self._last_value.get(key)
        self._last_value[key] = obs.value
        if obs.metric in QUIET_METRICS:
            return
        msg_id, params = said(obs, previous)
        first = tick.heard_at is None
        if first:
            tick.heard_at = ts
        if len(tick.said) < 20:
            tick.said.append((msg_id, params))
        value = obs.value if isinstance(obs.value, bool | int | float | str) else str(obs.value)
        self._add({"event": "heard", "device_id": obs.device_id, "site_id": obs.site_id,
                   "kind": tick.kind, "metric": obs.metric, "value": value, "said": msg_id,
                   "said_params": params, "first": first, "ts": ts})

    def heard_unknown(self, protocol: str, key: str, entry: dict[str, Any], ts: str) -> None:
        ident = (protocol, key)
        if ident in self.unknown or len(self.unknown) >= MAX_UNKNOWN:
            return
        item = {"protocol": protocol, "key": key, "entry": entry, "ts": ts}
        self.unknown[ident] = item
        self._add({"event": "unconfigured", **item})

    def alert(self, t: AlertTransition, payload: dict[str, Any]) -> None:
        self.test_alerts[t.alert_id] = payload
        self._add({"event": "alert", "alert_id": t.alert_id, "state": str(t.state),
                   "type": t.type, "site_id": t.site_id, "device_ids": list(t.device_ids),
                   "message": t.message, "test": t.test, "ts": payload.get("ts"),
                   "acknowledged_by": t.details.get("acknowledged_by")})

    def end(self, reason: str) -> None:
        if not self.ended:
            self.ended = True
            self._add({"event": "ended", "reason": reason})

    # -- what readers see -------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return time.monotonic() - self.last_read > IDLE_EXPIRY

    def missing(self) -> list[str]:
        return [d for d, tick in self.devices.items() if tick.heard_at is None]

    def state(self) -> dict[str, Any]:
        """The whole checklist at once (a reader that joins late, the page)."""
        return {
            "session": self.id, "user": self.user, "seq": self.seq, "ended": self.ended,
            "devices": [
                {"device_id": t.device_id, "site_id": t.site_id, "kind": t.kind,
                 "protocol": t.protocol, "heard_at": t.heard_at,
                 "said": [{"id": i, "params": p} for i, p in t.said[-5:]]}
                for t in self.devices.values()
            ],
            "unconfigured": list(self.unknown.values()),
            "alerts": list(self.test_alerts.values()),
        }

    def events_since(self, seq: int) -> list[dict[str, Any]]:
        return [e for e in self.events if e["seq"] > seq]

    async def wait_events(self, seq: int, timeout: float) -> list[dict[str, Any]]:
        """The events after `seq`, waiting up to `timeout` for one when there are none."""
        self.last_read = time.monotonic()
        if self.seq <= seq and not self.ended:
            self._changed.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            except TimeoutError:
                pass
        self.last_read = time.monotonic()
        return self.events_since(seq)

    def _add(self, event: dict[str, Any]) -> None:
        self.seq += 1
        self.events.append({"seq": self.seq, **event})
        self._changed.set()
