"""What no single entry can check alone: unique ids, and what devices refer to.

Ids are read from the raw data rather than the validated entries, so that a device naming a bus
that is itself invalid is not also told the bus does not exist.
"""

from __future__ import annotations

from typing import Any

from hearthgate.config.reporting import Reporter, one_of, where
from hearthgate.core.options import BusConfig
from hearthgate.registry import Registry


def check_unique(report: Reporter, data: dict[str, Any], key: str, what: str) -> None:
    """Every id in `data[key]` once; a repeat is reported with the line of the first."""
    first: dict[str, int] = {}
    raw = data.get(key)
    if not isinstance(raw, list):
        return
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        ident = item["id"]
        if ident in first:
            mark = report.smap.value((key, first[ident], "id"))
            report.error(
                (key, i, "id"),
                f"duplicate {what} id '{ident}' (first at line {mark.line})",
            )
        else:
            first[ident] = i


def check_device_refs(
    report: Reporter, registry: Registry, data: dict[str, Any], buses: list[BusConfig]
) -> None:
    """Each device's bus and site exist, and its protocol runs on that bus's type."""
    bus_by_id = {b.id: b for b in buses}
    all_bus_ids = _ids(data.get("buses"))
    site_ids = _ids(data.get("sites"))
    for i, raw in _items_quiet(data, "devices"):
        name = where("device", raw, i)
        for key, known, what in (("bus", all_bus_ids, "buses"), ("site", site_ids, "sites")):
            ref = raw.get(key)
            if isinstance(ref, str) and ref not in known:
                report.error(
                    ("devices", i, key),
                    f"{name}: no {key} with id '{ref}'",
                    one_of(ref, known, what),
                )
        bus_id = raw.get("bus")
        protocol = raw.get("protocol")
        bus = bus_by_id.get(bus_id) if isinstance(bus_id, str) else None
        known = isinstance(protocol, str) and protocol in registry.protocols
        if bus is not None and known:
            spec = registry.protocols[protocol]
            if bus.type not in spec.bus_types:
                report.error(
                    ("devices", i, "bus"),
                    f"{name}: protocol '{protocol}' runs on "
                    f"{' or '.join(sorted(spec.bus_types))} buses, but bus '{bus.id}' is"
                    f" of type '{bus.type}'",
                )


def _items_quiet(data: dict[str, Any], key: str) -> list[tuple[int, dict]]:
    # The shape of the list was reported when its entries were validated.
    raw = data.get(key)
    if not isinstance(raw, list):
        return []
    return [(i, item) for i, item in enumerate(raw) if isinstance(item, dict)]


def _ids(raw: Any) -> list[str]:
    if not isinstance(raw, list):
        return []
    return [r["id"] for r in raw if isinstance(r, dict) and isinstance(r.get("id"), str)]
