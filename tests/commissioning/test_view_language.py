"""`hearthgate devices` and `status` in the installer's language (issue 14, item 4): Chinese
when `gateway.language: zh`, English with `--lang en` (the flag beats the file), `--json`
English whatever the language, and no word of the English catalogue left in the Chinese
tables but identifiers (device, site and rule ids, kinds, protocols, metrics). Real gateway
in the test's loop, real mosquitto, the commands as real processes on the control socket."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from hearthgate.devkit.local_broker import MosquittoBroker
from hearthgate.devkit.testkit import PlatformSubscriber, run_cli
from hearthgate.messages import MESSAGES, PATTERNS
from tests.faults.faultkit import GW, InProcessGateway, P, wait_until, write_config
from tests.spine.conftest import zigbee  # noqa: F401 (fixture)

DEVICES = (
    "  - {id: pir-301, site: room-301, kind: motion_sensor, protocol: zigbee2mqtt,"
    " bus: zigbee, topic: zigbee2mqtt/pir_301, model: SNZB-03}\n"
    "  - {id: door-301, site: room-301, kind: door_contact, protocol: zigbee2mqtt,"
    " bus: zigbee, topic: zigbee2mqtt/door_301, model: SNZB-04}\n"
)
RULES = "{type: inactivity, window: 1h, active_hours: null}, {type: device_offline, after: 2s}"
# What the tables may show in ASCII whatever the language: names, ids, units, the product.
IDENTIFIERS = {
    "hearthgate", "gw", "room", "pir", "door", "sos", "motion", "sensor", "contact", "button",
    "zigbee2mqtt", "inactivity", "device", "offline", "door_open", "battery", "occupancy",
    "motion_sensor", "door_contact", "sos_button", "device_offline", "linkquality",
}
CATALOGUE_PREFIXES = ("devices.", "status.", "control.")


def english_words() -> set[str]:
    """Every word of the English templates `devices` and `status` use."""
    templates = [en for k, (en, _) in MESSAGES.items() if k.startswith(CATALOGUE_PREFIXES)]
    templates += [en for en, _ in PATTERNS]
    words: set[str] = set()
    for template in templates:
        words |= {w.lower() for w in re.findall(r"[A-Za-z]{2,}", re.sub(r"\{\w+\}", "", template))}
    return words


def leftovers(output: str) -> set[str]:
    """The ASCII words of `output` that are English of the catalogue, not identifiers."""
    # Ids like `pir-301`, `gw-fault-01`, paths and hosts are names, not words.
    found = {w.lower() for w in re.findall(r"(?<![\w/.-])[A-Za-z]{2,}(?![\w/.-])", output)}
    return (found & english_words()) - IDENTIFIERS


def zh_config(tmp: Path, broker: MosquittoBroker, home: MosquittoBroker) -> Path:
    path = write_config(tmp, broker, home, ["room-301"], extra_devices=DEVICES,
                        site_rules={"room-301": RULES})
    text = path.read_text()
    assert "  language: en\n" in text
    path.write_text(text.replace("  language: en\n", "  language: zh\n"))
    return path


def test_the_leftover_check_finds_english() -> None:
    # The check itself: it sees the English of the catalogue, it lets names through.
    assert leftovers("DEVICE  SITE\npir-301  not heard yet") >= {"device", "site", "not",
                                                                  "heard", "yet"} - IDENTIFIERS
    assert leftovers("设备  位置\npir-301  room-301  尚未听到") == set()


async def test_devices_and_status_speak_the_configured_language(
    tmp_path: Path, broker: MosquittoBroker, home_broker: MosquittoBroker,
    zigbee: PlatformSubscriber,  # noqa: F811
) -> None:
    config = zh_config(tmp_path, broker, home_broker)
    async with (PlatformSubscriber(broker.host, broker.port, (f"{P}/status",)) as platform,
                InProcessGateway(config) as gw):
        health = gw.gateway.health.devices
        await zigbee.publish("zigbee2mqtt/door_301", {"contact": False, "battery": 15})
        await zigbee.publish("zigbee2mqtt/pir_301", {"occupancy": True, "linkquality": 90})
        await wait_until(lambda: health["door-301"].values.get("door_open") is True, 10, "door")
        # The sensors fall silent: offline after 2 s, and `inactivity` blind.
        await platform.wait_json(f"{P}/status", lambda b: any(
            x["rule"] == "inactivity" for c in b.get("coverage", []) for x in c["blind"]),
            timeout=15)

        zh = await run_cli("devices", "-c", str(config))
        assert zh.returncode == 0, zh.stderr
        lines = zh.stdout.splitlines()
        assert lines[0].split() == ["设备", "位置", "类型", "协议", "在线", "最后上报", "电量",
                                    "信号", "最后数值"]
        row = {line.split()[0]: line for line in lines[1:] if line[:1].isascii() and line}
        assert "尚未听到" in row["sos-301"]
        # Both fell silent (device_offline after 2 s): offline, their last values kept.
        assert "离线" in row["pir-301"] and "motion=是" in row["pir-301"]
        assert "离线" in row["door-301"] and "door_open=是" in row["door-301"]
        assert "15%" in row["door-301"]
        assert re.search(r"\d+ ?(秒|分钟)前", row["door-301"]), row["door-301"]
        assert "3 个设备中 0 个在线，1 个尚未听到（当前）" in zh.stdout
        assert leftovers(zh.stdout) == set(), zh.stdout

        en = await run_cli("devices", "-c", str(config), "--lang", "en")
        assert en.returncode == 0, en.stderr
        assert en.stdout.splitlines()[0].split()[:3] == ["DEVICE", "SITE", "KIND"]
        assert "not heard yet" in en.stdout and "door_open=True" in en.stdout
        assert "0 of 3 devices online, 1 not heard yet (now)" in en.stdout

        # JSON is for scripts: the same keys and English values whatever the language.
        as_json = json.loads((await run_cli("devices", "-c", str(config), "--json")).stdout)
        pir = next(d for d in as_json["devices"] if d["device_id"] == "pir-301")
        assert pir["online"] is False and pir["values"]["motion"] is True

        status = await run_cli("status", "-c", str(config))
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith(f"hearthgate {GW}：正在运行，已运行 ")
        assert "上行链路：已连接到 127.0.0.1:" in status.stdout
        assert "待发送队列：紧急 " in status.stdout and "遥测 " in status.stdout
        assert "位置 room-301：" in status.stdout
        assert "  正在监测：sos, device_offline" in status.stdout
        assert "  失明：    inactivity：pir-301 离线" in status.stdout
        assert leftovers(status.stdout) == set(), status.stdout

        status_en = await run_cli("status", "-c", str(config), "--lang", "en")
        assert "BLIND:    inactivity: pir-301 offline" in status_en.stdout
        assert "uplink: connected to 127.0.0.1:" in status_en.stdout
        status_json = json.loads((await run_cli("status", "-c", str(config), "--json",
                                                "--lang", "zh")).stdout)
        [site] = status_json["coverage"]
        assert site["blind"] == [{"rule": "inactivity", "why": "pir-301 offline"}]
        assert set(status_json["outbox"]) == {"urgent", "alert", "telemetry"}

    # Stopped: both say so in Chinese; status exits 1.
    stopped = await run_cli("status", "-c", str(config))
    assert stopped.returncode == 1 and "未运行" in stopped.stderr, stopped.stderr
    assert leftovers(stopped.stderr) == set(), stopped.stderr
    saved = await run_cli("devices", "-c", str(config))
    assert saved.returncode == 0
    assert saved.stdout.startswith("hearthgate 服务未运行：以下是最后保存的设备状态（保存于 ")
    assert "（截至 " in saved.stdout
    assert leftovers(saved.stdout) == set(), saved.stdout
    saved_en = await run_cli("devices", "-c", str(config), "--lang", "en")
    assert saved_en.stdout.startswith("hearthgate is not running: devices as last saved at")


async def test_a_garbage_socket_is_an_error_in_chinese(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(f"""gateway: {{id: gw-sock-0001, timezone: UTC, data_dir: {data},
          language: zh}}
uplink: {{host: 127.0.0.1, port: 1}}
devices: []
sites: []
""")
    sock = data / "control.sock"

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"\x00\xffnot json at all\n")
        await writer.drain()
        writer.close()

    async def refuses(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b'{"ok": false, "error": "unknown local command"}\n')
        await writer.drain()
        writer.close()

    # The refusal's own reason is the service's word (English, as in its log).
    for handler, words in ((garbage, "控制套接字 "), (refuses, "服务拒绝了 ")):
        server = await asyncio.start_unix_server(handler, path=str(sock))
        try:
            for command in ("status", "devices"):
                out = await run_cli(command, "-c", str(config))
                assert out.returncode == 1, (command, out.stdout, out.stderr)
                assert out.stderr.startswith("错误：") and words in out.stderr, out.stderr
                assert "Traceback" not in out.stderr
                if handler is garbage:
                    assert "control.sock 的应答不是 hearthgate 的" in out.stderr, out.stderr
                en = await run_cli(command, "-c", str(config), "--lang", "en")
                assert en.stderr.startswith("error: the ") or en.stderr.startswith(
                    "error: the service refused"), en.stderr
        finally:
            server.close()
            await server.wait_closed()
            sock.unlink(missing_ok=True)
