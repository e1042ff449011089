"""The gateway service: drivers → rules → store → uplink, under one supervisor.

Observations from every driver land in one queue. The rules loop takes them in
batches, updates device health, feeds the engine and the telemetry batcher,
commits alert transitions durably (with the engine state that produced them)
and wakes the uplink. Deadlines (rule windows, escalations, devices falling
silent) are met by waiting on the clock, never by per-rule timers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hearthgate.config import GatewayConfig
from hearthgate.core.clock import Clock, SystemClock
from hearthgate.core.model import AlertTransition, Instant, Observation, Priority, isoformat
from hearthgate.drivers.base import DriverContext
from hearthgate.engine_builder import build_engine
from hearthgate.health import DeviceHealth
from hearthgate.metrics import GatewayMetrics, parse_listen, serve_metrics, write_textfile
from hearthgate.rules.engine import UnknownAlert
from hearthgate.sdnotify import SystemdNotifier
from hearthgate.store import Store
from hearthgate.supervisor import Supervisor
from hearthgate.telemetry import TelemetryBatcher
from hearthgate.uplink import CommandError, Uplink
from hearthgate.views import DEVICES_FILE, runtime_dir

log = logging.getLogger("hearthgate.service")

STATE_SAVE_INTERVAL = 300.0  # rule and device state between alert commits (SD-card wear)
LIVE_DEVICES_INTERVAL = 5.0  # the runtime-dir snapshot that `hearthgate devices` reads
METRICS_INTERVAL = 15.0  # outbox depth query and textfile refresh
MAX_BATCH = 2000  # observations per pass of the rules loop
HOUSEKEEPING_EVERY = 0.05  # s; rule ticks and device health checks while observations stream


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

    Raises:
        ExceptionGroup: from `run`, holding `EssentialTaskFailed`, when an essential task crashed.
        OSError, sqlite3.Error: from `run`, when the store cannot be opened.
    """

    def __init__(
        self, config: GatewayConfig, *, clock: Clock | None = None, data_dir: Path | None = None
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.data_dir = data_dir or config.gateway.data_dir
        self.tz = config.gateway.tz
        self.queue: asyncio.Queue[Observation] = asyncio.Queue()
        self.ctx = DriverContext(self.clock, self._accept, gateway_id=config.gateway.id)
        self.health = DeviceHealth(config)
        self.engine = build_engine(config)
        self.batcher = TelemetryBatcher(self.tz)
        self.counts: Counter[str] = Counter()
        self.alert_counts: Counter[tuple[str, str]] = Counter()
        self.notifier = SystemdNotifier()  # does nothing unless systemd gave a socket
        self.metrics = GatewayMetrics()
        self.metrics.registry.add_collect_hook(self._collect_metrics)
        self.ready = asyncio.Event()
        self.store: Store | None = None
        self.uplink: Uplink | None = None
        self.supervisor: Supervisor | None = None
        self._engine_lock = asyncio.Lock()
        self._last_state_save = 0.0
        self._live_devices = runtime_dir(config, self.data_dir) / DEVICES_FILE
        self._last_live_write = -LIVE_DEVICES_INTERVAL

    # -- drivers' sink ----------------------------------------------------------

    def _accept(self, obs: Observation) -> None:
        self.counts[obs.metric] += 1
        self.queue.put_nowait(obs)

    # -- running ----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        store = await Store.open(self.data_dir, self.config.gateway.telemetry_buffer)
        self.store = store
        try:
            await self._restore(store)
            uplink = Uplink(
                self.config, store, self._command, password=uplink_password(self.config)
            )
            self.uplink = uplink
            async with asyncio.TaskGroup() as tg:
                sup = Supervisor(tg)
                self.supervisor = sup
                sup.start("store-writer", store.run, essential=True)
                store.adopt_writer(sup.tasks["store-writer"])
                sup.start("rules", self._rules_loop, essential=True)
                sup.start("uplink", uplink.run)
                sup.start("telemetry", self._telemetry_loop)
                driver_tasks = self._start_drivers(sup)
                self._start_extras(sup)
                self.ready.set()
                self.notifier.ready(f"running: {self.config.summary()}")
                log.info("hearthgate %s running: %s", self.config.gateway.id,
                         self.config.summary())
                await stop.wait()
                log.info("stopping")
                await self._shutdown(sup, driver_tasks)
                await cancel_all(list(sup.tasks.values()))
        finally:
            store.forget_writer()
            await store.close()

    async def _restore(self, store: Store) -> None:
        now = self.clock.now()
        state = await store.get_state("engine")
        if isinstance(state, dict):
            self.engine.restore(state, now)
            log.info("restored rule state: %d open alerts", len(self.engine.open))

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
        sup.start("metrics", self._metrics_loop)
        if self.notifier.watchdog_interval():
            sup.start("watchdog", lambda: self.notifier.watchdog_loop(self._healthy))

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
        await self._save_state(now, durable=True)
        self._write_live_devices(now)
        await uplink.say_offline()

    # -- the rules loop ---------------------------------------------------------

    async def _rules_loop(self) -> None:
        assert self.uplink is not None
        devices_every = self.config.uplink.devices_interval
        next_devices = 0.0
        last_house = float("-inf")
        house_pending = False
        while True:
            batch = self._drain()
            if not batch:
                if house_pending:
                    # The checks deferred below are due soon; they recompute the deadlines.
                    deadline: float | None = last_house + HOUSEKEEPING_EVERY
                else:
                    deadline = min(
                        (d for d in (self.engine.next_deadline(), self.health.next_expiry(
                            self.clock.now()), next_devices) if d is not None),
                        default=None,
                    )
                obs = await self._next_observation(deadline)
                batch = [obs] if obs is not None else []
                batch += self._drain()
            now = self.clock.now()
            # Observations arrive one per event-loop turn under load: the checks over
            # every rule and device run at most every HOUSEKEEPING_EVERY while busy, not
            # once per message. Signals from observations (an SOS) are never deferred.
            house = not batch or now.mono - last_house >= HOUSEKEEPING_EVERY
            transitions: list[AlertTransition] = []
            async with self._engine_lock:
                for obs in batch:
                    self.health.observe(obs)
                    transitions += self.engine.on_observation(obs, obs.at)
                    full = self.batcher.add(obs)
                    if full is not None:
                        await self.uplink.offer_telemetry(full, 500)
                if house:
                    transitions += self.engine.on_tick(now)
                if transitions:
                    await self._commit(transitions, now)
            house_pending = not house
            if house:
                last_house = now.mono
                changed = self.health.changed(now)
                if changed or now.mono >= next_devices:
                    self.uplink.set_devices(self.health.payload(now))
                    next_devices = now.mono + devices_every
                if changed or (batch and now.mono - self._last_live_write
                               >= LIVE_DEVICES_INTERVAL):
                    self._write_live_devices(now)
                if now.mono - self._last_state_save >= STATE_SAVE_INTERVAL:
                    await self._save_state(now)
            for _ in batch:
                self.queue.task_done()

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
        assert self.store is not None and self.uplink is not None
        gw = self.config.gateway.id
        payloads = [
            json.dumps(t.to_payload(gw, self.tz), ensure_ascii=False) for t in transitions
        ]
        state = json.dumps(self.engine.snapshot(now), ensure_ascii=False)
        await self.store.add_alerts(transitions, payloads, engine_state=state)
        for t in transitions:
            self.alert_counts[(t.type, str(t.state))] += 1
            log.info(
                "alert %s %s at %s: %s", t.type, t.state, t.site_id, t.message,
                extra={"alert_id": t.alert_id, "site_id": t.site_id},
            )
        self.uplink.wake()

    async def _save_state(self, now: Instant, durable: bool = False) -> None:
        assert self.store is not None
        self._last_state_save = now.mono
        await self.store.put_state("engine", self.engine.snapshot(now), durable=durable)
        await self.store.put_state(
            "devices", {"ts": isoformat(now.wall, self.tz), "devices": self.health.snapshot(now)},
            durable=durable,
        )

    def _write_live_devices(self, now: Instant) -> None:
        self._last_live_write = now.mono
        snapshot = {"ts": isoformat(now.wall, self.tz), "devices": self.health.snapshot(now)}
        tmp = self._live_devices.with_suffix(".tmp")
        try:
            self._live_devices.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(snapshot, ensure_ascii=False), encoding="utf-8")
            tmp.replace(self._live_devices)
        except OSError as exc:
            log.debug("cannot write %s: %s", self._live_devices, exc)

    async def _telemetry_loop(self) -> None:
        assert self.uplink is not None
        while True:
            await self.clock.sleep(self.config.uplink.telemetry_interval)
            if len(self.batcher):
                payload, n = self.batcher.flush()
                await self.uplink.offer_telemetry(payload, n)

    # -- downlink commands ------------------------------------------------------

    async def _command(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if name == "ping":
            return {"pong": isoformat(self.clock.now().wall, self.tz)}
        if name == "ack":
            alert_id, by = body.get("alert_id"), body.get("by")
            if not isinstance(alert_id, str) or not alert_id or len(alert_id) > 100:
                raise CommandError("'alert_id' must be a non-empty string")
            if by is not None and (not isinstance(by, str) or len(by) > 200):
                raise CommandError("'by' must be a string")
            by = by or "platform"
            assert self.store is not None
            async with self._engine_lock:
                now = self.clock.now()
                try:
                    transitions = self.engine.acknowledge(alert_id, by, now)
                except UnknownAlert:
                    raise CommandError(f"unknown or already cleared alert '{alert_id}'") from None
                await self.store.mark_acknowledged(alert_id, by, isoformat(now.wall, self.tz))
                if transitions:
                    await self._commit(transitions, now)
                else:
                    await self.store.put_state("engine", self.engine.snapshot(now), durable=True)
            log.info("alert %s acknowledged by %s", alert_id, by, extra={"alert_id": alert_id})
            return {"alert_id": alert_id}
        raise CommandError(f"unknown command '{name}'")
