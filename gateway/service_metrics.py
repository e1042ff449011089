"""Fills the gateway's Prometheus metrics from the tallies the running service already keeps.

The service, store, uplink and supervisor count what they do in plain attributes
(`Gateway.counts`, `Store.telemetry_dropped`, `UplinkStats`, `Supervisor.restarts`, ...);
this module copies them into `GatewayMetrics` every few seconds, so no hot path pays for
metrics and the parts stay unaware of Prometheus.

Wiring (in the service, once the supervisor runs):

    metrics = GatewayMetrics()
    exporters = metric_exporters(cfg.gateway.metrics_listen, cfg.gateway.metrics_textfile,
                                 metrics.registry)
    if exporters:
        sup.start("metrics-refresh", lambda: metrics_refresh_loop(metrics, self))
        for name, factory in exporters.items():
            sup.start(name, factory)
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from gateway.metrics import GatewayMetrics

if TYPE_CHECKING:
    from gateway.service import Gateway

log = logging.getLogger(__name__)


async def refresh_metrics(metrics: GatewayMetrics, gateway: Gateway) -> None:
    """Copy the service's current tallies into `metrics` (counters never go down)."""
    metrics.observations.mirror({(metric,): n for metric, n in gateway.counts.items()})
    metrics.alerts.mirror(dict(gateway.alert_counts))
    metrics.frame_errors.mirror(dict(gateway.ctx.errors))
    sup = gateway.supervisor
    if sup is not None:
        metrics.driver_restarts.mirror({(task,): n for task, n in sup.restarts.items()})
    metrics.devices_online.set(gateway.health.online_count(gateway.clock.now()))
    uplink = gateway.uplink
    if uplink is not None:
        metrics.uplink_connected.set(1 if uplink.stats.connected else 0)
        metrics.uplink_published.mirror(
            {(kind,): n for kind, n in uplink.stats.published.items()})
    store = gateway.store
    if store is not None:
        metrics.telemetry_dropped.mirror({(): store.telemetry_dropped})
        for priority, n in (await store.depth()).items():
            metrics.outbox_depth.set(n, priority=priority.name.lower())


async def metrics_refresh_loop(metrics: GatewayMetrics, gateway: Gateway,
                               interval: float = 5.0) -> None:
    """Refresh every `interval` seconds until cancelled (a supervised task)."""
    while True:
        try:
            await refresh_metrics(metrics, gateway)
        except Exception:
            # A store hiccup must not take the metrics down for good; the next round retries.
            log.warning("metrics refresh failed", exc_info=True)
        await asyncio.sleep(interval)
