"""`DeviceHealth.news`: the per-observation sign that the rules loop's scan is due now
(a device first heard, back, or said gone), without a pass over every device (issue 17)."""

from __future__ import annotations

from hearthgate.config import parse_config_data
from hearthgate.core.clock import SimulatedClock
from hearthgate.core.model import Observation
from hearthgate.health import DeviceHealth


def health_of_two() -> DeviceHealth:
    config = parse_config_data({
        "gateway": {"id": "gw-test"},
        "uplink": {"host": "127.0.0.1"},
        "buses": [{"id": "zigbee", "type": "mqtt"}],
        "devices": [
            {"id": f"pir-{i}", "site": "home", "kind": "motion_sensor",
             "protocol": "zigbee2mqtt", "bus": "zigbee", "topic": f"zigbee2mqtt/pir_{i}",
             "offline_after": "10m"} for i in (1, 2)
        ],
        "sites": [{"id": "home"}],
    })
    return DeviceHealth(config)


async def test_news_only_when_a_device_changes_state(clock: SimulatedClock) -> None:
    health = health_of_two()
    health.start(clock.now())
    health.changed(clock.now())
    assert not health.news

    def heard(device: str, metric: str = "motion", value: object = True) -> None:
        health.observe(Observation(device, "home", metric, value, clock.now()))

    heard("pir-1")  # first heard: news
    assert health.news
    assert health.changed(clock.now()) and not health.news

    heard("pir-1", "linkquality", 120)  # still online: no news
    heard("pir-1")
    assert not health.news

    heard("pir-1", "alive", False)  # its driver says it is unreachable
    assert health.news
    assert health.changed(clock.now()) and not health.news

    heard("pir-1", "linkquality", 90)  # heard again: back online
    assert health.news
    health.changed(clock.now())

    heard("nobody", "motion", True)  # not a configured device: nothing to show
    heard("pir-1", "warning", "bad setup")  # a driver's warning is no change of state
    assert not health.news


async def test_silence_is_the_scan_deadline_not_news(clock: SimulatedClock) -> None:
    health = health_of_two()
    health.start(clock.now())
    health.observe(Observation("pir-2", "home", "motion", True, clock.now()))
    health.changed(clock.now())
    expiry = health.next_expiry(clock.now())
    assert expiry is not None and expiry > clock.now().mono
    await clock.advance(11 * 60)
    # Nothing was observed: no news; the loop wakes at next_expiry and scans.
    assert not health.news
    assert health.changed(clock.now())
