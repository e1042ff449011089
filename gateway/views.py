"""`hearthgate alerts`, `devices` and `status`: what the gateway knows, as readable tables.

`alerts` reads the store of a running (or stopped) gateway without disturbing it (SQLite
read-only). `devices` asks the running service over its control socket
(`hearthgate.control`) for the device health it holds at this moment; with no service
running it shows the states last saved in the store, and says so. `status` asks the
running service how the platform sees it (uplink, outbox, coverage per site); exit 1 when
no service runs. A socket that answers garbage is a clear error (exit 1), never a
traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from hearthgate.config import GatewayConfig
from hearthgate.control import CONTROL_SOCKET, ControlError, ask
from hearthgate.core.model import utc_now
from hearthgate.messages import MESSAGES, text, translate
from hearthgate.store import read_alerts, read_only, read_state

EXIT_OK, EXIT_NOT_RUNNING = 0, 1
ASK_TIMEOUT = 5.0  # s: a live service answers in milliseconds; a hung one is reported

SYSTEMD_RUNTIME_DIR = Path("/run/hearthgate")  # RuntimeDirectory= of the unit


def runtime_dir(config: GatewayConfig, data_dir: Path | None = None) -> Path:
    """Where the control socket goes: $RUNTIME_DIRECTORY (systemd) or the data dir."""
    env = os.environ.get("RUNTIME_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    return data_dir or config.gateway.data_dir


def control_paths(config: GatewayConfig, data_dir: Path | None) -> list[Path]:
    """Where a running service's control socket may be."""
    # An operator's shell has no $RUNTIME_DIRECTORY: look where the unit puts it too.
    paths = [runtime_dir(config, data_dir) / CONTROL_SOCKET]
    if data_dir is None:
        paths.append(SYSTEMD_RUNTIME_DIR / CONTROL_SOCKET)
    return paths


def ask_service(config: GatewayConfig, data_dir: Path | None, command: str
                ) -> dict[str, Any] | None:
    """The running service's answer to `command`; None when no service runs.

    Raises:
        ControlError: something listens but does not answer as hearthgate does, or the
            service refused the request.
    """
    answer = asyncio.run(ask(control_paths(config, data_dir), {"command": command},
                             timeout=ASK_TIMEOUT))
    if answer is not None and not answer.get("ok"):
        raise ControlError(f"the service refused '{command}': {answer.get('error')}"
                           " (is it an older version?)")
    return answer


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


def reason_text(why: str, lang: str) -> str:
    """A reason a device is offline or a rule blind in `lang`: its parts (joined by "; ",
    outside parentheses) translated one by one; a part no template knows stays as it is."""
    if lang != "zh":
        return why
    parts, depth, start = [], 0, 0
    for i, c in enumerate(why):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth == 0 and why.startswith("; ", i):
            parts.append(why[start:i])
            start = i + 2
    parts.append(why[start:])
    return "；".join(translate(p, lang) for p in parts)


def _ago(iso: str | None, now: datetime, lang: str = "en") -> str:
    if not iso:
        return text("devices.never", lang)
    try:
        seconds = (now - datetime.fromisoformat(iso)).total_seconds()
    except ValueError:
        return iso
    if seconds < 0:
        return iso
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or unit == "s":
            return text("devices.ago", lang, n=int(seconds // size),
                        unit=text(f"devices.unit.{unit}", lang))
    raise AssertionError("unreachable")


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
                "refused_reason": r.refused_reason,
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


def saved_devices(config: GatewayConfig, data_dir: Path | None = None) -> dict[str, Any] | None:
    """The device states the service last saved in the store (every few minutes and when it
    stops), for when no service runs."""
    conn = read_only(data_dir or config.gateway.data_dir)
    if conn is None:
        return None
    try:
        saved = read_state(conn, "devices")
    finally:
        conn.close()
    return saved if isinstance(saved, dict) else None


def load_devices(config: GatewayConfig, data_dir: Path | None = None) -> dict[str, Any] | None:
    """The running service's device health now (`live: true`), else the last saved.

    Raises:
        ControlError: as `ask_service`.
    """
    return ask_service(config, data_dir, "devices") or saved_devices(config, data_dir)


def online_text(d: dict[str, Any], lang: str = "en") -> str:
    if d["online"] is None:
        return text("devices.not_heard", lang)
    if d["online"]:
        return text("devices.online", lang)
    why = d.get("why")
    return (text("devices.offline_why", lang, why=reason_text(str(why), lang)) if why
            else text("devices.offline", lang))


def language(config: GatewayConfig, lang: str | None) -> str:
    """`--lang` if given, else the config's `gateway.language`."""
    return lang or config.gateway.language


def _error(exc: Exception, lang: str, err: TextIO) -> None:
    print(text("control.error", lang, message=translate(str(exc), lang)), file=err)


def print_devices(
    config: GatewayConfig, *, data_dir: Path | None = None, as_json: bool = False,
    out: TextIO = sys.stdout, err: TextIO = sys.stderr, lang: str | None = None,
) -> int:
    """`hearthgate devices`: every configured device with its health, in `lang` (default:
    `gateway.language`; `--json` is language-neutral)."""
    lang = language(config, lang)
    try:
        snapshot = load_devices(config, data_dir) or {}
    except ControlError as exc:
        _error(exc, lang, err)
        return EXIT_NOT_RUNNING
    live = snapshot.get("live") is True
    devices = snapshot.get("devices")
    known = {d["device_id"]: d for d in devices if isinstance(d, dict) and "device_id" in d
             } if isinstance(devices, list) else {}
    now = utc_now()
    merged = []
    for device in config.devices:
        state = known.get(device.id, {})
        online = state.get("online")
        merged.append({
            "device_id": device.id, "site_id": device.site, "kind": device.kind,
            "protocol": device.protocol,
            # Nothing known of a device is "not heard yet", not "offline".
            "online": online if isinstance(online, bool) else None,
            "why": state.get("why"),
            "last_seen": state.get("last_seen"), "battery": state.get("battery"),
            "linkquality": state.get("linkquality"), "values": state.get("values", {}),
        })
    if as_json:
        print(json.dumps({"ts": snapshot.get("ts"), "live": live, "devices": merged},
                         ensure_ascii=False), file=out)
        return 0
    if not live:
        when = (text("devices.saved_at", lang, ts=snapshot["ts"]) if snapshot.get("ts")
                else text("devices.nothing_saved", lang))
        print(text("devices.not_running", lang, when=when) + "\n", file=out)

    def shown(value: Any) -> str:
        if isinstance(value, bool):
            return text("devices.true" if value else "devices.false", lang)
        return str(value)

    def last_value(values: dict[str, Any]) -> str:
        # Metric names stay as the MQTT API and the docs name them.
        return ", ".join(f"{k}={shown(v)}" for k, v in sorted(values.items())) or "-"

    _table(
        [text(f"devices.col_{c}", lang) for c in (
            "device", "site", "kind", "protocol", "online", "last_seen", "battery", "link",
            "last_value")],
        [
            [
                d["device_id"], d["site_id"], d["kind"], d["protocol"],
                online_text(d, lang),
                _ago(d["last_seen"], now, lang),
                "-" if d["battery"] is None else f"{d['battery']:.0f}%",
                "-" if d["linkquality"] is None else f"{d['linkquality']:.0f}",
                last_value(d["values"]),
            ]
            for d in merged
        ],
        out,
    )
    online = sum(1 for d in merged if d["online"])
    unheard = sum(1 for d in merged if d["online"] is None)
    when = (text("devices.now", lang) if live
            else text("devices.as_of", lang, ts=snapshot["ts"]) if snapshot.get("ts") else "")
    print("\n" + text("devices.summary", lang, online=online, total=len(merged), when=when,
                      unheard=text("devices.summary_unheard", lang, n=unheard) if unheard
                      else ""), file=out)
    return 0


def print_status(
    config: GatewayConfig, *, data_dir: Path | None = None, as_json: bool = False,
    out: TextIO = sys.stdout, err: TextIO = sys.stderr, lang: str | None = None,
) -> int:
    """`hearthgate status`: the running gateway as the platform sees it; 1 when none runs.
    In `lang` (default: `gateway.language`); `--json` is the service's answer as it is."""
    lang = language(config, lang)
    try:
        status = ask_service(config, data_dir, "status")
    except ControlError as exc:
        _error(exc, lang, err)
        return EXIT_NOT_RUNNING
    if status is None:
        where = ", ".join(str(p) for p in control_paths(config, data_dir))
        print(text("status.not_running", lang, gateway=config.gateway.id, where=where),
              file=err)
        return EXIT_NOT_RUNNING
    if as_json:
        print(json.dumps(status, ensure_ascii=False), file=out)
        return EXIT_OK
    up = status.get("uplink") if isinstance(status.get("uplink"), dict) else {}
    outbox = status.get("outbox") if isinstance(status.get("outbox"), dict) else {}
    print(text("status.running", lang, gateway=status.get("gateway_id", config.gateway.id),
               uptime=_duration(status.get("uptime_s"), lang)), file=out)
    print(text("status.uplink", lang, host=up.get("host"), port=up.get("port"),
               state=text("status.connected" if up.get("connected") else "status.not_connected",
                          lang)), file=out)
    counts = ", " if lang == "en" else "，"
    print(text("status.outbox", lang, counts=counts.join(
        text("status.outbox_count", lang, n=n, kind=text(f"status.outbox.{k}", lang)
             if f"status.outbox.{k}" in MESSAGES else k) for k, n in outbox.items()),
        degraded=text("status.degraded", lang) if status.get("store_degraded") else ""),
        file=out)
    coverage = status.get("coverage")
    for site in coverage if isinstance(coverage, list) else []:
        if not isinstance(site, dict):
            continue
        # Rule types stay as the config names them: the installer finds them in the file.
        watching = (", ".join(str(r) for r in site.get("watching") or [])
                    or text("status.nothing", lang))
        print("\n" + text("status.site", lang, site=site.get("site_id")), file=out)
        print(text("status.watching", lang, rules=watching), file=out)
        for b in site.get("blind") or []:
            if isinstance(b, dict):
                print(text("status.blind", lang, rule=b.get("rule"),
                           why=reason_text(str(b.get("why")), lang)), file=out)
    return EXIT_OK


def _duration(seconds: Any, lang: str = "en") -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "?"
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size or unit == "s":
            n = s // size
            return f"{n}{unit}" if lang == "en" else f"{n} {text(f'devices.unit.{unit}', lang)}"
    raise AssertionError("unreachable")
