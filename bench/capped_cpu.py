"""A Pi-sized CPU: the gateway in a cgroup capped at a quarter of one core (issue 17).

200 devices (zigbee2mqtt SOS buttons, one site each) report at an ordinary rate, each once
every 10 s (20 messages/s, 40 readings/s, from a separate process); during 30 s of that,
30 of them are pressed, one a second. The gateway process is moved into a cgroup with
`cpu.cfs_quota_us` = 25000 per `cpu.cfs_period_us` = 100000 (cgroup v1 `cpu`; cgroup v2
`cpu.max` "25000 100000" where that is what exists) once it is online. Reported: the
share of the quota it used (its utime+stime over the window / 0.25 × window), how often
the kernel throttled it, SOS latency, and whether telemetry kept up (readings offered
vs. arrived at the platform).

Same-run references: the same load and presses with no cap, and the one-hop round trip.
docs/performance.md says why a quarter of this machine's core stands in for a Pi's.

Run from the repo root, as root: `python bench/capped_cpu.py`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import _kit as kit

DEVICES = 200
PRESSED = 30
EVERY = 10.0  # s between two reports of one device
WINDOW = 30.0  # s measured
QUOTA_US, PERIOD_US = 25_000, 100_000


class CpuCap:
    """A cgroup (v1 `cpu`, else v2) capped at QUOTA_US per PERIOD_US; removed on exit."""

    def __init__(self) -> None:
        v1 = Path("/sys/fs/cgroup/cpu")
        name = f"hearthgate-bench-{os.getpid()}"
        if (v1 / "cpu.cfs_quota_us").exists():
            self.path = v1 / name
            self.path.mkdir()
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(QUOTA_US))
            self.kind = "cgroup v1 cpu.cfs_quota_us"
        else:
            self.path = Path("/sys/fs/cgroup") / name
            self.path.mkdir()
            (self.path / "cpu.max").write_text(f"{QUOTA_US} {PERIOD_US}")
            self.kind = "cgroup v2 cpu.max"

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def throttled(self) -> tuple[int, int, float]:
        """(periods, periods throttled, seconds throttled)."""
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        if "throttled_time" in stat:  # v1, ns
            return int(stat["nr_periods"]), int(stat["nr_throttled"]), \
                int(stat["throttled_time"]) / 1e9
        return int(stat["nr_periods"]), int(stat["nr_throttled"]), \
            int(stat["throttled_usec"]) / 1e6

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def run(cap: CpuCap | None) -> dict[str, object]:
    devices = kit.buttons("dev", DEVICES)
    counter = kit.TelemetryCounter()
    keep = lambda topic, _p: not topic.endswith("/telemetry")  # noqa: E731
    with kit.brokers() as (local, plat, tmp):
        config = kit.write_config(tmp, plat, local, devices)
        with kit.Probe(plat.port, (f"{kit.P}/alerts", f"{kit.P}/status", f"{kit.P}/devices"),
                       name="platform", keep=keep) as platform, \
                kit.Probe(plat.port, (f"{kit.P}/telemetry",), name="telemetry", keep=keep,
                          on_receive=counter), \
                kit.Probe(local.port, name="z2m") as z2m:
            gw, _ = kit.start_gateway(config, platform)
            try:
                assert gw.proc is not None
                pid = gw.proc.pid
                kit.bus_ready(z2m, devices[0], platform, counter=counter)
                kit.warm_up(z2m, devices, platform)
                if cap is not None:
                    cap.add(pid)
                rate = DEVICES / EVERY
                load = kit.Load(local.port, [d.topic for d in devices], rate=rate,
                                count=int(rate * (WINDOW + 2)), max_seconds=WINDOW + 10).start()
                time.sleep(1.0)
                counter.reset()
                cpu0, t0 = kit.proc_cpu_seconds(pid), time.monotonic()
                th0 = cap.throttled() if cap is not None else (0, 0, 0.0)
                pressed: dict[str, float] = {}
                for d in devices[:PRESSED]:
                    pressed[d.site] = z2m.publish(d.topic, json.dumps({"action": "emergency"}))
                    time.sleep(WINDOW / PRESSED)
                cpu1, t1 = kit.proc_cpu_seconds(pid), time.monotonic()
                th1 = cap.throttled() if cap is not None else (0, 0, 0.0)
                sent, _acked, _s = load.join(WINDOW + 30)
                # Readings offered inside the window, and what arrived up to 3 s after it
                # (the batch interval is 1 s).
                time.sleep(3.0)
                offered = int(rate * (t1 - t0)) * kit.READINGS_PER_MESSAGE
                arrived = counter.readings
                platform.wait(lambda: len(platform.on(f"{kit.P}/alerts")) >= PRESSED, 10)
                lat = []
                for _t, payload, at in platform.on(f"{kit.P}/alerts"):
                    body = json.loads(payload)
                    if body["state"] == "raised" and body["site_id"] in pressed:
                        lat.append(at - pressed.pop(body["site_id"]))
                reference = kit.round_trip_reference(local.port, n=100, gap=0.01)
            finally:
                gw.stop()
                gw.close()
    return {
        "cpu": (cpu1 - cpu0) / (t1 - t0), "lat": lat, "missing": len(pressed),
        "offered": offered, "arrived": arrived, "sent": sent, "reference": reference,
        "throttled": tuple(b - a for a, b in zip(th0, th1, strict=True)),
    }


def main() -> None:
    kit.header("Capped at a quarter core: 200 devices at ordinary rates, SOS presses")
    free = run(None)
    cap = CpuCap()
    try:
        capped = run(cap)
    finally:
        cap.remove()
    quota = QUOTA_US / PERIOD_US
    periods, throttled, seconds = capped["throttled"]  # type: ignore[misc]
    print(f"capped      ({cap.kind} {QUOTA_US}/{PERIOD_US}): CPU {capped['cpu']:.3f} core ="
          f" {capped['cpu'] / quota * 100:.0f} % of the quota; throttled in {throttled} of"
          f" {periods} periods ({seconds:.2f} s)")
    print(f"            SOS → P/alerts {kit.ms(capped['lat'])}"  # type: ignore[arg-type]
          f"  missing {capped['missing']}")
    print(f"            telemetry: {capped['arrived']:,} of {capped['offered']:,} readings"
          f" offered in the window arrived")
    print(f"reference   no cap: CPU {free['cpu']:.3f} core; SOS {kit.ms(free['lat'])}"  # type: ignore[arg-type]
          f"; telemetry {free['arrived']:,} of {free['offered']:,}")
    print(f"reference   publish → subscribe, 1 hop (capped run) {kit.ms(capped['reference'])}")  # type: ignore[arg-type]
    print("target: under half the quota; SOS p99 ≤ 100 ms")


if __name__ == "__main__":
    main()
