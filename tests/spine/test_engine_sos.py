"""The engine's alert lifecycle, with the sos rule and a simulated clock."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest

from hearthgate.core.clock import SimulatedClock
from hearthgate.core.model import AlertState, Observation, Severity
from hearthgate.rules.base import Clear, Raise, Rule, RuleOptions, RuleSite, SiteDevice
from hearthgate.rules.engine import RuleEngine, UnknownAlert
from hearthgate.rules.sos import SosOptions, SosRule


def make_engine(**escalation) -> RuleEngine:
    site = RuleSite("room-301", "r-1", ZoneInfo("Asia/Shanghai"), "zh",
                    (SiteDevice("sos-301", "sos_button", "zigbee2mqtt"),))
    return RuleEngine({"room-301": [SosRule(site, SosOptions())]}, **escalation)


def press(clock: SimulatedClock, value: object = True) -> Observation:
    return Observation("sos-301", "room-301", "sos", value, clock.now(), attrs={"action": "sos"})


async def test_press_raises_once_and_ack_clears(clock):
    engine = make_engine()
    [raised] = engine.on_observation(press(clock), clock.now())
    assert (raised.type, raised.state, raised.severity) == ("sos", AlertState.RAISED,
                                                            Severity.CRITICAL)
    assert raised.message == "紧急呼叫（SOS）"
    assert engine.on_observation(press(clock), clock.now()) == []  # the radio repeating it
    assert engine.on_observation(press(clock, False), clock.now()) == []
    [cleared] = engine.acknowledge(raised.alert_id, "worker-17", clock.now())
    assert cleared.state == AlertState.CLEARED and cleared.alert_id == raised.alert_id
    assert cleared.event_id != raised.event_id
    with pytest.raises(UnknownAlert):
        engine.acknowledge(raised.alert_id, "worker-17", clock.now())
    await clock.advance(11)  # past the repeat window of the first press
    [again] = engine.on_observation(press(clock), clock.now())
    assert again.alert_id != raised.alert_id


async def test_pressing_again_and_again_after_ack_raises_again(clock):
    """A panicking hand presses every 4 s; the worker acks at 30 s: a new alert follows.

    Every press while an alert is open is heard, as an escalation of it (pressed_again)."""
    engine = make_engine()
    transitions = []
    for second in range(0, 60, 4):
        transitions += engine.on_observation(press(clock), clock.now())
        if second == 28:
            transitions += engine.acknowledge(transitions[0].alert_id, "w", clock.now())
        await clock.advance(4)
    states = [str(t.state) for t in transitions]
    # Presses at 0 s (raised), 4 … 28 s (7 escalations), the ack at 28 s, then 32 … 56 s.
    assert states == ["raised"] + ["escalated"] * 7 + ["cleared", "raised"] + ["escalated"] * 6
    assert [t.details["presses"] for t in transitions[1:8]] == list(range(2, 9))
    assert transitions[9].alert_id != transitions[0].alert_id


async def test_unacknowledged_alert_escalates_a_bounded_number_of_times(clock):
    engine = make_engine(max_escalations=2)
    assert len(engine.on_observation(press(clock), clock.now())) == 1
    assert engine.next_deadline() == clock.now().mono + 300
    await clock.advance(299)
    assert engine.on_tick(clock.now()) == []
    escalations = []
    for _ in range(5):
        await clock.advance(300)
        escalations += engine.on_tick(clock.now())
    assert [e.state for e in escalations] == [AlertState.ESCALATED] * 2
    assert [e.details["escalation"] for e in escalations] == [1, 2]
    assert len({e.event_id for e in escalations}) == 2
    assert engine.next_deadline() is None


class DoorLeftOpen(Rule):
    """A rule whose alerts outlive the acknowledgement (only the condition clears them)."""

    type_name = "door_held_open"
    default_severity = Severity.MEDIUM

    def on_observation(self, obs, now):
        if obs.metric != "door_open":
            return []
        return [Raise("", "door open", (obs.device_id,))] if obs.value else [Clear("")]


async def test_ack_stops_escalation_but_only_the_condition_clears(clock):
    site = RuleSite("s", None, ZoneInfo("UTC"), "en", ())
    engine = RuleEngine({"s": [DoorLeftOpen(site, RuleOptions())]})
    [raised] = engine.on_observation(Observation("d", "s", "door_open", True, clock.now()),
                                     clock.now())
    assert engine.acknowledge(raised.alert_id, "w", clock.now()) == []
    await clock.advance(6 * 3600)
    assert engine.on_tick(clock.now()) == []
    [cleared] = engine.on_observation(Observation("d", "s", "door_open", False, clock.now()),
                                      clock.now())
    assert cleared.state == AlertState.CLEARED and cleared.alert_id == raised.alert_id


async def test_snapshot_restore_keeps_open_alert_and_escalation_clock(clock):
    engine = make_engine()
    [raised] = engine.on_observation(press(clock), clock.now())
    await clock.advance(200)
    state = json.loads(json.dumps(engine.snapshot(clock.now())))  # as stored

    later = SimulatedClock(mono=5.0)  # a reboot: the monotonic clock starts again
    restored = make_engine()
    restored.restore(state, later.now())
    assert [t.alert_id for t in restored.open_alerts()] == [raised.alert_id]
    # Still the same episode: a press is an escalation of it, not a new alert.
    [again] = restored.on_observation(press(later), later.now())
    assert (again.alert_id, again.state, again.details["reason"]) == (
        raised.alert_id, AlertState.ESCALATED, "pressed_again")
    assert restored.next_deadline() == pytest.approx(later.now().mono + 100)
    [cleared] = restored.acknowledge(raised.alert_id, "w", later.now())
    assert cleared.alert_id == raised.alert_id


def test_per_rule_severity_override(clock):
    site = RuleSite("s", None, ZoneInfo("UTC"), "en", ())
    engine = RuleEngine({"s": [SosRule(site, SosOptions(severity=Severity.HIGH))]})
    [t] = engine.on_observation(Observation("d", "s", "sos", True, clock.now()), clock.now())
    assert t.severity == Severity.HIGH and t.message == "Emergency call (SOS)"
    assert isinstance(SosOptions(), RuleOptions)
