"""The gateway service: drivers → rules → store → uplink, under one supervisor.

Observations from every driver land in one queue. The rules loop takes them in
batches, updates device health, feeds the engine and the telemetry batcher,
commits alert transitions durably (with the engine state that produced them)
and wakes the uplink. Deadlines (rule windows, escalations, devices falling
silent) are met by waiting on the clock, never by per-rule timers.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hearthgate.audit import AuditTrail
from hearthgate.config import GatewayConfig
from hearthgate.control import CONTROL_SOCKET, serve_control
from hearthgate.core.clock import Clock, SystemClock
from hearthgate.core.model import (
    AlertState,
    AlertTransition,
    Instant,
    Observation,
    Priority,
    isoformat,
    new_id,
)
from hearthgate.drivers.base import DriverContext
from hearthgate.engine_builder import build_engine
from hearthgate.fleet_health import FleetHealth
from hearthgate.health import DeviceHealth
from hearthgate.metrics import GatewayMetrics, parse_listen, serve_metrics, write_textfile
from hearthgate.rules.coverage import SiteCoverage
from hearthgate.rules.engine import UnknownAlert
from hearthgate.rules.engine.snapshot import split_snapshot
from hearthgate.sdnotify import SystemdNotifier
from hearthgate.state_carry import carry_state
from hearthgate.store import EngineWrite, Store
from hearthgate.supervisor import Supervisor
from hearthgate.telemetry import TelemetryBatcher
from hearthgate.telemetry_summary import HourlySummariser, capabilities, summary_payload
from hearthgate.uplink import CommandError, Uplink
from hearthgate.views import runtime_dir
from hearthgate.walk_session import WalkSession, said

if TYPE_CHECKING:  # the page's modules load only when `gateway.web` is set
    from hearthgate.web.server import StatusPage
    from hearthgate.web.view import PageFacts

log = logging.getLogger("hearthgate.service")

STATE_SAVE_INTERVAL = 300.0  # rule and device state between alert commits (SD-card wear)
METRICS_INTERVAL = 15.0  # outbox depth query and textfile refresh
MAX_BATCH = 2000  # observations per pass of the rules loop
HOUSEKEEPING_EVERY = 0.05  # s; rule ticks while observations stream
SCAN_EVERY = 1.0  # s; coverage and device health over every site and device, while busy
PRUNE_INTERVAL = 3600.0  # s between retention passes (docs/privacy.md)
PRUNE_AGAIN = 60.0  # s to the next pass while a pass found more than its bound
PRUNE_LIMIT = 500  # rows per area and pass: the writer never stalls on one huge DELETE


async def cancel_all(tasks: list[asyncio.Task[None]], every: float = 2.0) -> None:
    """Cancel the tasks and wait for them, cancelling again those that ignore it.

    On Python 3.11, aiomqtt's connect can swallow a cancellation that lands just as a
    connection attempt fails, and the task then carries on reconnecting: a clean stop
    must not hang on it.
    """
    pending = [t for t in tasks if not t.done()]
    while pending:
        for task in pending:
            task.cancel()
        _, still = await asyncio.wait(pending, timeout=every)
        pending = list(still)
        if pending:
            log.warning("asking %s again to stop", ", ".join(t.get_name() for t in pending))


def uplink_password(config: GatewayConfig) -> str | None:
    up = config.uplink
    if up.password is not None:
        return up.password.get_secret_value()
    if up.password_file is not None:
        return Path(up.password_file).read_text(encoding="utf-8").rstrip("\r\n")
    return None


class Gateway:
    """The whole gateway for one config: drivers, rules, store and uplink under one supervisor.

    `run(stop)` opens the store, restores the rule engine's state, connects the uplink, starts
    a driver per protocol on each bus, and then runs the rules loop until `stop` is set; a
    clean stop publishes `offline` and flushes the store. A crashing driver or extra task is
    restarted with backoff by the supervisor; a crashing essential task (the rules loop, the
    store writer) ends `run` with an ExceptionGroup holding `EssentialTaskFailed`, which the
    `run` command turns into exit status 1, so that systemd starts a clean process.

    Args:
        config: a validated config (`hearthgate.config.load_config`); its buses, protocols and
            rules are built from the registry it was validated against (`config.registry`).
        clock: the clock every driver and rule reads (default `SystemClock`); tests pass a
            `SimulatedClock` or a scaled one.
        data_dir: where the SQLite store and the live device file go (default
            `gateway.data_dir` of the config).
        commands: further downlink commands by name (`config`, `logs`, `restart` from
            `hearthgate.runner`), each `await handler(body)`; dispatched by `_command`.
        carry_from: the config the stored rule state was saved under, when it differs
            (a pushed config): unchanged rules carry on (`hearthgate.state_carry`).
        config_hash: the running config file's hash, for `P/status`.

    Raises:
        ExceptionGroup: from `run`, holding `EssentialTaskFailed`, when an essential task crashed.
        OSError, sqlite3.Error: from `run`, when the store cannot be opened.
    """

    def __init__(
        self, config: GatewayConfig, *, clock: Clock | None = None, data_dir: Path | None = None,
        commands: Mapping[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] | None = None,
        carry_from: GatewayConfig | None = None, config_hash: str | None = None,
    ) -> None:
        self.config = config
        self.commands = dict(commands or {})
        self.carry_from = carry_from
        self.config_hash = config_hash
        self.clock: Clock = clock or SystemClock()
        self.data_dir = data_dir or config.gateway.data_dir
        self.tz = config.gateway.tz
        self.queue: asyncio.Queue[Observation] = asyncio.Queue()
        self.ctx = DriverContext(self.clock, self._accept, on_unknown=self._heard_unknown,
                                 walking=lambda: self.walk is not None,
                                 gateway_id=config.gateway.id)
        self.health = DeviceHealth(config)
        self.engine = build_engine(config)
        self.batcher = TelemetryBatcher(self.tz)
        # What each site sends on P/telemetry (docs/privacy.md): raw readings through the
        # batcher, hourly summaries through the summariser, or nothing (health).
        self.levels = {s.id: config.telemetry_level(s.id) for s in config.sites}
        self.raw_sites = frozenset(config.raw_reasons())
        self.summariser = HourlySummariser(
            self.tz, capabilities([(d.site, d.kind) for d in config.devices]), self.clock.now()
        )
        self.counts: Counter[str] = Counter()
        self.alert_counts: Counter[tuple[str, str]] = Counter()
        self.notifier = SystemdNotifier()  # does nothing unless systemd gave a socket
        self.metrics = GatewayMetrics()
        self.metrics.registry.add_collect_hook(self._collect_metrics)
        self.ready = asyncio.Event()
        self.store: Store | None = None
        self.uplink: Uplink | None = None
        self.audit: AuditTrail | None = None
        self.supervisor: Supervisor | None = None
        self.fleet_health: FleetHealth | None = None
        self._engine_lock = asyncio.Lock()
        self._last_state_save = 0.0
        # Per site, which rules watch and which are blind (P/status, `hearthgate status`).
        self.coverage: list[SiteCoverage] = []
        # The walk test in progress (`hearthgate walktest`, the local page), if any.
        self.walk: WalkSession | None = None
        self._heard: set[str] = set()  # devices heard since start (the info log line)
        self.page: StatusPage | None = None  # the local status page (`gateway.web`), if set

    # -- drivers' sink ----------------------------------------------------------

    def _accept(self, obs: Observation) -> None:
        self.counts[obs.metric] += 1
        self.queue.put_nowait(obs)

    def _heard_unknown(self, protocol: str, key: str, entry: dict[str, Any]) -> None:
        if self.walk is not None:
            self.walk.heard_unknown(protocol, key, entry,
                                    isoformat(self.clock.now().wall, self.tz))
            self._page_changed()

    def _first_heard(self, obs: Observation) -> None:
        """At info level, the first time each device speaks (docs/install.md promises it)."""
        if obs.device_id in self._heard or obs.metric == "alive":
            return
        self._heard.add(obs.device_id)
        msg_id, params = said(obs)
        from hearthgate.messages import text

        log.info("device %s heard: %s", obs.device_id, text(msg_id, "en", **params),
                 extra={"device_id": obs.device_id})

    # -- running ----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        store = await Store.open(self.data_dir, self.config.gateway.telemetry_buffer)
        self.store = store
        try:
            await self._restore(store)
            uplink = Uplink(
                self.config, store, self._command, password=uplink_password(self.config),
                on_refused=self._refused,
            )
            self.uplink = uplink
            self.audit = self._trail(store, uplink.wake)
            telemetry_status = {"telemetry": self._telemetry_status()}
            uplink.status_parts.append(lambda: telemetry_status)
            uplink.status_parts.append(self._coverage_status)
            for site_id, reason in self.config.raw_reasons().items():
                log.warning("site %s sends every reading to the platform (telemetry: raw): %s",
                            site_id, reason)
            health = FleetHealth(store, self.data_dir, self.config_hash or "unknown",
                                 self.config.uplink.status_interval)
            self.fleet_health = health
            uplink.status_parts.append(health.fields)  # the first `online` carries them
            async with asyncio.TaskGroup() as tg:
                sup = Supervisor(tg)
                self.supervisor = sup
                sup.start("store-writer", store.run, essential=True)
                store.adopt_writer(sup.tasks["store-writer"])
                sup.start("rules", self._rules_loop, essential=True)
                sup.start("uplink", uplink.run)
                sup.start("telemetry", self._telemetry_loop)
                sup.start("retention", self._retention_loop)
                sup.start("control", lambda: serve_control(
                    runtime_dir(self.config, self.data_dir) / CONTROL_SOCKET, self._local))
                sup.start("status", lambda: health.run(uplink))
                driver_tasks = self._start_drivers(sup)
                self._start_extras(sup)
                # What is built by now (the config, the engine, the restored state) lives as
                # long as this gateway: out of the collector's full passes, which otherwise
                # went over all of it every few seconds under load and held the loop, and an
                # SOS, for 100 ms each (docs/performance.md, issue 17 third round, step 1).
                gc.freeze()
                self.ready.set()
                self.notifier.ready(f"running: {self.config.summary()}")
                log.info("hearthgate %s running: %s", self.config.gateway.id,
                         self.config.summary())
                await stop.wait()
                log.info("stopping")
                await self._shutdown(sup, driver_tasks)
                await cancel_all(list(sup.tasks.values()))
        finally:
            # Back to the collector: this gateway's cycles are garbage once it is gone (a
            # config push starts another in the same process).
            gc.unfreeze()
            store.forget_writer()
            await store.close()

    async def _restore(self, store: Store) -> None:
        now = self.clock.now()
        # When each device was last heard survives the restart (`hearthgate devices`).
        self.health.restore(await store.get_state("devices"), now)
        self.health.start(now)
        state = await store.get_engine_state()
        if isinstance(state, dict):
            if self.carry_from is not None:
                state = carry_state(state, self.carry_from, self.config)
            self.engine.restore(state, now)
            log.info("restored rule state: %d open alerts", len(self.engine.open))
            # Every part anew, under this engine's run: an older single snapshot is
            # migrated, the parts of a carried config renamed, those of removed sites gone.
            await store.put_engine_state(self._engine_write(now, None), durable=True)

    def _engine_write(self, now: Instant, sites: set[str] | None,
                      header: bool = True) -> EngineWrite:
        """The engine's state to store: the parts of `sites`, or all of them (None); without
        the `header` for an alert commit (state.EngineWrite)."""
        head, parts = split_snapshot(self.engine.snapshot(now, sites), self.engine.run)
        return EngineWrite(
            json.dumps(head, separators=(",", ":")) if header else None,
            {site: json.dumps(part, ensure_ascii=False, separators=(",", ":"))
             for site, part in parts.items()},
            full=sites is None,
        )

    def _start_drivers(self, sup: Supervisor) -> list[asyncio.Task[None]]:
        tasks: list[asyncio.Task[None]] = []
        for bus in self.config.buses:
            devices = [d for d in self.config.devices if d.bus == bus.id]
            if not devices:
                continue
            try:
                runtime = self.config.registry.bus_types[bus.type].open(bus, self.ctx)
                drivers = []
                for protocol in sorted({d.protocol for d in devices}):
                    mine = [d for d in devices if d.protocol == protocol]
                    spec = self.config.registry.protocols[protocol]
                    drivers.append((protocol, spec.create(runtime, mine, self.ctx)))
            except Exception:
                # A bus that cannot even be set up must not stop the others.
                log.exception("bus %s could not be set up; its devices stay offline", bus.id)
                continue
            tasks.append(sup.start(f"bus:{bus.id}", runtime.run))
            for protocol, driver in drivers:
                tasks.append(sup.start(f"driver:{bus.id}:{protocol}", driver.run))
        return tasks

    def _start_extras(self, sup: Supervisor) -> None:
        g = self.config.gateway
        if g.metrics_listen:
            host, port = parse_listen(g.metrics_listen)
            sup.start("metrics-http", lambda: serve_metrics(self.metrics.registry, host, port))
        if g.web is not None:
            self._start_page(sup)
        sup.start("metrics", self._metrics_loop)
        sup.start("loop-lag", self.metrics.watch_loop_lag)
        if self.notifier.watchdog_interval():
            sup.start("watchdog", lambda: self.notifier.watchdog_loop(self._healthy))

    def _start_page(self, sup: Supervisor) -> None:
        """The status page, owned by the supervisor: a port in use is logged, shown in
        `P/status` (`web.error`) and tried again with backoff; the gateway carries on."""
        assert self.config.gateway.web is not None and self.uplink is not None
        from hearthgate.web.server import StatusPage

        health = self.fleet_health
        page = StatusPage(self.config.gateway.web, self.config.gateway.language, self.tz, self,
                          on_status=health.changed if health is not None else None)
        self.page = page
        self.uplink.status_parts.append(page.status)
        sup.start("web", page.run)

    def _page_changed(self) -> None:
        if self.page is not None:
            self.page.changed()

    # -- what the status page reads and does (hearthgate.web.view.PageSource) --------------

    def page_facts(self) -> PageFacts:
        from hearthgate.web.view import PageFacts

        now = self.clock.now()
        return PageFacts(
            gateway_id=self.config.gateway.id, ts=isoformat(now.wall, self.tz),
            devices=self.health.snapshot(now), coverage=[c.as_dict() for c in self.coverage],
            alerts=[(a.transition, a.acked_by) for a in self.engine.open.values()],
            walk=self.walk.state() if self.walk is not None else None,
        )

    async def ack_test_alert(self, alert_id: str, actor: str) -> str | None:
        """The page's acknowledgement: only of a test alert (a real one is the care
        centre's to acknowledge); recorded in the access trail either way."""
        alert = self.engine.open.get(alert_id)
        error = None
        if alert is None:
            error = f"unknown or already cleared alert '{alert_id}'"
        elif not alert.transition.test:
            error = ("only a test alert (raised during a walk test) can be acknowledged from"
                     " the page; a real alert is acknowledged by the care centre")
        else:
            try:
                await self._ack(alert_id, actor)
            except CommandError as exc:
                error = str(exc)
        await self._audit("page", actor, "ack", alert_id, ok=error is None, error=error)
        return error

    async def page_audit(self, actor: str, action: str, *, target: str | None = None,
                         ok: bool = True, error: str | None = None) -> None:
        await self._audit("page", actor, action, target, ok=ok, error=error)

    def _collect_metrics(self) -> None:
        """Copy the tallies the parts keep anyway; called when metrics are read."""
        m = self.metrics
        m.observations.mirror({(k,): v for k, v in self.counts.items()})
        m.frame_errors.mirror(self.ctx.errors)
        m.alerts.mirror(self.alert_counts)
        if self.supervisor is not None:
            m.driver_restarts.mirror({(k,): v for k, v in self.supervisor.restarts.items()})
        if self.uplink is not None:
            m.uplink_connected.set(1 if self.uplink.stats.connected else 0)
            m.uplink_published.mirror({(k,): v for k, v in self.uplink.stats.published.items()})
            stats = self.uplink.stats
            m.uplink_delivery.mirror({("refused",): stats.refused, ("receipts",): stats.receipts,
                                      ("resent",): stats.resent, ("stuck",): stats.stuck})
        if self.store is not None:
            m.telemetry_dropped.mirror({(): self.store.telemetry_dropped})
            m.store_degraded.set(1 if self.store.degraded else 0)
            m.alerts_held.set(self.store.held_alerts)
        m.devices_online.set(self.health.online_count(self.clock.now()))

    async def _metrics_loop(self) -> None:
        names = {Priority.URGENT: "urgent", Priority.ALERT: "alert",
                 Priority.TELEMETRY: "telemetry"}
        textfile = self.config.gateway.metrics_textfile
        while True:
            if self.store is not None:
                for priority, depth in (await self.store.depth()).items():
                    self.metrics.outbox_depth.set(depth, priority=names[priority])
            if textfile is not None:
                try:
                    await asyncio.to_thread(write_textfile, self.metrics.registry, textfile)
                except OSError as exc:
                    log.warning("cannot write metrics to %s: %s", textfile, exc)
            await asyncio.sleep(METRICS_INTERVAL)

    def _healthy(self) -> bool:
        sup = self.supervisor
        return bool(
            sup is not None
            and all(not sup.tasks[n].done() for n in ("store-writer", "rules") if n in sup.tasks)
        )

    async def _shutdown(self, sup: Supervisor, driver_tasks: list[asyncio.Task[None]]) -> None:
        self.notifier.stopping()
        for task in driver_tasks:
            task.cancel()
        await asyncio.gather(*driver_tasks, return_exceptions=True)
        # What the drivers said before they stopped still goes through the rules.
        await self.queue.join()
        store, uplink = self.store, self.uplink
        assert store is not None and uplink is not None
        if len(self.batcher):
            await store.add_telemetry([self.batcher.flush()])
        now = self.clock.now()
        await self._save_state(now, durable=True, full=True)
        await uplink.say_offline()

    # -- the rules loop ---------------------------------------------------------

    async def _rules_loop(self) -> None:
        assert self.uplink is not None
        devices_every = self.config.uplink.devices_interval
        next_devices = 0.0
        last_house = last_scan = devices_sent = float("-inf")
        devices_changed = False
        house_pending = scan_pending = False
        # When the scan's own deadlines fall (a device offline by silence, a resident away,
        # P/devices due): computed by each scan, over every device and site, not per message.
        scan_deadline: float | None = None
        carry: list[Observation] = []  # the rest of a batch cut short by an alert
        while True:
            batch, carry = carry or self._drain(), []
            if not batch:
                # The checks deferred below are due soon; they recompute the deadlines.
                due = [self.engine.next_deadline(),
                       last_house + HOUSEKEEPING_EVERY if house_pending else None,
                       last_scan + SCAN_EVERY if scan_pending else scan_deadline]
                deadline = min((d for d in due if d is not None), default=None)
                obs = await self._next_observation(deadline)
                batch = [obs] if obs is not None else []
                batch += self._drain()
            now = self.clock.now()
            # Observations arrive one per event-loop turn under load: rule ticks run at most
            # every HOUSEKEEPING_EVERY while busy, not once per message. Signals from
            # observations (an SOS) are never deferred.
            house = not batch or now.mono - last_house >= HOUSEKEEPING_EVERY
            # What goes over every site and device (coverage, who is online, P/devices) is
            # rarer still while busy: at 20 passes a second, 550 sites' coverage alone took
            # most of the loop (py-spy, docs/performance.md), and an SOS waits for the loop.
            scan = not batch or now.mono - last_scan >= SCAN_EVERY
            transitions: list[AlertTransition] = []
            async with self._engine_lock:
                for i, obs in enumerate(batch):
                    self.health.observe(obs)
                    self._first_heard(obs)
                    if self.walk is not None:
                        self.walk.observe(obs, isoformat(obs.at.wall, self.tz))
                    got = self.engine.on_observation(obs, obs.at)
                    if got:
                        # An alert (an SOS) is committed and sent before the rest of the
                        # batch is looked at: a batch grows to hundreds after any stall.
                        transitions += got
                        carry, batch = batch[i + 1:], batch[:i + 1]
                    level = self.levels.get(obs.site_id, self.config.gateway.telemetry)
                    if level == "summary":
                        self.summariser.add(obs)
                    elif level == "raw":
                        full = self.batcher.add(obs)
                        if full is not None:
                            await self.uplink.offer_telemetry(full, 500)
                    if carry:
                        break
                # ...but a device heard back (or said gone) is shown at the next tick.
                scan = scan or (house and self.health.news)
                if house:
                    transitions += self.engine.on_tick(now)
                if transitions:
                    await self._commit(transitions, now)
            house_pending = not house
            scan_pending = not scan
            if house:
                last_house = now.mono
            if scan:
                last_scan = now.mono
                self._update_coverage(now)
                if self.walk is not None and self.walk.idle:
                    log.info("walk test %s ended: nobody is watching it", self.walk.id)
                    self.walk.end("idle")
                    self.walk = None
                devices_changed = self.health.changed(now) or devices_changed
                # P/devices (every device, JSON) at most once a SCAN_EVERY: 550 devices heard
                # for the first time must not make 550 snapshots.
                if ((devices_changed and now.mono - devices_sent >= SCAN_EVERY)
                        or now.mono >= next_devices):
                    self.uplink.set_devices(self.health.payload(now, self.raw_sites))
                    next_devices = now.mono + devices_every
                    devices_sent, devices_changed = now.mono, False
                if now.mono - self._last_state_save >= STATE_SAVE_INTERVAL:
                    await self._save_state(now)
                scan_deadline = min(
                    (d for d in (self.health.next_expiry(now), self.engine.coverage_deadline(now),
                                 devices_sent + SCAN_EVERY if devices_changed else next_devices)
                     if d is not None),
                    default=None,
                )
            self._page_changed()
            for _ in batch:
                self.queue.task_done()

    def _update_coverage(self, now: Instant) -> None:
        """Ask the rules whether they watch; say what changed in the log and on `P/status`
        at once (a site going blind must not wait for the next periodic status)."""
        coverage = self.engine.coverage(now)
        if coverage == self.coverage:
            return
        before = {(c.site_id, rule): why for c in self.coverage for rule, why in c.blind}
        after = {(c.site_id, rule): why for c in coverage for rule, why in c.blind}
        for (site_id, rule), why in after.items():
            if before.get((site_id, rule)) != why:
                log.warning("site %s: %s is blind: %s", site_id, rule, why,
                            extra={"site_id": site_id})
        for site_id, rule in before.keys() - after.keys():
            log.info("site %s: %s is watching again", site_id, rule, extra={"site_id": site_id})
        for c in coverage:
            if c.absence_blind and not any(
                    o.site_id == c.site_id and o.absence_blind for o in self.coverage):
                log.warning("%s", c.note(), extra={"site_id": c.site_id})
        self.coverage = coverage
        if self.fleet_health is not None:
            self.fleet_health.changed()

    def _coverage_status(self) -> dict[str, Any]:
        return {"coverage": [c.as_dict() for c in self.coverage]}

    def _drain(self) -> list[Observation]:
        out: list[Observation] = []
        while len(out) < MAX_BATCH:
            try:
                out.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return out

    async def _next_observation(self, deadline: float | None) -> Observation | None:
        if deadline is None:
            return await self.queue.get()
        if type(self.clock) is SystemClock:
            # The common case, once per message under load: one timer instead of two
            # tasks and a wait. SystemClock's monotonic time is the event loop's.
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    return await self.queue.get()
            except TimeoutError:
                return None
        get = asyncio.ensure_future(self.queue.get())
        sleeper = asyncio.ensure_future(self.clock.sleep_until(deadline))
        try:
            await asyncio.wait({get, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            if not get.done():
                get.cancel()
        if get.done() and not get.cancelled():
            return get.result()
        return None

    async def _commit(self, transitions: list[AlertTransition], now: Instant) -> None:
        assert self.store is not None
        gw = self.config.gateway.id
        if self.walk is not None:
            transitions = [self._walk_mark(t) for t in transitions]
        payloads = [
            json.dumps(t.to_payload(gw, self.tz), ensure_ascii=False) for t in transitions
        ]
        # Only the sites of these transitions: their state must be on disk with them (a
        # restart must neither raise them again nor lose them); the other sites' states are
        # saved by `_save_state` and are not on this path, an SOS's.
        state = self._engine_write(now, {t.site_id for t in transitions}, header=False)
        await self.store.add_alerts(transitions, payloads, engine_state=state)
        for t, payload in zip(transitions, payloads, strict=True):
            if t.test and self.walk is not None:
                self.walk.alert(t, json.loads(payload))
        for t in transitions:
            self.alert_counts[(t.type, str(t.state))] += 1
            log.info(
                "alert %s %s at %s: %s", t.type, t.state, t.site_id, t.message,
                extra={"alert_id": t.alert_id, "site_id": t.site_id},
            )
        if self.uplink is not None:
            self.uplink.wake()
        self._page_changed()

    def _walk_mark(self, t: AlertTransition) -> AlertTransition:
        """During a walk test an alert raised is a test alert: marked, never escalated."""
        if t.state is AlertState.RAISED and not t.test:
            marked = self.engine.mark_test(t.alert_id)
            return marked if marked is not None else t
        return t

    async def _save_state(self, now: Instant, durable: bool = False, full: bool = False) -> None:
        """The periodic save: the sites whose state moved since they were last written (all
        of them with `full`, at a clean stop)."""
        assert self.store is not None
        self._last_state_save = now.mono
        sites = None if full else set(self.engine.changed)
        await self.store.put_engine_state(
            self._engine_write(now, sites), durable=durable,
            also={"devices": {"ts": isoformat(now.wall, self.tz),
                              "devices": self.health.snapshot(now)}},
        )

    async def _telemetry_loop(self) -> None:
        assert self.uplink is not None and self.store is not None
        while True:
            await self.clock.sleep(self.config.uplink.telemetry_interval)
            if len(self.batcher):
                payload, n = self.batcher.flush()
                await self.uplink.offer_telemetry(payload, n)
            async with self._engine_lock:  # `forget` of a site may be running
                summaries = self.summariser.close(self.clock.now())
            if summaries:
                await self.store.add_summaries(summaries)
                await self.uplink.offer_telemetry(summary_payload(summaries), len(summaries))

    # -- privacy: telemetry levels, retention, the access trail ------------------------

    def _trail(self, store: Store, wake: Any = None) -> AuditTrail:
        return AuditTrail(store, self.config.gateway.id, self.tz, self.clock,
                          keep=self.config.gateway.retention.audit_records, wake=wake)

    def _telemetry_status(self) -> dict[str, Any]:
        """What `P/status` says of telemetry: the default level, and each site at another
        level (with the reason, for `raw`)."""
        default = self.config.gateway.telemetry
        reasons = self.config.raw_reasons()
        return {
            "default": default,
            "sites": [
                {"site_id": site, "level": level, **({"reason": reasons[site]}
                                                     if site in reasons else {})}
                for site, level in self.levels.items() if level != default or site in reasons
            ],
        }

    def retention_cutoffs(self, now: Instant) -> dict[str, float]:
        """Per retention setting, the Unix time before which rows are pruned."""
        r = self.config.gateway.retention
        at = now.wall.timestamp()
        return {
            "observations": at - self.config.observation_retention(),
            "summaries": at - float(r.summaries),
            "alerts": at - float(r.alerts),
            "audit": at - float(r.audit),
        }

    async def _retention_loop(self) -> None:
        assert self.store is not None
        while True:
            removed = await self.store.prune(self.retention_cutoffs(self.clock.now()),
                                             PRUNE_LIMIT)
            if any(removed.values()):
                log.info("retention: removed %s", ", ".join(
                    f"{n} {what}" for what, n in removed.items() if n))
            more = any(n >= PRUNE_LIMIT for n in removed.values())
            await self.clock.sleep(PRUNE_AGAIN if more else PRUNE_INTERVAL)

    # -- downlink and local commands ---------------------------------------------------

    async def _command(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A downlink command, recorded in the access trail whatever becomes of it."""
        by = body.get("by")
        actor = by if isinstance(by, str) and by else "platform"
        target = body.get("alert_id") if name == "ack" else body.get("id")
        try:
            result = await self._dispatch(name, body, actor)
        except CommandError as exc:
            await self._audit("mqtt", actor, name, target, ok=False, error=str(exc))
            raise
        except Exception as exc:
            await self._audit("mqtt", actor, name, target, ok=False,
                              error=f"internal error: {type(exc).__name__}")
            raise
        await self._audit("mqtt", actor, name, target)
        return result

    async def _refused(self, name: str, error: str) -> None:
        await self._audit("mqtt", None, name, None, ok=False, error=error)

    async def _audit(self, via: str, actor: str | None, action: str, target: Any, *,
                     ok: bool = True, error: str | None = None) -> None:
        if self.audit is not None:
            await self.audit.record(via, actor, action,
                                    target=target if isinstance(target, str | int) else None,
                                    ok=ok, error=error)

    async def _local(self, request: dict[str, Any]) -> dict[str, Any]:
        """A request on the control socket (`hearthgate ack`, `status`, `devices` while the
        service runs)."""
        name, user = request.get("command"), request.get("user")
        if name == "hello":
            return {"ok": True, "gateway_id": self.config.gateway.id}  # "is a service running"
        if name == "status":
            return {"ok": True, **await self.status_now()}
        if name == "devices":
            now = self.clock.now()
            return {"ok": True, "live": True, "ts": isoformat(now.wall, self.tz),
                    "devices": self.health.snapshot(now)}
        if not isinstance(user, str) or not user or len(user) > 100:
            return {"ok": False, "error": "'user' must be a non-empty string"}
        if isinstance(name, str) and name.startswith("walktest_"):
            return await self._walktest(name, request, user)
        if name != "ack":
            await self._audit("local", user, str(name)[:50], None, ok=False,
                              error="unknown local command")
            return {"ok": False, "error": f"unknown local command '{name}'"}
        alert_id = request.get("alert_id")
        try:
            await self._ack(alert_id, f"local:{user}")
        except CommandError as exc:
            await self._audit("local", user, "ack", alert_id, ok=False, error=str(exc))
            return {"ok": False, "error": str(exc), "unknown_alert": True}
        await self._audit("local", user, "ack", alert_id)
        return {"ok": True, "alert_id": alert_id}

    async def status_now(self) -> dict[str, Any]:
        """The gateway as the platform sees it, now: what the `online` status carries (its
        outbox counted afresh, coverage as of the last pass of the rules loop) and whether
        the uplink is connected."""
        if self.fleet_health is not None:
            await self.fleet_health.refresh()
        up = self.uplink
        out: dict[str, Any] = {
            "gateway_id": self.config.gateway.id,
            "uplink": {
                "host": self.config.uplink.host, "port": self.config.uplink.effective_port,
                "connected": bool(up is not None and up.stats.connected),
                "connects": up.stats.connects if up is not None else 0,
            },
        }
        for part in up.status_parts if up is not None else []:
            out.update(part())
        out["ts"] = isoformat(self.clock.now().wall, self.tz)
        return out

    async def _walktest(self, name: str, request: dict[str, Any], user: str
                        ) -> dict[str, Any]:
        """The walk test over the control socket: start (or join), events, unknown, stop."""
        walk = self.walk
        if name == "walktest_start":
            if walk is None:
                walk = self.walk = WalkSession(self.config, new_id(), user)
                log.info("walk test %s started by %s: alerts are test alerts until it ends",
                         walk.id, user)
                await self._audit("local", user, "walktest", walk.id)
                self._page_changed()
            return {"ok": True, **walk.state()}
        session = request.get("session")
        if walk is None or session != walk.id:
            return {"ok": False, "error": "no such walk test (it ended)", "ended": True}
        if name == "walktest_events":
            since, wait = request.get("since", 0), request.get("wait", 1.0)
            if not isinstance(since, int) or not isinstance(wait, int | float):
                return {"ok": False, "error": "'since' is an integer, 'wait' a number"}
            events = await walk.wait_events(since, min(max(float(wait), 0.0), 2.0))
            return {"ok": True, "events": events, "seq": walk.seq, "ended": walk.ended}
        if name == "walktest_unknown":
            # What the walktest command hears on the local broker that no device names.
            protocol, key, entry = (request.get(k) for k in ("protocol", "key", "entry"))
            if not (isinstance(protocol, str) and isinstance(key, str)
                    and isinstance(entry, dict) and len(key) <= 300 and len(entry) <= 20):
                return {"ok": False, "error": "'protocol', 'key' and 'entry' are needed"}
            walk.heard_unknown(protocol[:40], key, entry, isoformat(self.clock.now().wall,
                                                                     self.tz))
            return {"ok": True}
        if name == "walktest_stop":
            walk.end(str(request.get("reason", "stopped"))[:40])
            self.walk = None
            self._page_changed()
            log.info("walk test %s ended; %d of %d devices heard", walk.id,
                     len(walk.devices) - len(walk.missing()), len(walk.devices))
            return {"ok": True, **walk.state()}
        return {"ok": False, "error": f"unknown local command '{name}'"}

    async def ack_offline(self, alert_id: str, user: str) -> dict[str, Any]:
        """`hearthgate ack` with no service running: the same acknowledgement on the store
        itself (its transitions wait in the outbox for the next start)."""
        store = await Store.open(self.data_dir, self.config.gateway.telemetry_buffer)
        self.store = store
        try:
            await self._restore(store)
            self.audit = self._trail(store)
            return await self._local({"command": "ack", "alert_id": alert_id, "user": user})
        finally:
            await store.close()

    async def _dispatch(self, name: str, body: dict[str, Any], actor: str) -> dict[str, Any]:
        if name == "ping":
            return {"pong": isoformat(self.clock.now().wall, self.tz)}
        if name == "ack":
            alert_id, by = body.get("alert_id"), body.get("by")
            if by is not None and (not isinstance(by, str) or len(by) > 200):
                raise CommandError("'by' must be a string")
            await self._ack(alert_id, by or "platform")
            return {"alert_id": alert_id}
        handler = self.commands.get(name)
        if handler is not None:
            return await handler(body)
        raise CommandError(f"unknown command '{name}'")

    async def _ack(self, alert_id: Any, by: str) -> None:
        if not isinstance(alert_id, str) or not alert_id or len(alert_id) > 100:
            raise CommandError("'alert_id' must be a non-empty string")
        assert self.store is not None
        async with self._engine_lock:
            now = self.clock.now()
            site_id = self.engine.site_of_alert(alert_id)
            try:
                transitions = self.engine.acknowledge(alert_id, by, now)
            except UnknownAlert:
                raise CommandError(f"unknown or already cleared alert '{alert_id}'") from None
            await self.store.mark_acknowledged(alert_id, by, isoformat(now.wall, self.tz))
            if transitions:
                await self._commit(transitions, now)
            else:
                sites = {site_id} if site_id is not None else set()
                await self.store.put_engine_state(self._engine_write(now, sites), durable=True)
        log.info("alert %s acknowledged by %s", alert_id, by, extra={"alert_id": alert_id})
