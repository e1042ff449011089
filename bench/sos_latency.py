"""SOS latency: a zigbee2mqtt press on the home's broker → the alert on `P/alerts`.

One gateway process (`python -m hearthgate run`), two real mosquitto brokers (the home's
and the platform's), 200 SOS buttons at 200 sites, all online (one report each) before
the presses. Each button is pressed once (so each press raises an alert), 50 ms apart.
The latency of a press is from just before the zigbee2mqtt-style publish to the arrival
of its `raised` alert at a platform subscriber. The run is repeated with the gateway's
store on tmpfs (/dev/shm), where fsync is free, to show how much is the durable commit.

Reference, same run, same probes: a plain publish → subscribe round trip through the
home's broker (one hop; the gateway path has two, plus a durable commit).

Run from the repo root: `python bench/sos_latency.py`.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from _kit import (
    P,
    Probe,
    brokers,
    bus_ready,
    buttons,
    header,
    ms,
    round_trip_reference,
    start_gateway,
    warm_up,
    write_config,
)

PRESSES = 200
GAP = 0.05


def run(data_dir: Path | None) -> tuple[list[float], list[float], int, dict[str, float]]:
    devices = buttons("sos", PRESSES)
    with brokers() as (local, plat, tmp):
        config = write_config(tmp, plat, local, devices, data_dir=data_dir)
        with Probe(plat.port, (f"{P}/#",), name="platform") as platform, \
                Probe(local.port, name="z2m") as z2m:
            gw, _ = start_gateway(config, platform)
            try:
                bus_ready(z2m, devices[0], platform)
                warm_up(z2m, devices, platform)
                reference = round_trip_reference(local.port, n=PRESSES, gap=GAP / 2)
                pressed: dict[str, float] = {}
                for d in devices:
                    pressed[d.site] = z2m.publish(
                        d.topic, json.dumps({"action": "emergency", "linkquality": 99}))
                    time.sleep(GAP)
                alerts = f"{P}/alerts"
                platform.wait(lambda: len(platform.on(alerts)) >= PRESSES, 30)
                latencies = []
                for _t, payload, at in platform.on(alerts):
                    body = json.loads(payload)
                    if body["state"] == "raised" and body["site_id"] in pressed:
                        latencies.append(at - pressed.pop(body["site_id"]))
                rc = gw.stop()
            finally:
                gw.close()
    return latencies, reference, rc, pressed


def main() -> None:
    header("SOS latency: zigbee2mqtt publish → P/alerts (200 buttons, 200 sites)")
    latencies, reference, rc, missing = run(None)
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="hg-bench-") as shm:
        tmpfs, _ref2, _rc2, missing2 = run(Path(shm))
    print(f"hearthgate  SOS press → P/alerts         {ms(latencies)}")
    print(f"reference   publish → subscribe, 1 hop   {ms(reference)}")
    print(f"breakdown   the same, store on tmpfs     {ms(tmpfs)}")
    print("            (fsync costs nothing there: the difference is the durable commit "
          "on this machine's disk)")
    if missing or missing2:
        print(f"MISSING: {len(missing) + len(missing2)} presses raised no alert")
    print(f"target: p99 ≤ 20 ms; gateway exit code on SIGTERM: {rc}")


if __name__ == "__main__":
    main()
