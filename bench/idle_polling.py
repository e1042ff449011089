"""Idle CPU with 200 meters polled every minute (target: ≤ 1 % of a core, docs/performance.md).

100 DL/T 645 electricity meters and 100 CJ/T 188 water meters, simulated by
`hearthgate simulate` in two separate processes, each on its own pseudo-terminal; the
gateway (`python -m hearthgate run`) has one `serial` bus per pty and polls every meter
once a minute, publishing readings to a local mosquitto. The first round is spread over
the first minute, with each meter coming online in turn (a start-up transient), so the
gateway's CPU time (utime + stime from /proc/PID/stat) is read after 65 s, over 30 s
(half the meters polled, evenly spread); memory (VmRSS) is read at its end.

Reference, same run: the CPU of the two simulator processes over the same minute (they
answer the same 200 requests), and the gateway's readings delivered, as proof that the
polls happened.

Run from the repo root: `python bench/idle_polling.py` (about 110 s).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import _kit as kit

METERS = 100  # per kind
WINDOW = 30.0  # half a poll period: half the meters polled, spread evenly
SETTLE = 65.0  # the first round spreads over a poll period: devices come online one by one


def simulator(kind: str, link: Path, addresses: list[str]) -> subprocess.Popen[bytes]:
    argv = ["--link", str(link), "--duration", str(SETTLE + WINDOW + 60)]
    for a in addresses:
        argv += ["--meter", a]
    # What `hearthgate simulate KIND` runs.
    code = ("import sys; from hearthgate.simulators.meter_command import simulate_main; "
            "sys.exit(simulate_main(sys.argv[1], sys.argv[2:]))")
    return subprocess.Popen([sys.executable, "-c", code, kind, *argv], cwd=kit.REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            env={"PYTHONPATH": str(kit.REPO), "PATH": "/usr/bin:/bin"})


def write_config(tmp: Path, plat_port: int, links: dict[str, Path],
                 addresses: dict[str, list[str]]) -> Path:
    buses = "\n".join(
        f"  - {{id: rs485-{k}, type: serial, port: {p}, baudrate: 2400, parity: N,"
        f" timeout: 800ms}}" for k, p in links.items())
    kinds = {"dlt645": "power_meter", "cjt188": "water_meter"}
    devices = "\n".join(
        f"  - {{id: {k}-{i:03d}, site: home-{i:03d}, kind: {kinds[k]}, protocol: {k},"
        f" bus: rs485-{k}, address: \"{a}\", poll: 1m}}"
        for k, addrs in addresses.items() for i, a in enumerate(addrs))
    sites = "\n".join(f"  - {{id: home-{i:03d}, resident: r-{i}}}" for i in range(METERS))
    path = tmp / "meters.yaml"
    path.write_text(f"""gateway:
  id: {kit.GW}
  timezone: Asia/Shanghai
  data_dir: {tmp / "data"}
  language: en
  log_level: warning
uplink:
  host: {kit.HOST}
  port: {plat_port}
  keepalive: 30s
  telemetry_interval: 10s
buses:
{buses}
devices:
{devices}
sites:
{sites}
""")
    return path


def main() -> None:
    kit.header(f"Idle CPU: {2 * METERS} meters polled every minute over ptys")
    addresses = {
        "dlt645": [f"{i + 1:012d}" for i in range(METERS)],
        "cjt188": [f"{i + 1:014d}" for i in range(METERS)],
    }
    counter = kit.TelemetryCounter()
    with kit.brokers() as (_local, plat, tmp):
        links = {k: tmp / f"pty-{k}" for k in addresses}
        sims = [simulator(k, links[k], addresses[k]) for k in addresses]
        try:
            deadline = time.monotonic() + 20
            while not all(p.exists() for p in links.values()):
                if time.monotonic() > deadline:
                    raise TimeoutError("simulators did not create their ptys")
                time.sleep(0.1)
            config = write_config(tmp, plat.port, links, addresses)
            with kit.Probe(plat.port, (f"{kit.P}/#",), name="platform",
                           keep=lambda t, _p: t.endswith("/status"),
                           on_receive=counter) as platform:
                gw, _ = kit.start_gateway(config, platform)
                try:
                    pid = gw.pid
                    time.sleep(SETTLE)
                    counter.reset()
                    sim0 = sum(kit.proc_cpu_seconds(s.pid) for s in sims)
                    cpu0, t0 = kit.proc_cpu_seconds(pid), time.monotonic()
                    time.sleep(WINDOW)
                    span = time.monotonic() - t0
                    cpu = (kit.proc_cpu_seconds(pid) - cpu0) / span
                    sim_cpu = (sum(kit.proc_cpu_seconds(s.pid) for s in sims) - sim0) / span
                    rss = kit.proc_status(pid)
                    platform.wait(lambda: counter.readings > 0, 15)
                    rc = gw.stop()
                finally:
                    gw.close()
        finally:
            for s in sims:
                s.terminate()
                s.wait(10)
    print(f"hearthgate  idle CPU with {2 * METERS} meters polled every minute: "
          f"{cpu * 100:.2f} % of one core over {span:.0f} s  (target ≤ 1 %); "
          f"VmRSS {rss['VmRSS'] / 1024:.1f} MB, VmHWM {rss['VmHWM'] / 1024:.1f} MB")
    print(f"            readings delivered to the platform during the window (sent at the "
          f"10 s telemetry interval): {counter.readings}")
    print(f"reference   the two simulator processes answering the same polls: "
          f"{sim_cpu * 100:.2f} % of one core")
    print(f"gateway exit code on SIGTERM: {rc}")


if __name__ == "__main__":
    main()
