"""Every SOS press heard, through a real broker (docs/rules.md, `sos` and `fall`; the
`escalated` transitions in docs/mqtt-api.md): three buttons of one site pressed while the
platform's broker is down reach the platform, once it is back, as three transitions naming
the three buttons; a press after the alert's escalations ran out is published at once as
`pressed_again`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from hearthgate.devkit.testkit import GatewayProcess
from tests.faults.faultkit import (
    ALERTS,
    alert_messages,
    check_duplicates,
    press_payload,
    started,
    wait_until,
    write_config,
)

SITE = "site-001"
BUTTONS = ("sos-001", "sos-001b", "sos-001c")


def three_buttons(tmp_path: Path, broker, home_broker, sos_options: str) -> Path:
    extra = "".join(
        f"  - {{id: {b}, site: {SITE}, kind: sos_button, protocol: zigbee2mqtt,"
        f" bus: zigbee, topic: zigbee2mqtt/{b.replace('-', '_')}, model: generic}}\n"
        for b in BUTTONS[1:]
    )
    return write_config(tmp_path, broker, home_broker, [SITE], extra_devices=extra,
                        sos_options=sos_options)


async def press(zigbee, button: str, n: int = 0) -> None:
    await zigbee.publish(f"zigbee2mqtt/{button.replace('-', '_')}", press_payload(n))


async def test_three_buttons_pressed_during_an_outage_are_three_transitions(
    tmp_path, broker, home_broker, platform, zigbee
):
    gw = GatewayProcess(three_buttons(tmp_path, broker, home_broker, ""))
    try:
        await started(gw, platform)
        broker.stop()
        for button in BUTTONS:
            await press(zigbee, button)
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        broker.start()
        await wait_until(lambda: len(alert_messages(platform)) >= 3, 60,
                         "three transitions after the outage", gw.log_text)
        await asyncio.sleep(1.0)  # nothing more may follow (default escalation is 5 min)
        got = alert_messages(platform)
        assert [(m["state"], m["device_ids"]) for m in got] == [
            ("raised", ["sos-001"]),
            ("escalated", ["sos-001b"]),
            ("escalated", ["sos-001c"]),
        ]
        assert len({m["alert_id"] for m in got}) == 1
        assert [m["details"].get("reason") for m in got[1:]] == ["pressed_again"] * 2
        assert [m["details"].get("presses") for m in got[1:]] == [2, 3]
        assert check_duplicates(platform.on(ALERTS)) == 0
    finally:
        gw.close()


async def test_a_press_after_the_escalations_ran_out_is_published_at_once(
    tmp_path, broker, home_broker, platform, zigbee
):
    gw = GatewayProcess(three_buttons(tmp_path, broker, home_broker, ", escalate_after: 1s"))
    try:
        await started(gw, platform)
        await press(zigbee, "sos-001")
        await wait_until(
            lambda: [m["details"].get("escalation") for m in alert_messages(platform)
                     if m["state"] == "escalated"] == [1, 2, 3],
            30, "the three regular escalations", gw.log_text,
        )
        await asyncio.sleep(2.0)  # past when a fourth would have come: there is none
        assert len(alert_messages(platform)) == 4
        await press(zigbee, "sos-001c")
        await wait_until(lambda: len(alert_messages(platform)) == 5, 30,
                         "the press after the escalations", gw.log_text)
        last = alert_messages(platform)[-1]
        assert (last["state"], last["device_ids"], last["details"]["reason"],
                last["details"]["presses"]) == ("escalated", ["sos-001c"], "pressed_again", 2)
    finally:
        gw.close()
