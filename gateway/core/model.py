"""The plain values that cross every boundary: drivers -> rules -> store -> uplink.

Nothing here does I/O. Drivers produce `Observation`s, rules turn them into
`AlertTransition`s, the store and uplink carry both. Keep these small and frozen.
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ObservationValue = bool | int | float | str


@dataclass(frozen=True, slots=True)
class Instant:
    """One moment read from two clocks.

    `mono` (seconds, monotonic) measures durations and deadlines; it never jumps but
    restarts from an arbitrary origin at boot. `wall` (aware, UTC) is what people see
    and what time-of-day schedules read; it may jump by hours when NTP syncs on a
    Raspberry Pi without an RTC.
    """

    mono: float
    wall: datetime

    def __post_init__(self) -> None:
        if self.wall.tzinfo is None:
            raise ValueError("Instant.wall must be timezone-aware")

    def after(self, seconds: float) -> Instant:
        """The instant `seconds` later on both clocks (for simulated time)."""
        from datetime import timedelta

        return Instant(self.mono + seconds, self.wall + timedelta(seconds=seconds))


# Units are fixed per metric so that nothing downstream converts twice.
METRIC_UNITS: dict[str, str | None] = {
    "water_total_m3": "m3",
    "water_flow_m3h": "m3/h",
    "energy_total_kwh": "kWh",
    "energy_export_kwh": "kWh",
    "power_w": "W",
    "voltage_v": "V",
    "current_a": "A",
    "power_factor": None,
    "frequency_hz": "Hz",
    "motion": None,
    "occupancy": None,
    "presence": None,
    "smoke": None,
    "gas": None,
    "carbon_monoxide": None,
    "water_leak": None,
    "warning": None,
    "door_open": None,
    "sos": None,
    "fall": None,
    "battery_pct": "%",
    "battery_low": None,
    "tamper": None,
    "card": None,
    "access_granted": None,
    "exit_button": None,
    "alive": None,
    "linkquality": None,
    "rssi": "dBm",
    "valve_open": None,
    "valve_fault": None,
    "power_fault": None,
}


@dataclass(frozen=True, slots=True)
class Observation:
    """What a device said, normalized: one metric, one value, one moment."""

    device_id: str
    site_id: str
    metric: str
    value: ObservationValue
    at: Instant
    unit: str | None = None
    # Extra facts a rule may use but the telemetry need not carry (e.g. a card's
    # facility code, a zigbee action name). Must be JSON-serializable.
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.unit is None and self.metric in METRIC_UNITS:
            object.__setattr__(self, "unit", METRIC_UNITS[self.metric])

    @property
    def baseline_reset(self) -> bool:
        """A cumulative reading that starts a new baseline (meter replaced or reset): the
        jump from the previous total is not consumption. Drivers mark it with
        `attrs={"baseline": "reset", "previous_total": ...}` (drivers/meter_sense.py)."""
        return self.attrs.get("baseline") == "reset"


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class AlertState(enum.StrEnum):
    RAISED = "raised"
    ESCALATED = "escalated"
    CLEARED = "cleared"


# Contract §3: these go out before anything else that is waiting.
URGENT_ALERT_TYPES = frozenset({"sos", "fall"})


class Priority(enum.IntEnum):
    """Outbox priority classes; lower is sent first."""

    URGENT = 0  # sos, fall
    ALERT = 1  # every other alert transition
    TELEMETRY = 2  # readings, device snapshots


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """One raised / escalated / cleared event of one alert (docs/mqtt-api.md, "P/alerts")."""

    event_id: str
    alert_id: str
    state: AlertState
    type: str
    severity: Severity
    site_id: str
    resident_id: str | None
    device_ids: tuple[str, ...]
    raised_at: datetime
    ts: datetime
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    # Raised during a walk test (docs/mqtt-api.md): not escalated, cleared by a local ack, and
    # every later transition of the alert carries the mark too.
    test: bool = False

    @property
    def priority(self) -> Priority:
        return Priority.URGENT if self.type in URGENT_ALERT_TYPES else Priority.ALERT

    def to_payload(self, gateway_id: str, tz: Any) -> dict[str, Any]:
        """The `P/alerts` JSON object; times rendered in the gateway's time zone."""
        return {
            "schema": "hearthgate.alert/1",
            "event_id": self.event_id,
            "alert_id": self.alert_id,
            "state": str(self.state),
            "type": self.type,
            "severity": str(self.severity),
            "gateway_id": gateway_id,
            "site_id": self.site_id,
            "resident_id": self.resident_id,
            "device_ids": list(self.device_ids),
            "raised_at": isoformat(self.raised_at, tz),
            "ts": isoformat(self.ts, tz),
            "message": self.message,
            "details": self.details,
            # Only when set: the platform's existing consumers see what they always saw.
            **({"test": True} if self.test else {}),
        }


def isoformat(moment: datetime, tz: Any) -> str:
    """ISO 8601 with the offset of `tz`, to the second: every time on the wire carries the
    offset of `gateway.timezone` (docs/mqtt-api.md)."""
    return moment.astimezone(tz).isoformat(timespec="seconds")


_last_uuid7_ms = 0
_uuid7_seq = 0


def new_id(at: datetime | None = None) -> str:
    """A UUIDv7 string: time-ordered, so ids sort like the events they name.

    Python 3.11 has no uuid.uuid7; this is RFC 9562 §5.7 with a 12-bit counter in
    rand_a so that ids made within one millisecond still sort in creation order.
    """
    global _last_uuid7_ms, _uuid7_seq
    ms = int((at.timestamp() if at is not None else time.time()) * 1000)
    if ms <= _last_uuid7_ms:
        ms = _last_uuid7_ms
        _uuid7_seq = (_uuid7_seq + 1) & 0xFFF
        if _uuid7_seq == 0:
            ms += 1
    else:
        _uuid7_seq = 0
    _last_uuid7_ms = ms
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | _uuid7_seq << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utc_now() -> datetime:
    return datetime.now(UTC)
