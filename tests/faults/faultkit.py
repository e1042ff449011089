"""What the fault-injection tests share: a gateway config with many SOS sites, a zigbee2mqtt
stand-in, the platform's view, checks on what arrived, and a place to record figures.

Everything here drives real parts: real mosquitto brokers, the gateway as a real process
(or an in-process `Gateway` with real I/O), its real SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import GatewayProcess, PlatformSubscriber, Received, config_head
from hearthgate.registry import STANDARD, Registry

GW = "gw-fault-0001"
P = f"hearthgate/{GW}"
ALERTS = f"{P}/alerts"
RESULTS = f"{P}/cmd/result"
# The generic model knows three "help" actions: cycling them keeps presses apart from the
# driver's debounce of one repeated action.
ACTIONS = ("emergency", "sos", "panic")


def site_ids(n: int) -> list[str]:
    return [f"room-{301 + i}" for i in range(n)]


def write_config(
    tmp: Path, platform: MosquittoBroker, local: MosquittoBroker, sites: Iterable[str],
    *, data_dir: Path | None = None, extra_devices: str = "", extra_buses: str = "",
    sos_options: str = ", repeat_window: 0s", log_level: str = "info",
    site_rules: dict[str, str] | None = None,
) -> Path:
    """A gateway with one SOS button and one `sos` rule per site. The rule's repeat window is
    off by default: the tests press a site again as soon as its alert is cleared, and what
    keeps a second alert from being raised while one is open must then be the engine's own
    (restored) state, not the window."""
    sites = list(sites)
    devices = "\n".join(
        f"  - {{id: sos-{s[5:]}, site: {s}, kind: sos_button, protocol: zigbee2mqtt,"
        f" bus: zigbee, topic: zigbee2mqtt/sos_{s[5:]}, model: generic}}"
        for s in sites
    )
    site_lines = "\n".join(
        f"  - {{id: {s}, resident: r-{s[5:]}, rules: [{{type: sos{sos_options}}}"
        f"{', ' + (site_rules or {})[s] if s in (site_rules or {}) else ''}]}}"
        for s in sites
    )
    path = tmp / "config.yaml"
    path.write_text(
        config_head(GW, data_dir or tmp / "data", platform.port, local.port, log_level=log_level,
                    raw_reason="fault tests count raw readings")
        + f"""{extra_buses}devices:
{devices}
{extra_devices}sites:
{site_lines}
"""
    )
    return path


def press_payload(n: int = 0, battery: int = 80) -> dict[str, Any]:
    return {"action": ACTIONS[n % len(ACTIONS)], "battery": battery, "voltage": 2900,
            "linkquality": 100 + n % 50}


async def press_sos(zigbee: PlatformSubscriber, site: str, n: int = 0) -> None:
    await zigbee.publish(f"zigbee2mqtt/sos_{site[5:]}", press_payload(n))


async def send_reading(zigbee: PlatformSubscriber, site: str, n: int) -> None:
    """A state message without an action: telemetry only (battery, link quality)."""
    await zigbee.publish(
        f"zigbee2mqtt/sos_{site[5:]}", {"battery": 50 + n % 50, "linkquality": n % 255}
    )


async def wait_until(predicate: Any, timeout: float, what: str, log: str | Any = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            detail = log() if callable(log) else log
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{detail[-3000:]}")
        await asyncio.sleep(0.05)


async def started(gw: GatewayProcess, platform: PlatformSubscriber, *, connects: int = 1) -> None:
    """Start the gateway process; wait until it is online and its zigbee bus is connected."""
    before = len([m for m in platform.on(f"{P}/status") if _state(m) == "online"])
    gw.start()
    await wait_until(
        lambda: len([m for m in platform.on(f"{P}/status") if _state(m) == "online"]) > before,
        30, "the gateway to come online", gw.log_text,
    )
    await wait_until(
        lambda: gw.log_text().count("bus zigbee connected") >= connects,
        30, "the zigbee bus to connect", gw.log_text,
    )


def _state(m: Received) -> str | None:
    try:
        return m.json().get("state")
    except ValueError:
        return None


def alert_messages(platform: PlatformSubscriber) -> list[dict[str, Any]]:
    return [m.json() for m in platform.on(ALERTS)]


def check_duplicates(messages: list[Received]) -> int:
    """Any two messages with the same event_id must be identical; returns the duplicate count."""
    by_event: dict[str, list[bytes]] = defaultdict(list)
    for m in messages:
        by_event[json.loads(m.payload)["event_id"]].append(m.payload)
    dupes = 0
    for event_id, payloads in by_event.items():
        bodies = [json.loads(p) for p in payloads]
        assert all(b == bodies[0] for b in bodies), f"event {event_id} re-sent with other content"
        dupes += len(payloads) - 1
    return dupes


def db_path(data_dir: Path) -> Path:
    return data_dir / "hearthgate.sqlite3"


def db_rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    path = db_path(data_dir)
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()


def alert_table(data_dir: Path) -> dict[str, tuple[str, str]]:
    """alert_id → (site_id, state) as the gateway's store has it."""
    return {a: (s, st) for a, s, st in
            db_rows(data_dir, "SELECT alert_id, site_id, state FROM alerts")}


async def press_open_site_again(
    zigbee: PlatformSubscriber, platform: PlatformSubscriber, rng: Any,
    before: dict[str, tuple[str, str]], idle: list[str], presses: dict[str, int], what: str,
) -> None:
    """The window survived `what` (a kill, a cut): press the button of a site whose alert is
    open in `before` (the store after the restart) again, and check that nothing new is
    raised. A press on an idle site right after it, on the same bus, is the marker: once its
    alert arrives, the re-press has been through the rules. Takes the marker out of `idle`."""
    open_alerts = {a: s for a, (s, st) in before.items() if st != "cleared"}
    site = open_alerts[rng.choice(sorted(open_alerts))]
    marker = idle.pop(rng.randrange(len(idle)))
    for s in (site, marker):
        await press_sos(zigbee, s, presses[s])
        presses[s] += 1
    await platform.wait_json(
        ALERTS, lambda b: b["site_id"] == marker and b["alert_id"] not in before, timeout=30,
    )
    assert not [
        m for m in platform.on(ALERTS)
        if m.json()["site_id"] == site and m.json()["alert_id"] not in before
    ], f"a press on a site with an alert open across {what} raised a new alert"


async def ack_and_wait(platform: PlatformSubscriber, alert_id: str, by: str) -> None:
    """The platform's ack; returns once the cleared transition of that alert has arrived."""
    await platform.publish(f"{P}/cmd/ack", {"alert_id": alert_id, "by": by})
    await platform.wait_json(
        ALERTS, lambda b: b["alert_id"] == alert_id and b["state"] == "cleared", timeout=30,
    )


def check_store_reached_platform(
    data_dir: Path, platform: PlatformSubscriber,
) -> tuple[dict[str, tuple[str, str]], list[Received], int]:
    """After the last restart, with the outbox drained: every alert the store holds arrived
    (raised; cleared if cleared), the platform saw no alert the store does not know, one
    alert per raise, duplicates identical. The store's alerts, the messages, the duplicates."""
    final = alert_table(data_dir)
    messages = platform.on(ALERTS)
    got = {(m.json()["alert_id"], m.json()["state"]) for m in messages}
    for alert_id, (_, state) in final.items():
        assert (alert_id, "raised") in got, f"accepted alert {alert_id} never arrived"
        if state == "cleared":
            assert (alert_id, "cleared") in got
    assert {a for a, _ in got} == set(final)
    # Re-pressing a site whose alert survived raised nothing new: one raised per alert.
    raised_ids = [m.json()["alert_id"] for m in messages if m.json()["state"] == "raised"]
    assert set(raised_ids) == set(final)
    return final, messages, check_duplicates(messages)


def outbox_alert_count(data_dir: Path) -> int:
    return int(db_rows(data_dir, "SELECT COUNT(*) FROM outbox WHERE kind='alert'")[0][0])


def record(name: str, **figures: Any) -> None:
    """Print a test's figures; with FAULTS_REPORT=FILE also append them there (as JSON lines)
    for docs/reliability.md."""
    line = json.dumps({"test": name, **figures}, ensure_ascii=False)
    print(f"\nFAULT-FIGURES {line}")
    target = os.environ.get("FAULTS_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(line + "\n")


class InProcessGateway:
    """A `Gateway` run as a task in the test's own event loop, with real I/O: for faults that
    need a hand inside (a clock, a registry entry, the store's flags)."""

    def __init__(
        self, config_path: Path, *, registry: Registry = STANDARD, **kwargs: Any
    ) -> None:
        from hearthgate.config import load_config
        from hearthgate.service import Gateway

        self.gateway = Gateway(load_config(config_path, registry), **kwargs)
        self.stop_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.log_lines: list[str] = []
        self._log_handler = _ListHandler(self.log_lines)
        self._old_level = logging.NOTSET

    async def __aenter__(self) -> InProcessGateway:
        logger = logging.getLogger("hearthgate")
        self._old_level = logger.level
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(self._log_handler)
        self.task = asyncio.create_task(self.gateway.run(self.stop_event))
        # Up when the uplink is connected and the zigbee bus listens (presses would be lost).
        up = ("uplink connected", "bus zigbee connected")
        await wait_until(
            lambda: self.task.done() or all(  # type: ignore[union-attr]
                any(u in line for line in self.log_lines) for u in up),
            20, "the gateway to come up", lambda: "\n".join(self.log_lines),
        )
        if self.task.done():
            self.task.result()
        return self

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.stop_event.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 20)
        except TimeoutError:
            self.task.cancel()
            raise
        finally:
            logging.getLogger("hearthgate").removeHandler(self._log_handler)
            logging.getLogger("hearthgate").setLevel(self._old_level)


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

