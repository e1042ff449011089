"""Telemetry batching: readings gathered for a while, then sent as one message.

One message per `telemetry_interval` (or per MAX_READINGS readings) instead of
one per reading: the broker, the radio link and the SD card all prefer it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from hearthgate.core.model import Observation, isoformat

MAX_READINGS = 500  # per message; keeps messages well under common broker limits


class TelemetryBatcher:
    def __init__(self, tz: Any) -> None:
        self.tz = tz
        self._readings: list[dict[str, Any]] = []
        # Readings come in bursts stamped with the same second: format it once.
        self._ts_second: int | None = None
        self._ts_text = ""

    def add(self, obs: Observation) -> str | None:
        """Add one reading; returns a full batch's payload when MAX_READINGS is reached."""
        self._readings.append(
            {
                "device_id": obs.device_id,
                "site_id": obs.site_id,
                "metric": obs.metric,
                "value": obs.value,
                "unit": obs.unit,
                "ts": self._ts(obs.at.wall),
            }
        )
        if len(self._readings) >= MAX_READINGS:
            return self.flush()[0]
        return None

    def _ts(self, wall: datetime) -> str:
        second = int(wall.timestamp() // 1)
        if second != self._ts_second:
            self._ts_second, self._ts_text = second, isoformat(wall, self.tz)
        return self._ts_text

    def flush(self) -> tuple[str, int]:
        """The waiting readings as one `P/telemetry` payload, and their number."""
        readings, self._readings = self._readings, []
        payload = json.dumps(
            {"schema": "hearthgate.telemetry/1", "readings": readings},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return payload, len(readings)

    def __len__(self) -> int:
        return len(self._readings)
