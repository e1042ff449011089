"""SOS under pressure: alert latency while readings flow and while a backlog drains.

One gateway process, two real mosquitto brokers, 200 background zigbee2mqtt devices
(payloads with battery and linkquality: two readings each, no action) plus SOS buttons
at their own sites (each pressed once, so each press raises).

A. 1,000 readings/s of background (500 messages/s from a separate load process) for
   about 20 s; 100 presses, 150 ms apart, during it.
B. The platform broker is stopped; readings are published until 100,000 of them wait
   in the gateway's SQLite outbox; the broker is started again and SOS buttons are
   pressed every 20 ms while the backlog drains. The SOS must not wait behind it.

Latency: from just before the zigbee2mqtt-style publish to the alert's arrival at a
platform subscriber of `P/alerts` (telemetry is counted by a second subscriber).
Reference, same run: a plain publish → subscribe round trip
through the home's broker, measured while the same background load runs.

Run from the repo root: `python bench/sos_pressure.py`.
"""

from __future__ import annotations

import json
import os
import time

import _kit as kit

BACKGROUND = 200
RATE = 500  # messages/s, two readings each
PRESSES_A = 100
GAP_A = 0.15
BACKLOG = 100_000
PRESSES_B = 150
GAP_B = 0.02


def latencies(platform: kit.Probe, pressed: dict[str, float]) -> list[float]:
    out = []
    for _t, payload, at in platform.on(f"{kit.P}/alerts"):
        body = json.loads(payload)
        if body["state"] == "raised" and body["site_id"] in pressed:
            out.append(at - pressed.pop(body["site_id"]))
            if os.environ.get("BENCH_DEBUG") and out[-1] > 0.05:
                print(f"   slow: {body['site_id']} {out[-1] * 1e3:.0f} ms, alert ts {body['ts']}")
    return out


def main() -> None:
    kit.header("SOS under pressure (200 background devices)")
    background = kit.buttons("bg", BACKGROUND)
    sos_a = kit.buttons("sosa", PRESSES_A)
    sos_b = kit.buttons("sosb", PRESSES_B)
    topics = [d.topic for d in background]
    counter = kit.TelemetryCounter()
    keep = lambda topic, _p: not topic.endswith("/telemetry")  # noqa: E731
    alert_topics = (f"{kit.P}/alerts", f"{kit.P}/status", f"{kit.P}/devices")
    with kit.brokers() as (local, plat, tmp):
        config = kit.write_config(tmp, plat, local, background + sos_a + sos_b)
        # Alerts and telemetry to separate subscribers, as a platform's alert service and
        # its telemetry ingestion would be: one socket would deliver an alert only after
        # the megabytes of a draining backlog published before it.
        with kit.Probe(plat.port, alert_topics, name="platform", keep=keep) as platform, \
                kit.Probe(plat.port, (f"{kit.P}/telemetry",), name="telemetry", keep=keep,
                          on_receive=counter), \
                kit.Probe(local.port, name="z2m") as z2m:
            gw, _ = kit.start_gateway(config, platform)
            try:
                kit.bus_ready(z2m, background[0], platform, counter=counter)
                kit.warm_up(z2m, background + sos_a + sos_b, platform)

                # -- A: presses while 1,000 readings/s flow ---------------------------
                seconds = 2 + PRESSES_A * GAP_A + 2
                load = kit.Load(local.port, topics, rate=RATE, count=int(RATE * seconds),
                                max_seconds=seconds + 5).start()
                time.sleep(1.0)
                counter.reset()
                reference = kit.round_trip_reference(local.port, n=100, gap=0.01)
                pressed_a = {}
                for d in sos_a:
                    pressed_a[d.site] = z2m.publish(d.topic, json.dumps({"action": "emergency"}))
                    time.sleep(GAP_A)
                sent, _acked, load_s = load.join(seconds + 20)
                platform.wait(lambda: len(platform.on(f"{kit.P}/alerts")) >= PRESSES_A, 10)
                flowed = counter.readings
                lat_a = latencies(platform, pressed_a)

                # -- B: presses while a 100,000-reading backlog drains ------------------
                stored, fill_s, t_start = kit.outage_with_backlog(
                    plat, platform, local.port, topics, tmp, BACKLOG, counter)
                with kit.Probe(plat.port, alert_topics, name="platform2",
                               keep=keep) as platform2, \
                        kit.Probe(plat.port, (f"{kit.P}/telemetry",), name="telemetry2",
                                  keep=keep, on_receive=counter):
                    # Press once the gateway is back online (its status arrives): from
                    # then on an SOS competes with the draining backlog, not the link.
                    platform2.wait(lambda: bool(platform2.on(f"{kit.P}/status")), 20)
                    relinked = time.monotonic()
                    pressed_b: dict[str, float] = {}
                    press_times: list[float] = []
                    for d in sos_b:
                        at = z2m.publish(d.topic, json.dumps({"action": "emergency"}))
                        pressed_b[d.site] = at
                        press_times.append(at)
                        time.sleep(GAP_B)
                        if counter.readings >= stored:
                            break
                    platform2.wait(lambda: counter.readings >= stored, 60)
                    platform2.wait(
                        lambda: len(platform2.on(f"{kit.P}/alerts")) >= len(press_times), 10)
                    first_back = min((at for _t, _p, at in platform2.messages), default=None)
                    drain_end = counter.last or time.monotonic()
                    all_b = dict(pressed_b)
                    lat_b_all = latencies(platform2, pressed_b)
                    during = []
                    for _t, payload, at in platform2.on(f"{kit.P}/alerts"):
                        body = json.loads(payload)
                        site = body["site_id"]
                        if body["state"] == "raised" and site in all_b and all_b[site] < drain_end:
                            during.append(at - all_b[site])
                    drained = counter.readings
                    drain_s = (counter.last - counter.first) if counter.first else float("nan")
                rc = gw.stop()
            finally:
                gw.close()

    print(f"A. background: {sent} messages in {load_s:.1f} s = "
          f"{sent * kit.READINGS_PER_MESSAGE / load_s:,.0f} readings/s offered; "
          f"{flowed:,} readings reached the platform during the presses")
    print(f"   hearthgate  SOS → P/alerts, under load    {kit.ms(lat_a)}")
    print(f"   reference   publish → subscribe, 1 hop    {kit.ms(reference)}")
    if pressed_a:
        print(f"   MISSING: {len(pressed_a)} presses raised no alert")
    print(f"B. backlog: {stored:,} readings in the outbox after {fill_s:.1f} s of outage; "
          f"{drained:,} delivered in {drain_s:.2f} s after the broker returned "
          f"({drained / drain_s if drain_s else float('nan'):,.0f} readings/s)")
    if first_back is not None:
        print(f"   first message from the gateway {first_back - t_start:.2f} s after the "
              f"broker was started; presses from {relinked - t_start:.2f} s on; drain ended "
              f"{drain_end - t_start:.2f} s after the start")
    print(f"   hearthgate  SOS → P/alerts, during drain  {kit.ms(during)}")
    print(f"   (all {len(press_times)} presses of phase B: {kit.ms(lat_b_all)})")
    if pressed_b:
        print(f"   MISSING: {len(pressed_b)} presses raised no alert")
    print(f"targets: p99 ≤ 20 ms in both; gateway exit code on SIGTERM: {rc}")


if __name__ == "__main__":
    main()
