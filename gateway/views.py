"""`hearthgate alerts` and `hearthgate devices`: the local store as readable tables.

They read the store of a running (or stopped) gateway without disturbing it:
SQLite in read-only mode for alerts; for devices, the health snapshot the
service keeps in its runtime directory (tmpfs under systemd, so refreshing it
costs the SD card nothing), or the last one saved in the store.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from hearthgate.config import GatewayConfig
from hearthgate.core.model import utc_now
from hearthgate.store import read_alerts, read_only, read_state

DEVICES_FILE = "devices.json"


SYSTEMD_RUNTIME_DIR = Path("/run/hearthgate")  # RuntimeDirectory= of the unit


def runtime_dir(config: GatewayConfig, data_dir: Path | None = None) -> Path:
    """Where the live device snapshot goes: $RUNTIME_DIRECTORY (systemd) or the data dir."""
    env = os.environ.get("RUNTIME_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    return data_dir or config.gateway.data_dir


def format_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a plain table, columns padded by their widest cell."""
    def width(text: str) -> int:
        # CJK characters take two columns in a terminal.
        return sum(2 if ord(c) > 0x2E80 else 1 for c in text)

    widths = [max([width(h)] + [width(r[i]) for r in rows]) for i, h in enumerate(headers)]
    return ["  ".join(c + " " * (w - width(c)) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in [headers, *rows]]


def _table(headers: list[str], rows: list[list[str]], out: TextIO) -> None:
    for line in format_table(headers, rows):
        print(line, file=out)


def _ago(iso: str | None, now: datetime) -> str:
    if not iso:
        return "never"
    try:
        seconds = (now - datetime.fromisoformat(iso)).total_seconds()
    except ValueError:
        return iso
    if seconds < 0:
        return iso
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def print_alerts(
    config: GatewayConfig, *, data_dir: Path | None = None, as_json: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    conn = read_only(data_dir or config.gateway.data_dir)
    rows = read_alerts(conn) if conn is not None else []
    if conn is not None:
        conn.close()
    if as_json:
        for r in rows:
            print(json.dumps({
                "alert_id": r.alert_id, "type": r.type, "severity": r.severity,
                "site_id": r.site_id, "device_ids": r.device_ids, "status": r.status,
                "state": r.state, "raised_at": r.raised_at, "updated_at": r.updated_at,
                "acked_by": r.acked_by, "acked_at": r.acked_at, "message": r.message,
            }, ensure_ascii=False), file=out)
        return 0
    if not rows:
        print("no alerts in the local store", file=out)
        return 0
    tz = config.gateway.tz
    _table(
        ["STATUS", "TYPE", "SEVERITY", "SITE", "RAISED", "ACKED BY", "MESSAGE", "ALERT ID"],
        [
            [
                r.status, r.type, r.severity, r.site_id,
                datetime.fromisoformat(r.raised_at).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
                r.acked_by or "-", r.message, r.alert_id,
            ]
            for r in rows
        ],
        out,
    )
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    print("\n" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), file=out)
    return 0


def load_devices(config: GatewayConfig, data_dir: Path | None = None) -> dict[str, Any] | None:
    # An operator's shell has no $RUNTIME_DIRECTORY: look where the unit puts it too, and
    # take whichever snapshot is newest.
    candidates = [runtime_dir(config, data_dir) / DEVICES_FILE]
    if data_dir is None:
        candidates.append(SYSTEMD_RUNTIME_DIR / DEVICES_FILE)
    existing = [p for p in candidates if p.is_file()]
    for live in sorted(existing, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            return json.loads(live.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    conn = read_only(data_dir or config.gateway.data_dir)
    if conn is None:
        return None
    try:
        return read_state(conn, "devices")
    finally:
        conn.close()


def print_devices(
    config: GatewayConfig, *, data_dir: Path | None = None, as_json: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    snapshot = load_devices(config, data_dir) or {}
    known = {d["device_id"]: d for d in snapshot.get("devices", [])}
    now = utc_now()
    merged = []
    for device in config.devices:
        state = known.get(device.id, {})
        merged.append({
            "device_id": device.id, "site_id": device.site, "kind": device.kind,
            "protocol": device.protocol, "online": bool(state.get("online", False)),
            "why": state.get("why"),
            "last_seen": state.get("last_seen"), "battery": state.get("battery"),
            "linkquality": state.get("linkquality"), "values": state.get("values", {}),
        })
    if as_json:
        print(json.dumps({"ts": snapshot.get("ts"), "devices": merged}, ensure_ascii=False),
              file=out)
        return 0

    def last_value(values: dict[str, Any]) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"

    _table(
        ["DEVICE", "SITE", "KIND", "PROTOCOL", "ONLINE", "LAST SEEN", "BATTERY", "LINK",
         "LAST VALUE"],
        [
            [
                d["device_id"], d["site_id"], d["kind"], d["protocol"],
                "yes" if d["online"] else f"NO: {d['why']}" if d.get("why") else "NO",
                _ago(d["last_seen"], now),
                "-" if d["battery"] is None else f"{d['battery']:.0f}%",
                "-" if d["linkquality"] is None else f"{d['linkquality']:.0f}",
                last_value(d["values"]),
            ]
            for d in merged
        ],
        out,
    )
    online = sum(1 for d in merged if d["online"])
    print(f"\n{online} of {len(merged)} devices online"
          + (f" (as of {snapshot['ts']})" if snapshot.get("ts") else ""), file=out)
    return 0
