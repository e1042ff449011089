"""How long a device may be silent before it counts as offline."""

from __future__ import annotations

from hearthgate.rules.base import SiteDevice
from hearthgate.rules.health import (
    DEFAULT_OFFLINE_AFTER,
    KIND_OFFLINE_AFTER,
    NO_HEARTBEAT_PROTOCOLS,
)


def offline_threshold(device: SiteDevice, site_after: float | None) -> float | None:
    """Silence after which `device` counts as offline (None: only `alive: false`)."""
    if device.offline_after is not None:
        return device.offline_after
    if device.protocol in NO_HEARTBEAT_PROTOCOLS or (
        device.kind in KIND_OFFLINE_AFTER and KIND_OFFLINE_AFTER[device.kind] is None
    ):
        return None
    if site_after is not None:
        return site_after
    return KIND_OFFLINE_AFTER.get(device.kind, DEFAULT_OFFLINE_AFTER)
