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


# -- coverage kept per site (issue 17): never later than computing it all afresh -------


def _sites_config(n: int) -> Any:
    from tests.rules.support import TEST_REGISTRY, config_data, parse_config_data

    rules = [*RULES, {"type": "no_water", "window": "12h", "pause_when_away": True}]
    base = config_data(rules, devices=DEVICES)
    devices, sites = [], []
    for i in range(n):
        site = f"room-{i}"
        devices += [{**d, "id": f"{d['id']}-{i}", "site": site} for d in base["devices"]]
        sites.append({"id": site, "resident": f"r-{i}", "rules": rules})
    return parse_config_data({**base, "devices": devices, "sites": sites},
                             registry=TEST_REGISTRY)


def test_coverage_kept_per_site_equals_a_full_recomputation_at_every_moment() -> None:
    """Random observations, silences, acknowledgements and a restart over six sites; after
    each step, and at the very moment the engine says coverage may change by itself (a
    device offline by silence, the resident counted away), the kept coverage is exactly
    what asking every rule of every site afresh says: a site going blind is never late."""
    import random

    from tests.rules.support import Harness, local

    rnd = random.Random(1717)
    config = _sites_config(6)
    h = Harness(config, local("Asia/Shanghai", 2026, 11, 22, 8, 0))
    device_ids = [d.id for d in config.devices]

    def afresh() -> list[Any]:
        now = h.clock.now()
        return [site_coverage(s, rules, now) for s, rules in h.engine.rules_by_site.items()]

    seen_blind = at_deadline = 0
    for step in range(600):
        roll = rnd.random()
        if roll < 0.45:
            d = rnd.choice(device_ids)
            kind = d.split("-")[0]
            metric, value = {"pir": ("motion", True), "water": ("water_total_m3", step / 10),
                             "door": ("door_open", rnd.random() < 0.5),
                             "sos": ("sos", True)}[kind]
            if rnd.random() < 0.1:
                h.obs(d, "alive", False, reason="zigbee2mqtt bridge offline")
            elif rnd.random() < 0.1:
                h.obs(d, "alive", True)
            else:
                h.obs(d, metric, value)
        elif roll < 0.75:
            h.advance(rnd.uniform(0, 40 * 60))
        elif roll < 0.95:
            deadline = h.engine.coverage_deadline(h.clock.now())
            if deadline is not None:
                before = h.engine.coverage(h.clock.now())
                h.advance(deadline - h.clock.now().mono)
                at_deadline += 1
                after = h.engine.coverage(h.clock.now())
                assert after == afresh(), f"step {step}: late at the deadline"
                seen_blind += sum(len(a.blind) > len(b.blind)
                                  for a, b in zip(after, before, strict=True))
        elif roll < 0.99 and h.engine.open:
            h.ack(rnd.choice(list(h.engine.open)))
        else:
            h.restart(downtime=rnd.uniform(0, 600))
        assert h.engine.coverage(h.clock.now()) == afresh(), f"step {step}"
    # The walk went where it matters: sites went blind at their deadlines.
    assert at_deadline >= 30 and seen_blind >= 10


def test_coverage_unchanged_is_not_computed_again(harness: Build) -> None:
    """The same list while nothing of any site moved; a new one as soon as a site's does."""
    h = harness(RULES, devices=DEVICES)
    for d in ("pir-1", "water-1", "door-1"):
        h.obs(d, "battery_pct", 90)
    first = h.engine.coverage(h.clock.now())
    assert h.engine.coverage(h.clock.now()) is first
    h.obs("pir-1", "motion", True)  # the site moved, its coverage did not
    assert h.engine.coverage(h.clock.now()) == first
    h.obs("pir-1", "alive", False, reason="zigbee2mqtt bridge offline")
    assert blind(h) == {"inactivity": "pir-1 offline (zigbee2mqtt bridge offline)"}
