"""`hearthgate walktest -c FILE`: commissioning, device by device (docs/operations.md).

Attaches to the running service through its control socket, or, when none runs, runs the
gateway itself in this process (serving the same socket, so `hearthgate ack` reaches it) and
reads the walk test the same way. Besides what the service hears, it listens on every local
broker of the config (`mqtt` buses with zigbee2mqtt devices) for friendly names no device
names, and hands them to the session, so that the terminal and the local page list them alike.

Output: a table redrawn in place on a terminal, plain lines otherwise, or with `--json` one
JSON object per event (`start`, `heard`, `unconfigured`, `alert`, then `summary`). Exit 0
when every device was heard, 1 when some never were (or the walk test could not run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from hearthgate.config import GatewayConfig
from hearthgate.control import ask
from hearthgate.forget import control_paths, local_user
from hearthgate.messages import text
from hearthgate.service import Gateway

log = logging.getLogger("hearthgate.walktest")

EXIT_ALL_HEARD, EXIT_MISSING = 0, 1
POLL_WAIT = 1.0  # s a read of events waits on the service for news
START_TIMEOUT = 30.0  # s for a gateway run by the walk test to come up
MAX_LOCAL_PAYLOAD = 64 * 1024  # a zigbee2mqtt state is small; larger is not a device's
Z2M_SUFFIXES = ("/availability", "/set", "/get")
# zigbee2mqtt keys that say what a device is, for the suggested `kind:`.
KIND_BY_KEY = (
    ("contact", "door_contact"), ("water_leak", "leak_sensor"), ("smoke", "smoke_sensor"),
    ("gas", "gas_sensor"), ("carbon_monoxide", "co_sensor"), ("presence", "presence_sensor"),
    ("occupancy", "motion_sensor"), ("action", "sos_button"), ("fall", "fall_sensor"),
)


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:60] or "device"


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool | int | float):
        return json.dumps(value)  # a number stays a number (an OSDP address)
    text_value = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./-]+", text_value) and not text_value[0].isdigit():
        return text_value
    return json.dumps(text_value, ensure_ascii=False)


def yaml_entry(entry: dict[str, Any]) -> str:
    """A `devices:` line ready to paste (a flow mapping)."""
    return "- {" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in entry.items()) + "}"


def guess_kind(payload: bytes) -> str:
    """The device kind a zigbee2mqtt state suggests; KIND when it says nothing we know."""
    try:
        state = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return "KIND"
    if not isinstance(state, dict):
        return "KIND"
    return next((kind for key, kind in KIND_BY_KEY if key in state), "KIND")


class Checklist:
    """What the walk test shows: the devices, what they said, the rest it heard.

    Args:
        config: the config whose devices make the checklist.
        config_path: the file, for the `hearthgate ack -c ...` hint.
        out: where to write.
        mode: `json`, `table` (a terminal: redrawn in place) or `lines`.
        lang: `zh` or `en`.
    """

    def __init__(self, config: GatewayConfig, config_path: str, out: TextIO, mode: str,
                 lang: str) -> None:
        self.config = config
        self.config_path = config_path
        self.out = out
        self.mode = mode
        self.lang = lang
        self.devices: dict[str, dict[str, Any]] = {}
        self.unknown: list[dict[str, Any]] = []
        self.alerts: dict[str, dict[str, Any]] = {}
        self.lines: list[str] = []  # news shown under the table
        self.site = config.sites[0].id if len(config.sites) == 1 else "SITE"

    def t(self, msg_id: str, **params: Any) -> str:
        return text(msg_id, self.lang, **params)

    def said(self, event: dict[str, Any]) -> str:
        return self.t(event.get("said") or "said.other", **(event.get("said_params") or {}))

    def entry(self, item: dict[str, Any]) -> dict[str, Any]:
        """The unknown device's `devices:` entry, completed with what the config suggests."""
        known = dict(item.get("entry") or {})
        name = str(item.get("key", "device"))
        base = {"id": _slug(name.rsplit("=", 1)[-1] if "=" in name else name),
                "site": self.site, "kind": known.pop("kind", "KIND")}
        return {**base, **known}

    def emit(self, obj: dict[str, Any]) -> None:
        if self.mode == "json":
            print(json.dumps(obj, ensure_ascii=False), file=self.out, flush=True)

    def start(self, state: dict[str, Any], attached: bool) -> None:
        for d in state.get("devices", []):
            self.devices[d["device_id"]] = {**d, "said_text": ""}
        self.emit({"event": "start", "gateway_id": self.config.gateway.id,
                   "attached": attached, "session": state.get("session"),
                   "devices": [{k: d[k] for k in ("device_id", "site_id", "kind", "protocol")}
                               for d in state.get("devices", [])]})
        note = self.t("walk.attached" if attached else "walk.standalone")
        self.news(note)
        self.news(self.t("walk.hint"))
        for d in state.get("devices", []):
            if d.get("heard_at"):
                self.devices[d["device_id"]]["said_text"] = "…"
        for item in state.get("unconfigured", []):
            self.event({"event": "unconfigured", **item})

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "heard":
            dev = self.devices.get(str(event.get("device_id")))
            if dev is None:
                return
            dev["heard_at"] = dev.get("heard_at") or event.get("ts")
            dev["said_text"] = self.said(event)
            self.emit({k: v for k, v in event.items() if k != "seq"}
                      | {"said_text": dev["said_text"]})
            self.news(self.t("walk.heard", device=dev["device_id"], kind=dev["kind"],
                             said=dev["said_text"]))
        elif kind == "unconfigured":
            entry = self.entry(event)
            item = {"protocol": event.get("protocol"), "key": event.get("key"),
                    "entry": entry, "yaml": yaml_entry(entry)}
            self.unknown.append(item)
            self.emit({"event": "unconfigured", **item})
            self.news(self.t("walk.unconfigured", protocol=item["protocol"], key=item["key"]))
            self.news("  " + item["yaml"])
        elif kind == "alert":
            alert_id = str(event.get("alert_id"))
            self.alerts[alert_id] = event
            self.emit({k: v for k, v in event.items() if k != "seq"})
            self.news(self.t("walk.alert", type=event.get("type"), state=event.get("state"),
                             site=event.get("site_id"), alert_id=alert_id,
                             message=event.get("message")))
            if event.get("state") != "cleared":
                self.news("  " + self.t("walk.ack_hint", config=self.config_path,
                                        alert_id=alert_id))
        self.draw()

    def news(self, line: str) -> None:
        if self.mode == "lines":
            print(line, file=self.out, flush=True)
        elif self.mode == "table":
            self.lines = [*self.lines, line][-12:]

    def missing(self) -> list[str]:
        return [d for d, v in self.devices.items() if not v.get("heard_at")]

    def draw(self) -> None:
        if self.mode != "table":
            return
        from hearthgate.views import format_table

        heard = len(self.devices) - len(self.missing())
        rows = [[d["device_id"], d["site_id"], d["kind"],
                 self.t("walk.yes") if d.get("heard_at") else self.t("walk.no"),
                 d.get("said_text", "")] for d in self.devices.values()]
        table = format_table(
            [self.t(f"walk.col_{c}") for c in ("device", "site", "kind", "heard", "said")], rows)
        title = self.t("walk.title", gateway=self.config.gateway.id, heard=heard,
                       total=len(self.devices))
        # Home and clear: the table is redrawn in place, the news scrolls below it.
        self.out.write("\x1b[H\x1b[J" + "\n".join([title, "", *table, "", *self.lines]) + "\n")
        self.out.flush()

    def summary(self, reason: str) -> None:
        missing = self.missing()
        total = len(self.devices)
        open_alerts = [a for a, e in self.alerts.items() if e.get("state") != "cleared"]
        self.emit({"event": "summary", "reason": reason, "heard": total - len(missing),
                   "total": total, "missing": missing, "unconfigured": self.unknown,
                   "open_test_alerts": open_alerts})
        if self.mode == "json":
            return
        lines = [self.t("walk.summary", reason=self.t(f"walk.reason.{reason}"),
                        heard=total - len(missing), total=total)]
        lines.append(self.t("walk.missing", devices=", ".join(missing)) if missing
                     else self.t("walk.all_heard"))
        for item in self.unknown:
            lines.append("  " + item["yaml"])
        for alert_id in open_alerts:
            lines.append(self.t("walk.ack_hint", config=self.config_path, alert_id=alert_id))
        print("\n".join(lines), file=self.out, flush=True)


async def listen_local_brokers(config: GatewayConfig, report: Any, warn: Any,
                               ready: Any = None) -> None:
    """Hear every friendly name published on the config's zigbee2mqtt brokers; report the
    ones no device names. Returns when no bus carries zigbee2mqtt devices."""
    from hearthgate.drivers.zigbee2mqtt import bridge_topic

    listeners = []
    for bus in config.buses:
        devices = [d for d in config.devices if d.bus == bus.id and d.protocol == "zigbee2mqtt"]
        if bus.type != "mqtt" or not devices:
            continue
        topics = {str(d.options.topic) for d in devices}  # type: ignore[attr-defined]
        bases = sorted({bridge_topic(t) for t in topics})
        listeners.append(_listen_one(bus, bases, topics, report, warn, ready))
    if listeners:
        async with asyncio.TaskGroup() as tg:
            for listener in listeners:
                tg.create_task(listener)


async def _listen_one(bus: Any, bases: list[str], topics: set[str], report: Any,
                      warn: Any, ready: Any) -> None:
    import aiomqtt

    opts = bus.options
    seen: set[str] = set()
    warned = False
    while True:
        try:
            async with aiomqtt.Client(
                opts.host, opts.port, username=opts.username,
                password=opts.password.get_secret_value() if opts.password else None,
                timeout=10,
            ) as client:
                for base in bases:
                    await client.subscribe(f"{base}/#")
                if ready is not None:
                    ready(bus.id)
                async for message in client.messages:
                    topic = str(message.topic)
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    await _consider(bus.id, bases, topics, seen, topic, payload, report)
        except aiomqtt.MqttError as exc:
            if not warned:
                warned = True
                warn(opts.host, opts.port, exc)
        await asyncio.sleep(2.0)


async def _consider(bus_id: str, bases: list[str], topics: set[str], seen: set[str],
                    topic: str, payload: bytes, report: Any) -> None:
    """One message on the local broker: a friendly name nobody configured is reported."""
    base = next((b for b in bases if topic.startswith(b + "/")), None)
    if base is None or len(payload) > MAX_LOCAL_PAYLOAD:
        return
    name = topic[len(base) + 1:]
    if not name or name.startswith("bridge/") or name == "bridge":
        return
    for suffix in Z2M_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    device_topic = f"{base}/{name}"
    if not name or device_topic in topics or device_topic in seen or len(seen) >= 200:
        return
    if any(device_topic.startswith(t + "/") for t in topics):
        return  # a sub-topic of a configured device
    seen.add(device_topic)
    await report("zigbee2mqtt", name, {
        "kind": guess_kind(payload), "protocol": "zigbee2mqtt", "bus": bus_id,
        "topic": device_topic,
    })


async def walktest(config: GatewayConfig, config_path: str, *, data_dir: Path | None,
                   out: TextIO, mode: str, lang: str, timeout: float | None,
                   user: str) -> int:
    """The walk test; returns the exit status."""
    paths = control_paths(config, data_dir)
    checklist = Checklist(config, config_path, out, mode, lang)
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted.set)
    try:
        async with asyncio.TaskGroup() as tg:
            gateway_stop: asyncio.Event | None = None
            attached = await ask(paths, {"command": "hello"}, timeout=5) is not None
            if not attached:
                gateway = Gateway(config, data_dir=data_dir)
                gateway_stop = asyncio.Event()
                runner = tg.create_task(gateway.run(gateway_stop), name="gateway")
                ready = tg.create_task(gateway.ready.wait())
                await asyncio.wait({runner, ready}, timeout=START_TIMEOUT,
                                   return_when=asyncio.FIRST_COMPLETED)
                if not gateway.ready.is_set():
                    ready.cancel()
                    gateway_stop.set()
                    raise RuntimeError("the gateway did not start")
            try:
                status = await _session(config, paths, checklist, attached, interrupted,
                                        timeout, user, tg)
            finally:
                if gateway_stop is not None:
                    gateway_stop.set()
            return status
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _session(config: GatewayConfig, paths: list[Path], checklist: Checklist,
                   attached: bool, interrupted: asyncio.Event, timeout: float | None,
                   user: str, tg: asyncio.TaskGroup) -> int:
    started = await ask(paths, {"command": "walktest_start", "user": user})
    if not started or not started.get("ok"):
        print(f"walktest: {(started or {}).get('error', 'no answer from the service')}",
              file=sys.stderr)
        return EXIT_MISSING
    session, seq = started["session"], 0
    checklist.start(started, attached)

    async def report(protocol: str, key: str, entry: dict[str, Any]) -> None:
        await ask(paths, {"command": "walktest_unknown", "user": user, "session": session,
                          "protocol": protocol, "key": key, "entry": entry})

    def warn(host: str, port: int, exc: Exception) -> None:
        checklist.news(checklist.t("walk.broker_down", host=host, port=port, error=exc))

    def listening(bus_id: str) -> None:
        checklist.emit({"event": "listening", "bus": bus_id})

    listener = tg.create_task(listen_local_brokers(config, report, warn, listening),
                              name="z2m-listen")
    deadline = time.monotonic() + timeout if timeout else None
    reason = "interrupted"
    try:
        checklist.draw()
        while not interrupted.is_set():
            if not checklist.missing():
                reason = "all_heard"
                break
            if deadline is not None and time.monotonic() >= deadline:
                reason = "timeout"
                break
            reading = asyncio.ensure_future(ask(paths, {
                "command": "walktest_events", "user": user, "session": session,
                "since": seq, "wait": POLL_WAIT}))
            stopping = asyncio.ensure_future(interrupted.wait())
            try:
                await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if not reading.done():
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading
                break
            answer = reading.result()
            if answer is None or not answer.get("ok"):
                reason = "lost"
                break
            for event in answer.get("events", []):
                seq = max(seq, int(event.get("seq", 0)))
                checklist.event(event)
    finally:
        listener.cancel()
        with contextlib.suppress(Exception):
            await ask(paths, {"command": "walktest_stop", "user": user, "session": session,
                              "reason": reason}, timeout=5)
    checklist.summary(reason)
    return EXIT_MISSING if checklist.missing() else EXIT_ALL_HEARD


def run_walktest(config: GatewayConfig, config_path: str, *, data_dir: Path | None,
                 as_json: bool, timeout: float | None, lang: str | None,
                 by: str | None = None, out: TextIO = sys.stdout) -> int:
    mode = "json" if as_json else ("table" if out.isatty() else "lines")
    try:
        return asyncio.run(walktest(
            config, config_path, data_dir=data_dir, out=out, mode=mode,
            lang=lang or config.gateway.language, timeout=timeout, user=local_user(by)))
    except (OSError, RuntimeError, ExceptionGroup) as exc:
        # One line for the installer, not a traceback: the gateway's log has the detail.
        problems = exc.exceptions if isinstance(exc, ExceptionGroup) else (exc,)
        for problem in problems:
            print(f"walktest: {type(problem).__name__}: {problem}", file=sys.stderr)
        return EXIT_MISSING
