"""The platform's side of `hearthgate demo`: a console and a care worker.

`PlatformConsole` reads only what the platform's broker delivered (`P/alerts`,
`P/telemetry`, `P/devices`, `P/status`, `P/cmd/result`) and turns each message
into at most one aligned line, time of day first, plus the tallies of the
closing summary. `CareWorker` acknowledges raised alerts over `P/cmd/ack` after
a delay in simulated time, as a person on duty at the care centre would.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TextIO

from hearthgate.core.clock import Clock

# Columns: when, site, what, then free text.
WHEN_W, SITE_W, WHAT_W, TYPE_W, SEV_W = 9, 9, 10, 17, 8


# How the console groups readings: what they tell about the home, not the metric names.
METRIC_GROUPS = {
    "water_total_m3": "water", "water_flow_m3h": "water",
    "energy_total_kwh": "electricity", "power_w": "electricity", "voltage_v": "electricity",
    "current_a": "electricity", "motion": "motion", "occupancy": "motion", "door_open": "door",
    "sos": "sos", "fall": "fall", "card": "access",
}
SHOWN_HEALTH_CHANGES = 8


def grouped(metrics: Counter[str]) -> str:
    """`water 72, electricity 60, motion 20, device status 180`."""
    groups: Counter[str] = Counter()
    for metric, n in metrics.items():
        groups[METRIC_GROUPS.get(metric, "device status")] += n
    return ", ".join(f"{g} {n}" for g, n in groups.most_common())


def fmt_when(moment: datetime) -> str:
    """`Sun 15:20` in the moment's own offset (the gateway's zone)."""
    return moment.strftime("%a %H:%M")


def parse_ts(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def console_line(when: str, site: str, what: str, text: str) -> str:
    return f"{when:<{WHEN_W}}  {site:<{SITE_W}}  {what:<{WHAT_W}}  {text}".rstrip()


@dataclass
class AlertTally:
    raised: int = 0
    escalated: int = 0
    acknowledged: int = 0
    cleared: int = 0


@dataclass
class PlatformConsole:
    """Prints and counts what the platform receives."""

    prefix: str  # P = topic_prefix/gateway_id
    out: TextIO = field(default_factory=lambda: sys.stdout)
    quiet: bool = False
    telemetry_every_h: int = 3  # one telemetry line per this many hours of readings
    on_raised: Callable[[dict[str, Any]], None] | None = None
    alerts: dict[str, AlertTally] = field(default_factory=dict)
    open_alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    readings: int = 0
    telemetry_messages: int = 0
    metrics: Counter[str] = field(default_factory=Counter)
    health_changes: list[str] = field(default_factory=list)
    status: list[tuple[str, str]] = field(default_factory=list)  # (state, when)
    bad_messages: int = 0
    ack_failures: list[str] = field(default_factory=list)
    _acks: dict[str, str] = field(default_factory=dict)  # command id -> alert type
    _online: dict[str, bool] = field(default_factory=dict)
    _bucket: datetime | None = None
    _bucket_count: int = 0
    _bucket_metrics: Counter[str] = field(default_factory=Counter)
    _last_seen_ts: datetime | None = None
    _printed_until: datetime | None = None

    def print(self, line: str) -> None:
        if not self.quiet:
            print(line, file=self.out, flush=True)

    def header(self) -> None:
        self.print(console_line("time", "site", "event", "details"))
        self.print(console_line("-" * WHEN_W, "-" * SITE_W, "-" * WHAT_W, "-" * 40))

    # -- dispatch ---------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> None:
        if not topic.startswith(self.prefix + "/"):
            return
        name = topic[len(self.prefix) + 1:]
        try:
            body = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            self.bad_messages += 1
            return
        if not isinstance(body, dict):
            self.bad_messages += 1
            return
        handler = {
            "alerts": self._alert,
            "telemetry": self._telemetry,
            "devices": self._devices,
            "status": self._status,
            "cmd/result": self._result,
        }.get(name)
        if handler is not None:
            handler(body)

    def expect_ack(self, command_id: str, alert_type: str) -> None:
        self._acks[command_id] = alert_type

    # -- alerts -----------------------------------------------------------------

    def _alert(self, body: dict[str, Any]) -> None:
        kind, state = str(body.get("type", "?")), str(body.get("state", "?"))
        alert_id = str(body.get("alert_id", ""))
        tally = self.alerts.setdefault(kind, AlertTally())
        details = body.get("details") if isinstance(body.get("details"), dict) else {}
        note = ""
        if state == "raised":
            tally.raised += 1
            self.open_alerts[alert_id] = body
            devices = body.get("device_ids") or []
            note = f"[{', '.join(map(str, devices))}]" if devices else ""
        elif state == "escalated":
            tally.escalated += 1
            self.open_alerts[alert_id] = body
            note = f"(no one has taken it: escalation {details.get('escalation', '?')})"
        elif state == "cleared":
            tally.cleared += 1
            self.open_alerts.pop(alert_id, None)
            by = details.get("acknowledged_by")
            note = f"(acknowledged by {by})" if by else ""
        ts = parse_ts(body.get("ts"))
        self._flush_telemetry_until(ts)
        text = (
            f"{kind:<{TYPE_W}} {body.get('severity', '?'):<{SEV_W}}  "
            f"{body.get('message', '')}  {note}"
        )
        what = state.upper() if state in ("raised", "escalated") else state
        self.print(console_line(fmt_when(ts) if ts else "?", str(body.get("site_id", "?")),
                                what, text))
        if state == "raised" and self.on_raised is not None:
            self.on_raised(body)

    def _result(self, body: dict[str, Any]) -> None:
        command_id = body.get("id")
        if body.get("command") != "ack" or not isinstance(command_id, str):
            return
        kind = self._acks.pop(command_id, None)
        if kind is None:
            return
        if body.get("ok") is True:
            self.alerts.setdefault(kind, AlertTally()).acknowledged += 1
        else:
            self.ack_failures.append(f"{kind}: {body.get('error')}")

    def note_ack_sent(self, alert: dict[str, Any], by: str, when: datetime) -> None:
        """The care worker's own action, at the platform's time (not a gateway message)."""
        raised = parse_ts(alert.get("raised_at"))
        after = f" {int((when - raised).total_seconds() // 60)} min after it was raised" if (
            raised) else ""
        self.print(console_line(fmt_when(when), str(alert.get("site_id", "?")), "ack sent",
                                f"{alert.get('type', '?'):<{TYPE_W}} {'':<{SEV_W}}  "
                                f"{by} takes it{after}"))

    # -- telemetry --------------------------------------------------------------

    def _telemetry(self, body: dict[str, Any]) -> None:
        readings = body.get("readings")
        if not isinstance(readings, list):
            self.bad_messages += 1
            return
        self.telemetry_messages += 1
        for reading in readings:
            if not isinstance(reading, dict):
                continue
            ts = parse_ts(reading.get("ts"))
            metric = str(reading.get("metric", "?"))
            self._flush_telemetry_until(ts)
            self.readings += 1
            self.metrics[metric] += 1
            if ts is None:
                continue
            if self._bucket is None:
                start = self._bucket_start(ts)
                # A late reading of a block already printed counts in the current one.
                self._bucket = max(start, self._printed_until) if self._printed_until else start
            self._bucket_count += 1
            self._bucket_metrics[metric] += 1

    def _bucket_start(self, ts: datetime) -> datetime:
        hour = ts.hour - ts.hour % self.telemetry_every_h
        return ts.replace(hour=hour, minute=0, second=0, microsecond=0)

    def _flush_telemetry_until(self, ts: datetime | None) -> None:
        """Print the running count for a finished block of hours, once a later moment is seen."""
        if ts is None:
            return
        self._last_seen_ts = ts if self._last_seen_ts is None else max(self._last_seen_ts, ts)
        if self._bucket is None or self._bucket_start(ts) <= self._bucket:
            return
        self.flush_telemetry()

    def flush_telemetry(self) -> None:
        if self._bucket is None or not self._bucket_count:
            return
        end = self._bucket + timedelta(hours=self.telemetry_every_h)
        if self._last_seen_ts is not None and self._last_seen_ts < end:
            end = self._last_seen_ts  # the last, unfinished block: up to what was seen
        self._printed_until = self._bucket + timedelta(hours=self.telemetry_every_h)
        self.print(console_line(
            fmt_when(end), "-", "telemetry",
            f"{self._bucket_count:>4} readings since {self._bucket.strftime('%H:%M')}: "
            f"{grouped(self._bucket_metrics)}",
        ))
        self._bucket, self._bucket_count = None, 0
        self._bucket_metrics.clear()

    # -- device health and status -------------------------------------------------

    def _devices(self, body: dict[str, Any]) -> None:
        devices = body.get("devices")
        if not isinstance(devices, list):
            self.bad_messages += 1
            return
        ts = parse_ts(body.get("ts"))
        for dev in devices:
            if not isinstance(dev, dict) or not isinstance(dev.get("device_id"), str):
                continue
            device_id, online = dev["device_id"], dev.get("online") is True
            before = self._online.get(device_id)
            if before is None:
                # A device heard for the first time is not news; a change after that is.
                if online:
                    self._online[device_id] = True
                continue
            if before == online:
                continue
            self._online[device_id] = online
            seen = parse_ts(dev.get("last_seen"))
            state = "back online" if online else "OFFLINE"
            extra = f" (last heard {seen.strftime('%H:%M')})" if seen and not online else ""
            when = fmt_when(ts) if ts else "?"
            self.health_changes.append(f"{device_id} {state.lower()} at {when}")
            self._flush_telemetry_until(ts)
            self.print(console_line(when, str(dev.get("site_id", "?")), "device",
                                    f"{device_id} {state}{extra}"))

    def online_devices(self) -> set[str]:
        return {d for d, up in self._online.items() if up}

    def _status(self, body: dict[str, Any]) -> None:
        state = str(body.get("state", "?"))
        # P/status is republished while online with refreshed health fields (uptime, outbox):
        # the summary lists changes of state, not every refresh.
        if not self.status or self.status[-1][0] != state:
            self.status.append((state, str(body.get("ts", ""))))


    # -- the closing summary ------------------------------------------------------

    def summary(self, hours: float, real_seconds: float) -> list[str]:
        lines = [
            f"== summary: {hours:.3g} simulated hours in {real_seconds:.1f} s, "
            "as received by the platform ==",
            f"{'alert type':<{TYPE_W}} {'raised':>7} {'escalated':>10} {'acknowledged':>13} "
            f"{'cleared':>8}",
        ]
        total = AlertTally()
        for kind in sorted(self.alerts):
            t = self.alerts[kind]
            lines.append(f"{kind:<{TYPE_W}} {t.raised:>7} {t.escalated:>10} "
                         f"{t.acknowledged:>13} {t.cleared:>8}")
            total.raised += t.raised
            total.escalated += t.escalated
            total.acknowledged += t.acknowledged
            total.cleared += t.cleared
        lines.append(f"{'all':<{TYPE_W}} {total.raised:>7} {total.escalated:>10} "
                     f"{total.acknowledged:>13} {total.cleared:>8}")
        still = sorted(f"{a.get('type')} at {a.get('site_id')}" for a in self.open_alerts.values())
        lines.append(f"open at the end: {', '.join(still) if still else 'none'}")
        lines.append(f"readings forwarded: {self.readings} in {self.telemetry_messages} "
                     f"telemetry messages ({grouped(self.metrics) or 'none'})")
        changes = self.health_changes[:SHOWN_HEALTH_CHANGES]
        more = len(self.health_changes) - len(changes)
        lines.append("device health changes: "
                     + ("; ".join(changes) if changes else "none")
                     + (f"; and {more} more" if more > 0 else ""))
        lines.append("gateway status: " + (" -> ".join(s for s, _ in self.status) or "never seen"))
        if self.ack_failures:
            lines.append("acknowledgements refused: " + "; ".join(self.ack_failures))
        if self.bad_messages:
            lines.append(f"unreadable messages: {self.bad_messages}")
        return lines


@dataclass
class CareWorker:
    """Someone on duty at the care centre: takes each raised alert after a while."""

    publish: Callable[[str, dict[str, Any]], Any]  # async (topic, body)
    prefix: str
    clock: Clock
    console: PlatformConsole
    name: str = "worker-17"
    delays: dict[str, float] = field(default_factory=lambda: {"sos": 6 * 60.0})
    default_delay: float = 10 * 60.0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _seq: int = 0

    def on_raised(self, alert: dict[str, Any]) -> None:
        task = asyncio.create_task(self._take(alert))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _take(self, alert: dict[str, Any]) -> None:
        alert_id = str(alert.get("alert_id"))
        delay = self.delays.get(str(alert.get("type")), self.default_delay)
        await self.clock.sleep(delay)
        if alert_id not in self.console.open_alerts:
            return  # it cleared by itself before anyone got to it
        self._seq += 1
        command_id = f"ack-{self._seq}"
        self.console.expect_ack(command_id, str(alert.get("type")))
        when = self.clock.now().wall
        raised = parse_ts(alert.get("raised_at"))
        if raised is not None:
            when = when.astimezone(raised.tzinfo)
        self.console.note_ack_sent(alert, self.name, when)
        await self.publish(
            f"{self.prefix}/cmd/ack", {"id": command_id, "alert_id": alert_id, "by": self.name}
        )

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
