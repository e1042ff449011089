"""The day `hearthgate demo` plays: two homes, their devices, and what their residents do.

- `build_config(...)`: the gateway config an installer would write for the two homes.
- `DAY`: what the people do, in the scenario format of gateway/simulators/scenario.py (SOS presses,
  motion, doors, a sensor whose battery dies, a pendant reporting a weak battery).
- `USAGE`: water and electricity use, which the meter simulators integrate over time.

room-301 is an old man living alone: an ordinary morning with a walk, a nap after lunch,
and at 15:20 he presses his SOS button. His motion sensor's battery dies at 17:00 and a
grid worker replaces it at 20:30. room-302 is a woman living alone: she presses her
433 MHz pendant by accident while cooking, goes out in the afternoon, comes home and sits
still in her chair from 16:35 until 21:00 (over the 4 hours of her inactivity rule: it fires,
and clears when she moves), leaves a tap running in the evening, and opens her door at 03:00.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

TIMEZONE = "Asia/Shanghai"
GATEWAY_ID = "gw-demo-0001"
TOPIC_PREFIX = "hearthgate"
# A Sunday in late November; the day starts at 06:00 in the homes' zone.
DAY_START = datetime(2026, 11, 22, 6, 0, tzinfo=ZoneInfo(TIMEZONE))

RESIDENTS = {
    "room-301": ("r-1001", "an old man living alone"),
    "room-302": ("r-1002", "a woman living alone"),
}

# Meter addresses on the shared RS-485 line (as on the nameplates).
WATER_METERS = {"water-301": "00000000003011", "water-302": "00000000003021"}
POWER_METERS = {"power-301": "000000003012", "power-302": "000000003022"}
BASE_LOAD_W = {"power-301": 70.0, "power-302": 90.0}  # fridge, router, standby


def build_config(
    work: Path, home_port: int, platform_port: int, rf_port: str, meter_port: str,
    language: str,
) -> dict[str, Any]:
    """The gateway config for the two homes (the same shape as an installer's YAML)."""
    rf = {"protocol": "rflink", "bus": "rf433", "debounce": "60s"}
    # zigbee2mqtt sensors report at least hourly; silence beyond 90 minutes means trouble.
    z2m = {"protocol": "zigbee2mqtt", "bus": "zigbee"}
    z2m_sensor = {**z2m, "offline_after": "90m"}
    devices: list[dict[str, Any]] = [
        {"id": "sos-301", "site": "room-301", "kind": "sos_button",
         "topic": "zigbee2mqtt/sos_301", "model": "TS0215A_sos", **z2m},
        {"id": "pir-301", "site": "room-301", "kind": "motion_sensor",
         "topic": "zigbee2mqtt/pir_301", **z2m_sensor},
        {"id": "door-301", "site": "room-301", "kind": "door_contact",
         "topic": "zigbee2mqtt/door_301", **z2m_sensor},
        {"id": "sos-302", "site": "room-302", "kind": "sos_button",
         "match": "EV1527;ID=05A3C1", **rf},
        {"id": "pir-302", "site": "room-302", "kind": "motion_sensor",
         "match": "EV1527;ID=0B0C01", **rf},
        {"id": "door-302", "site": "room-302", "kind": "door_contact",
         "topic": "zigbee2mqtt/door_302", **z2m_sensor},
    ]
    # Meters answer every 5 or 10 minutes; an hour of silence means trouble. (Tighter is
    # fine on a real gateway; at an hour a second, a busy machine's hiccup of a second
    # would look like a dead meter.)
    for device_id, address in WATER_METERS.items():
        devices.append({"id": device_id, "site": f"room-{device_id[-3:]}",
                        "kind": "water_meter", "protocol": "cjt188", "bus": "rs485-1",
                        "address": address, "poll": "5m", "offline_after": "1h"})
    for device_id, address in POWER_METERS.items():
        devices.append({"id": device_id, "site": f"room-{device_id[-3:]}",
                        "kind": "power_meter", "protocol": "dlt645", "bus": "rs485-1",
                        "address": address, "poll": "10m", "offline_after": "1h",
                        "read": ["energy_total_kwh", "power_w"]})
    return {
        "gateway": {
            "id": GATEWAY_ID,
            "timezone": TIMEZONE,
            "data_dir": str(work / "data"),
            "language": language,
            "log_level": "warning",
            # The demo's residents are simulated: showing every reading harms no one.
            "telemetry": "raw",
            "telemetry_reason": "demo: simulated residents on simulated devices",
        },
        "uplink": {
            "host": "127.0.0.1",
            "port": platform_port,
            "topic_prefix": TOPIC_PREFIX,
            "keepalive": "10s",
            # Simulated time: a telemetry message every quarter of an hour of the day.
            "telemetry_interval": "15m",
            "devices_interval": "1h",
        },
        "buses": [
            {"id": "zigbee", "type": "mqtt", "host": "127.0.0.1", "port": home_port},
            {"id": "rf433", "type": "serial", "port": rf_port, "baudrate": 57600,
             "parity": "N"},
            # Real meters talk at 2400 baud. A pseudo-terminal has no wire, and at 2400 the
            # bus would wait out each frame's time on one (80 ms: minutes of the demo's day).
            {"id": "rs485-1", "type": "serial", "port": meter_port, "baudrate": 115200,
             "parity": "N", "timeout": "500ms", "retries": 1, "inter_frame_gap": "2ms"},
        ],
        "devices": devices,
        "sites": [
            {"id": site, "resident": resident, "profile": "living_alone",
             # The profile's rules, but a tap counts as running through pauses of up to
             # half an hour (the default is 15 minutes): at an hour a second a busy
             # machine's hiccup of a quarter second would otherwise look like a pause.
             "rules": [{"type": "continuous_water", "interval": "30m"}]}
            for site, (resident, _) in RESIDENTS.items()
        ],
    }


# What the two residents do. Times of day are read in the homes' zone; the day starts at
# 06:00, so "03:00" is the night that follows.
DAY: dict[str, Any] = {
    "timezone": TIMEZONE,
    "steps": [
        # room-301
        {"every": "20m", "from": "06:40", "until": "09:05", "device": "pir-301", "do": "motion"},
        {"at": "09:10", "device": "door-301", "do": "door_open"},  # a walk in the park
        {"at": "09:11", "device": "door-301", "do": "door_close"},
        {"at": "10:35", "device": "door-301", "do": "door_open"},
        {"at": "10:36", "device": "door-301", "do": "door_close"},
        {"every": "20m", "from": "10:40", "until": "11:40", "device": "pir-301", "do": "motion"},
        {"every": "30m", "from": "13:30", "until": "17:00", "device": "pir-301", "do": "motion"},
        {"at": "15:20", "device": "sos-301", "do": "press"},
        {"at": "17:01", "device": "pir-301", "do": "silent"},  # its battery dies
        {"at": "20:30", "device": "pir-301", "do": "online"},  # a grid worker replaces it
        {"every": "20m", "from": "20:31", "until": "21:40", "device": "pir-301", "do": "motion"},
        # room-302
        {"every": "25m", "from": "07:00", "until": "13:55", "device": "pir-302", "do": "motion"},
        {"at": "11:05", "device": "sos-302", "do": "press"},  # by accident, while cooking
        {"at": "14:00", "device": "door-302", "do": "door_open"},  # out to see her daughter
        {"at": "14:01", "device": "door-302", "do": "door_close"},
        {"at": "16:30", "device": "door-302", "do": "door_open"},
        {"at": "16:31", "device": "door-302", "do": "door_close"},
        # Home again, she sits still in her chair: the inactivity rule's 4 hours pass.
        {"at": "16:35", "device": "pir-302", "do": "motion"},
        {"every": "25m", "from": "21:00", "until": "22:00", "device": "pir-302", "do": "motion"},
        {"at": "20:00", "device": "sos-302", "do": "battery", "value": 12},
        {"at": "03:00", "device": "door-302", "do": "door_open"},  # up in the night
        {"at": "03:04", "device": "door-302", "do": "door_close"},
        {"at": "03:05", "device": "pir-302", "do": "motion"},
        # zigbee devices check in with their battery level now and then
        *[
            {"every": "50m", "from": "06:30", "device": d, "do": "battery", "value": 88}
            for d in ("sos-301", "pir-301", "door-301", "door-302")
        ],
    ],
}

# (from, until, meter, rate): m³/h through a water meter, W through an electricity meter
# (on top of the base load).
USAGE: list[tuple[str, str, str, float]] = [
    ("06:45", "07:05", "water-301", 0.30),  # washing
    ("06:50", "07:00", "power-301", 1800.0),  # kettle
    ("08:00", "08:05", "water-301", 0.20),
    ("11:20", "11:50", "power-301", 1200.0),  # lunch
    ("12:00", "12:10", "water-301", 0.30),
    ("18:00", "18:40", "power-301", 1200.0),
    ("18:30", "18:50", "water-301", 0.30),
    ("21:00", "21:05", "water-301", 0.20),
    ("07:10", "07:25", "water-302", 0.30),
    ("07:15", "07:30", "power-302", 1500.0),
    ("10:40", "11:20", "power-302", 1500.0),  # cooking
    ("11:25", "11:35", "water-302", 0.25),
    ("17:30", "18:10", "power-302", 1500.0),
    ("19:10", "21:40", "water-302", 0.25),  # a tap left running
    ("03:06", "03:08", "water-302", 0.20),  # a glass of water
]


def offset_of(time_of_day: str, start: datetime = DAY_START) -> float:
    """Seconds from the day's start to the next `HH:MM` (a time before 06:00 is tomorrow)."""
    hour, minute = (int(x) for x in time_of_day.split(":"))
    moment = start.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if moment < start:
        moment += timedelta(days=1)
    return (moment - start).total_seconds()


def usage_timeline(start: datetime = DAY_START) -> list[tuple[float, str, float]]:
    """(seconds from the start, meter, rate) changes in time order."""
    events: list[tuple[float, str, float]] = []
    for begin, end, meter, rate in USAGE:
        events.append((offset_of(begin, start), meter, rate))
        events.append((offset_of(end, start), meter, 0.0))
    return sorted(events, key=lambda e: e[0])
