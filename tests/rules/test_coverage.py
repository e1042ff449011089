"""Coverage on a simulated clock: which rules of a site watch, which are blind and why, and the
`device_offline` note when no absence rule is left watching (issue 13, item 2)."""

from __future__ import annotations

from typing import Any, ClassVar

from hearthgate.core.model import Instant
from hearthgate.rules.base import RuleSite
from hearthgate.rules.coverage import site_coverage
from hearthgate.rules.health import DeviceOfflineOptions
from hearthgate.rules.sos import SosOptions, SosRule
from tests.rules.test_rule_types import Build, raised

H = 3600.0
DEVICES: list[dict[str, Any]] = [
    {"id": "pir-1", "kind": "motion_sensor"},
    {"id": "water-1", "kind": "water_meter"},
    {"id": "door-1", "kind": "door_contact"},
    {"id": "sos-1", "kind": "sos_button", "protocol": "rulestest_rf"},
]
RULES: list[dict[str, Any]] = [
    {"type": "sos"}, {"type": "inactivity", "window": "4h", "active_hours": None},
    {"type": "no_water", "window": "12h"}, {"type": "device_offline", "after": "10m"},
]


def blind(h: Any) -> dict[str, str]:
    [c] = h.engine.coverage(h.clock.now())
    return dict(c.blind)


def test_blind_while_sensors_offline_and_the_note_when_no_absence_rule_watches(
    harness: Build
) -> None:
    h = harness(RULES, devices=DEVICES)
    for d in ("pir-1", "water-1", "door-1"):
        h.obs(d, "battery_pct", 90)
    assert blind(h) == {}
    [c] = h.engine.coverage(h.clock.now())
    assert c.watching == ("sos", "inactivity", "no_water", "device_offline")
    assert c.as_dict()["blind"] == []

    # The water meter says nothing for its limit: no_water blind; inactivity still watches.
    h.advance(5 * 60)
    h.obs("pir-1", "battery_pct", 90)
    h.obs("door-1", "battery_pct", 90)
    got = h.advance(6 * 60)
    [water] = raised(got, "device_offline")
    assert "coverage" not in water.details
    assert blind(h) == {"no_water": "water-1 offline"}
    assert h.engine.coverage_deadline(h.clock.now()) is not None

    # The motion sensor is reported unreachable (its bridge went away): no absence rule is
    # left, and that alert says so, though raised before the site's health took it in.
    got = h.obs("pir-1", "alive", False, reason="zigbee2mqtt bridge offline")
    [pir] = raised(got, "device_offline")
    assert pir.details["coverage"] == "room-1: only SOS is watched"
    assert pir.details["watching"] == ["sos"]
    assert blind(h) == {"no_water": "water-1 offline",
                        "inactivity": "pir-1 offline (zigbee2mqtt bridge offline)"}

    # Back: watching again.
    h.obs("pir-1", "alive", True)
    h.obs("water-1", "water_total_m3", 1.0)
    assert blind(h) == {}


def test_resident_away_is_a_reason(harness: Build) -> None:
    h = harness(RULES[:3], devices=DEVICES)  # sensors' own limits (2 h): online throughout
    h.obs("pir-1", "motion", True)
    h.advance(120)
    h.obs("door-1", "door_open", True)
    h.advance(5)
    h.obs("door-1", "door_open", False)
    h.advance(31 * 60)  # nothing moves after the door closed: away
    assert blind(h)["inactivity"] == "resident away"
    assert blind(h)["no_water"] == "water-1 offline; resident away"  # both reasons
    h.obs("pir-1", "motion", True)
    assert "inactivity" not in blind(h)


class _Learning(SosRule):
    """A rule with its own reason, as the learned routine rules have (`learning()`)."""

    type_name: ClassVar[str] = "learning_rule"

    def blind_reason(self, now: Instant) -> str | None:
        return super().blind_reason(now) or "still learning (3 of 14 days; fixed window meanwhile)"


class _Broken(SosRule):
    type_name: ClassVar[str] = "broken_rule"

    def blind_reason(self, now: Instant) -> str | None:
        raise RuntimeError("bug")


def test_a_rule_hook_plugs_in_and_a_broken_one_is_not_taken_for_watching(
    harness: Build
) -> None:
    h = harness(RULES, devices=DEVICES)
    site: RuleSite = h.engine.rules_by_site["room-1"][0].site
    rules = [_Learning(site, SosOptions()), _Broken(site, SosOptions())]
    c = site_coverage("room-1", rules, h.clock.now())
    assert c.watching == ()
    assert dict(c.blind) == {
        "learning_rule": "still learning (3 of 14 days; fixed window meanwhile)",
        "broken_rule": "cannot tell (internal error)",
    }
    assert not c.absence_blind  # no absence rule among these
    assert c.note() == "room-1: nothing watches the resident"
    # Device health rules do not count as watching the resident.
    from hearthgate.rules.health import DeviceOfflineRule
    only = site_coverage("room-1", [DeviceOfflineRule(site, DeviceOfflineOptions())],
                         h.clock.now())
    assert only.watching == ("device_offline",) and only.watching_resident == ()
