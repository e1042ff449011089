"""When a silent device counts as offline: one policy for `P/devices` and `device_offline`.

The device view (`hearthgate.health`) and the `device_offline` rule both ask
`silence_limit()`, so the platform never sees a device offline in `P/devices` without the
alert, nor the alert for a device shown online. Silence is only half of it: a driver that
says `alive: false` makes the device offline at once, whatever its limit.

Precedence, first match wins (docs/rules.md, "device_offline"):

1. The device's own `offline_after`. The installer said it for this device; nothing
   overrides it.
2. No limit for devices that say nothing while all is well: 433 MHz (`rflink`) and wired
   (`gpio`) sensors speak only when something happens, SOS buttons only when pressed, and
   an OSDP reader answers the driver's polls with an ACK that carries no observation (its
   driver reports `alive: false` itself within a second of the reader falling silent). A
   limit on their silence would only ever raise false alarms, a site-wide one included:
   a 30-minute `after` would report every bathroom pull-cord offline half an hour after it
   was last pulled.
3. The site's `device_offline.after`, but never less than a few missed polls: a blanket
   `after: 5m` over a meter polled every 15 minutes would raise and clear an alert around
   every poll.
4. A polled device (a `poll` option: the meters) after `POLL_MISSES` missed polls and
   `POLL_SLACK` of retries on a busy bus. That is sooner than a per-kind guess when polls
   are frequent (a missed alert is the worst failure) and later when they are rare (a
   meter read hourly is not offline after 30 minutes).
5. A default for the device's kind, `KIND_OFFLINE_AFTER` (`DEFAULT_OFFLINE_AFTER` for
   kinds not listed): Zigbee sensors check in at least every hour or so.

Pure: plain values in, seconds out, so the rules need no config and the config no rules.
"""

from __future__ import annotations

# Silence after which a device of this kind counts as offline when nothing above says
# otherwise. None: the kind sends nothing until used, so only `alive: false` counts.
KIND_OFFLINE_AFTER: dict[str, float | None] = {
    "water_meter": 30 * 60.0,
    "power_meter": 30 * 60.0,
    "access_controller": 30 * 60.0,
    "motion_sensor": 2 * 3600.0,
    "door_contact": 2 * 3600.0,
    "sos_button": None,
}
DEFAULT_OFFLINE_AFTER = 2 * 3600.0

# Radio buttons and wired pins say nothing until something happens: silence is normal.
NO_HEARTBEAT_PROTOCOLS = frozenset({"rflink", "gpio"})
# The driver polls these devices continuously and reports `alive` itself; the replies of
# a healthy, idle device carry no observation, so its `poll` is no heartbeat either.
SELF_WATCHED_PROTOCOLS = frozenset({"osdp"})

POLL_MISSES = 3
POLL_SLACK = 60.0


def silence_limit(
    *,
    kind: str,
    protocol: str,
    offline_after: float | None = None,
    poll: float | None = None,
    site_after: float | None = None,
) -> float | None:
    """Seconds of silence after which a device counts as offline; None: never by silence.

    `offline_after` is the device's own key, `poll` its polling interval if its protocol
    polls, `site_after` the `after` of its site's `device_offline` rule if set.
    """
    if offline_after is not None:
        return float(offline_after)
    if (
        protocol in NO_HEARTBEAT_PROTOCOLS
        or protocol in SELF_WATCHED_PROTOCOLS
        or (kind in KIND_OFFLINE_AFTER and KIND_OFFLINE_AFTER[kind] is None)
    ):
        return None
    polled = POLL_MISSES * float(poll) + POLL_SLACK if poll is not None and poll > 0 else None
    if site_after is not None:
        return max(float(site_after), polled or 0.0)
    if polled is not None:
        return polled
    return KIND_OFFLINE_AFTER.get(kind, DEFAULT_OFFLINE_AFTER)


def offline_since(last_seen: float, limit: float | None) -> float | None:
    """The monotonic moment a device last heard at `last_seen` goes offline by silence.

    None when it never does. Offline *at* that moment, not after it: both sides compare
    `now >= offline_since(...)`, so they flip on the same tick.
    """
    return None if limit is None else last_seen + limit
