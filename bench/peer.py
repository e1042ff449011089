"""A peer, side by side: ThingsBoard IoT Gateway 3.8.5 and hearthgate on the same path.

Both forward zigbee2mqtt messages from a local mosquitto to a "platform" mosquitto,
with 200 devices, measured the same way in the same run:

- alert latency: 100 SOS presses (distinct devices, 100 ms apart) while 100 readings/s
  of background flow; from just before the publish to the arrival upstream
  (hearthgate: the `sos` alert on `P/alerts`; ThingsBoard: the press's `action` in
  `v1/gateway/telemetry`, which is all a forwarding gateway does with it);
- lossless throughput: 10,000 messages (20,000 readings: battery and linkquality)
  published at once; readings counted upstream;
- memory: VmRSS idle with 200 devices, VmHWM after the load.

The peer is installed by this script into build/peer-venv (PyPI `thingsboard-gateway`
3.8.5). Its northbound side expects a ThingsBoard server; a plain mosquitto stands in,
and this script answers the one request the peer waits on before it sends anything
(the `getSessionLimits` RPC on `v1/devices/me/rpc/request/+`) with "no limits", as a
ThingsBoard server without rate limits does. The peer uses its default in-memory storage.

Run from the repo root: `python bench/peer.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import _kit as kit

PEER_VERSION = "3.8.5"
VENV = kit.REPO / "build" / "peer-venv"
DEVICES = 200
PRESSES = 100
FLOOD = 10_000
SESSION_LIMITS = {
    "maxPayloadSize": 65536,
    "maxInflightMessages": 100,
    "rateLimits": {"messages": "0:0,", "telemetryMessages": "0:0,",
                   "telemetryDataPoints": "0:0,"},
}


def ensure_peer() -> tuple[Path | None, str]:
    exe = VENV / "bin" / "thingsboard-gateway"
    if exe.exists():
        return exe, "already installed"
    base = shutil.which("python3") or sys.executable
    try:
        subprocess.run([base, "-m", "venv", str(VENV)], check=True, capture_output=True,
                       timeout=120)
        r = subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "-q", f"thingsboard-gateway=={PEER_VERSION}"],
            capture_output=True, text=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not create the peer's virtualenv: {exc}"
    if r.returncode != 0 or not exe.exists():
        return None, f"pip install thingsboard-gateway=={PEER_VERSION} failed: {r.stderr[-500:]}"
    return exe, "installed now"


@dataclass
class Figures:
    idle_kb: int = 0
    hwm_kb: int = 0
    latencies: list[float] | None = None
    readings: int = 0
    expected: int = 0
    seconds: float = float("nan")
    note: str = ""


# -- how each system's upstream messages are read -----------------------------------


def tb_readings(payload: bytes) -> int:
    try:
        body = json.loads(payload)
    except ValueError:
        return 0
    n = 0
    if isinstance(body, dict):
        for entries in body.values():
            for entry in entries if isinstance(entries, list) else []:
                values = entry.get("values", entry) if isinstance(entry, dict) else {}
                n += sum(1 for k in ("battery", "linkquality") if k in values)
    return n


def tb_presses(payload: bytes) -> list[str]:
    """Device names whose `action: emergency` is in this v1/gateway/telemetry message."""
    try:
        body = json.loads(payload)
    except ValueError:
        return []
    out = []
    for name, entries in body.items() if isinstance(body, dict) else []:
        for entry in entries if isinstance(entries, list) else []:
            values = entry.get("values", entry) if isinstance(entry, dict) else {}
            if values.get("action") == "emergency":
                out.append(name)
    return out


def hg_presses(payload: bytes) -> list[str]:
    body = json.loads(payload)
    return body["device_ids"] if body.get("state") == "raised" else []


# -- one system under the same measurements ---------------------------------------


def measure(
    name: str, start: Callable[[kit.Probe], int], local_port: int, plat_port: int,
    topic: str, count: Callable[[bytes], int], presses: Callable[[bytes], list[str]],
    press_topic: str, devices: list[kit.Button],
) -> Figures:
    fig = Figures()
    counter = {"n": 0, "first": None, "last": None, "since": 0.0}
    pressed: dict[str, float] = {}
    lat: list[float] = []

    def on_receive(t: str, payload: bytes, at: float) -> None:
        if t == topic:
            if t.endswith("telemetry") or "gateway" in t:
                n = count(payload)
                if n and at >= counter["since"]:
                    counter["n"] += n
                    counter["first"] = counter["first"] or at
                    counter["last"] = at
        if t == press_topic:
            for dev in presses(payload):
                if dev in pressed:
                    lat.append(at - pressed.pop(dev))

    with kit.Probe(plat_port, (f"{kit.P}/#", "v1/#"), name=f"{name}-platform",
                   keep=lambda t, _p: t.endswith("/status"), on_receive=on_receive) as plat, \
            kit.Probe(local_port, name=f"{name}-z2m") as z2m:
        pid = start(plat)
        # Ready when a reading makes it through.
        deadline = time.monotonic() + 60
        while counter["n"] == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} never forwarded a reading")
            z2m.publish(devices[0].topic, kit.reading_payload(0))
            plat.wait(lambda: counter["n"] > 0, 1.0)
        time.sleep(3.0)
        fig.idle_kb = kit.proc_status(pid)["VmRSS"]

        topics = [d.topic for d in devices]
        load = kit.Load(local_port, topics, rate=50, count=50 * 16, max_seconds=20).start()
        time.sleep(1.0)
        for d in devices[:PRESSES]:
            pressed[d.id] = z2m.publish(d.topic, json.dumps({"action": "emergency"}))
            time.sleep(0.1)
        load.join(40)
        plat.wait(lambda: not pressed, 15)
        fig.latencies = list(lat)
        if pressed:
            fig.note += f"{len(pressed)} presses never arrived. "

        time.sleep(2.0)
        counter.update(n=0, first=None, last=None, since=time.monotonic())
        t0 = time.monotonic()
        load = kit.Load(local_port, topics, rate=0, count=FLOOD, max_seconds=30).start()
        sent, _acked, _s = load.join(60)
        fig.expected = sent * kit.READINGS_PER_MESSAGE
        # Until all arrived, or nothing more came for 5 s (what is missing then is lost).
        deadline = time.monotonic() + 90
        seen, quiet_since = -1, time.monotonic()
        while counter["n"] < fig.expected and time.monotonic() < deadline:
            if counter["n"] != seen:
                seen, quiet_since = counter["n"], time.monotonic()
            elif time.monotonic() - quiet_since > 5:
                break
            time.sleep(0.1)
        fig.readings = counter["n"]
        fig.seconds = (counter["last"] or time.monotonic()) - t0
        fig.hwm_kb = kit.proc_status(pid)["VmHWM"]
    return fig


def peer_config(root: Path, local_port: int, plat_port: int, devices: int) -> Path:
    cfg = root / "config"
    cfg.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    site = next((VENV / "lib").glob("python3*/site-packages/thingsboard_gateway/config"))
    logs = json.loads((site / "logs.json").read_text())
    for handler in logs.get("handlers", {}).values():
        if "filename" in handler:
            handler["filename"] = str(root / "logs" / Path(handler["filename"]).name)
        handler["level"] = "WARNING"
    for logger in logs.get("loggers", {}).values():
        logger["level"] = "WARNING"
    (cfg / "logs.json").write_text(json.dumps(logs))
    gateway = json.loads((site / "tb_gateway.json").read_text())
    tb = gateway["thingsboard"]
    tb.update(host=kit.HOST, port=plat_port, remoteConfiguration=False, remoteShell=False)
    tb["statistics"]["enable"] = False
    tb["security"] = {"type": "accessToken", "accessToken": "bench-token"}
    gateway["storage"].update(data_folder_path=str(root / "data") + "/",
                              data_file_path=str(root / "data") + "/")
    gateway["connectors"] = [{"type": "mqtt", "name": "zigbee2mqtt", "configuration": "mqtt.json"}]
    (cfg / "tb_gateway.json").write_text(json.dumps(gateway, indent=1))
    mqtt_cfg = {
        "broker": {"host": kit.HOST, "port": local_port, "clientId": "tb-peer", "version": 5,
                   "maxMessageNumberPerWorker": 10, "maxNumberOfWorkers": 100,
                   "cleanSession": True, "cleanStart": True, "sessionExpiryInterval": 0,
                   "security": {"type": "anonymous"}},
        "mapping": [{
            "topicFilter": "zigbee2mqtt/+",
            "subscriptionQos": 1,
            "converter": {
                "type": "json",
                "deviceInfo": {"deviceNameExpressionSource": "topic",
                               "deviceNameExpression": "zigbee2mqtt/(.*)",
                               "deviceProfileExpressionSource": "constant",
                               "deviceProfileExpression": "sos_button"},
                "sendDataOnlyOnChange": False,
                "timeout": 60000,
                "attributes": [],
                "timeseries": "*",
            },
        }],
        "requestsMapping": {},
    }
    mqtt_cfg["mapping"][0]["converter"]["timeseries"] = ["*"]
    (cfg / "mqtt.json").write_text(json.dumps(mqtt_cfg, indent=1))
    return cfg


def main() -> None:
    kit.header(f"Side by side: ThingsBoard IoT Gateway {PEER_VERSION} and hearthgate, "
               f"{DEVICES} devices")
    devices = kit.buttons("dev", DEVICES)
    results: dict[str, Figures] = {}

    with kit.brokers() as (local, plat, tmp):
        config = kit.write_config(tmp, plat, local, devices)
        gws = []

        def start_hg(probe: kit.Probe) -> int:
            gw, _ = kit.start_gateway(config, probe)
            gws.append(gw)
            return gw.pid

        try:
            results["hearthgate"] = measure(
                "hearthgate", start_hg, local.port, plat.port, f"{kit.P}/telemetry",
                kit.count_readings, hg_presses, f"{kit.P}/alerts", devices)
        finally:
            for gw in gws:
                gw.close()

    exe, how = ensure_peer()
    peer_error = ""
    if exe is None:
        peer_error = how
    else:
        with kit.brokers() as (local, plat, tmp):
            root = tmp / "tb"
            cfg = peer_config(root, local.port, plat.port, DEVICES)
            procs: list[subprocess.Popen[bytes]] = []
            log = open(root / "stdout.log", "wb")

            def start_tb(probe: kit.Probe) -> int:
                def answer(t: str, payload: bytes, _at: float) -> None:
                    if t.startswith("v1/devices/me/rpc/request/"):
                        rid = t.rsplit("/", 1)[1]
                        probe.client.publish(f"v1/devices/me/rpc/response/{rid}",
                                             json.dumps(SESSION_LIMITS), qos=1)
                old = probe.on_receive

                def both(t: str, payload: bytes, at: float) -> None:
                    answer(t, payload, at)
                    if old is not None:
                        old(t, payload, at)

                probe.on_receive = both
                env = dict(os.environ, TB_GW_CONFIG_DIR=str(cfg) + "/")
                proc = subprocess.Popen([str(exe)], cwd=root, env=env, stdout=log,
                                        stderr=subprocess.STDOUT)
                procs.append(proc)
                return proc.pid

            try:
                results["thingsboard-gateway"] = measure(
                    "thingsboard", start_tb, local.port, plat.port, "v1/gateway/telemetry",
                    tb_readings, tb_presses, "v1/gateway/telemetry", devices)
            except (TimeoutError, OSError) as exc:
                tail = (root / "stdout.log").read_text(errors="replace")[-1500:]
                peer_error = f"{exc}; peer output: {tail}"
            finally:
                for p in procs:
                    p.terminate()
                    try:
                        p.wait(10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait(5)
                log.close()

    print(f"peer: thingsboard-gateway {PEER_VERSION} ({how}; {VENV})")
    for name, f in results.items():
        lossless = "lossless" if f.readings == f.expected else \
            f"LOST {f.expected - f.readings:,}"
        print(f"{name:20s} latency (press → upstream, 100 readings/s background): "
              f"{kit.ms(f.latencies or [])}")
        print(f"{'':20s} throughput: {f.readings:,}/{f.expected:,} readings ({lossless}) in "
              f"{f.seconds:.2f} s = {f.readings / f.seconds:,.0f} readings/s")
        print(f"{'':20s} memory: VmRSS idle {f.idle_kb / 1024:.1f} MB, VmHWM after load "
              f"{f.hwm_kb / 1024:.1f} MB {f.note}")
    if peer_error:
        print(f"thingsboard-gateway NOT MEASURED: {peer_error}")
        print("quoted from the targets (docs/performance.md; not measured here): "
              "alert p99 257 ms (memory storage) / 502 ms (SQLite); ~1,000 readings/s; "
              "63 MB idle / 120 MB peak")


if __name__ == "__main__":
    main()
