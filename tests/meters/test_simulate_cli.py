"""`hearthgate simulate dlt645|cjt188|sdm120`: a separate process serving a pty."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from hearthgate.drivers import cjt188_codec, dlt645_codec
from hearthgate.drivers.modbus import ModbusRTU, RegisterSpec
from hearthgate.drivers.serial_bus import SerialBus, SerialBusOptions
from hearthgate.simulators.meter_command import simulate_main
from tests.meters.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]


async def start_simulator(kind: str, link: Path, *args: str) -> asyncio.subprocess.Process:
    code = ("import sys; from hearthgate.simulators.meter_command import simulate_main; "
            "raise SystemExit(simulate_main(sys.argv[1], sys.argv[2:]))")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, kind, "--link", str(link), "--duration", "20", *args,
        cwd=REPO, stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 10)
    assert f"{kind} simulator on {link}" in line.decode()
    return proc


async def exchange_once(path: Path, request: bytes, parse) -> object:
    bus = SerialBus("bench", SerialBusOptions(port=str(path), parity="N", baudrate=9600,
                                               timeout=1.0))
    task = asyncio.create_task(bus.run())
    try:
        await wait_until(lambda: bus.is_open)
        return await bus.exchange(request, parse)
    finally:
        task.cancel()


@pytest.mark.parametrize("kind", ["dlt645", "cjt188", "sdm120"])
async def test_simulate_command(tmp_path: Path, kind: str) -> None:
    link = tmp_path / "ttySIM"
    if kind == "dlt645":
        proc = await start_simulator(kind, link, "--meter", "5678=321.09")
        request = dlt645_codec.read_request("000000005678", 0x00010000)
        frame = await exchange_once(link, request, dlt645_codec.DLT645StreamDecoder().take)
        reply = dlt645_codec.decode_reply(frame)  # type: ignore[arg-type]
        assert reply.value == Decimal("321.09")  # type: ignore[union-attr]
    elif kind == "cjt188":
        proc = await start_simulator(kind, link, "--meter", "1234=7.25", "--liters")
        request = cjt188_codec.read_request(0x10, "00000000001234", 9)
        frame = await exchange_once(link, request, cjt188_codec.CJT188StreamDecoder().take)
        reading = cjt188_codec.decode_reply(frame)  # type: ignore[arg-type]
        assert isinstance(reading, cjt188_codec.FlowReading)
        assert reading.total == Decimal("7250.00") and reading.total_unit == 0x29
        assert reading.ser == 9
    else:
        proc = await start_simulator(kind, link, "--meter", "3=55.5")
        rtu = ModbusRTU()
        pdu = await exchange_once(
            link, rtu.read_request(3, 4, 0x48, 2), lambda b: rtu.next_reply(
                b, 3, 4, lambda *a: None))
        spec = RegisterSpec(address=0x48, function=4, type="float32", metric="energy_total_kwh")
        assert spec.decode(list(pdu.registers)) == pytest.approx(55.5, abs=0.01)  # type: ignore[attr-defined]
    proc.terminate()
    await proc.wait()


def test_simulate_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate_main("gasmeter", []) == 2
    with pytest.raises(SystemExit) as exc:
        simulate_main("dlt645", ["--meter", "12345678901234567"])
    assert exc.value.code == 2
    assert "not a DL/T 645 address" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        simulate_main("cjt188", ["--fault", "explode"])


async def test_simulator_on_a_serial_port(tmp_path: Path) -> None:
    """`--port`: the simulator opens a serial port like a meter wired to a second adapter.
    Here that port is a pty's slave; the test plays the gateway on the master side."""
    from hearthgate.simulators.links import PtyLink, SerialLink
    from hearthgate.simulators.meter_bus import MeterBusSimulator
    from hearthgate.simulators.meter_models import DLT645Meter

    wire = PtyLink()
    port = SerialLink(wire.slave_name, baudrate=9600)
    await port.open()
    sim = MeterBusSimulator(port, [DLT645Meter("000000005678", energy_kwh=77.7)])
    task = asyncio.create_task(sim.run())
    try:
        wire.write(dlt645_codec.read_request("000000005678", 0x00010000))
        decoder = dlt645_codec.DLT645StreamDecoder()
        items: list[object] = []
        async with asyncio.timeout(5):
            while not items:
                items = decoder.feed(await wire.read())
        reply = dlt645_codec.decode_reply(items[0])  # type: ignore[arg-type]
        assert isinstance(reply, dlt645_codec.ReadReply) and reply.value == Decimal("77.70")
    finally:
        task.cancel()
        port.close()
        wire.unplug()


async def test_sdm120_names_its_meters(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hearthgate", "simulate", "sdm120", "--link",
        str(tmp_path / "ttySDM"), "--meter", "3", "--meter", "7", "--duration", "20",
        cwd=REPO, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
    proc.terminate()
    await proc.wait()
    assert "meters 3, 7" in line, line


async def test_both_meter_standards_share_one_line_and_leave_no_files(tmp_path: Path) -> None:
    """A flat's one RS-485 adapter: a power meter and a water meter on ONE pty; SIGTERM
    (as `systemctl stop` or a test sends it) removes the symlink."""
    link = tmp_path / "ttyFLAT"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hearthgate", "simulate", "meters", "--link", str(link),
        "--dlt645", "5678=12.5", "--cjt188", "1234=3.5", cwd=REPO,
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
    assert "meters 000000005678, 00000000001234" in line, line
    frame = await exchange_once(link, dlt645_codec.read_request("000000005678", 0x00010000),
                                dlt645_codec.DLT645StreamDecoder().take)
    assert dlt645_codec.decode_reply(frame).value == Decimal("12.5")  # type: ignore[arg-type,union-attr]
    frame = await exchange_once(link, cjt188_codec.read_request(0x10, "00000000001234", 1),
                                cjt188_codec.CJT188StreamDecoder().take)
    reading = cjt188_codec.decode_reply(frame)  # type: ignore[arg-type]
    assert isinstance(reading, cjt188_codec.FlowReading) and reading.total == Decimal("3.5")
    assert link.is_symlink()
    proc.terminate()
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert not link.exists() and not link.is_symlink()
    assert list(tmp_path.iterdir()) == []


def test_meters_needs_meters(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        simulate_main("meters", [])
    assert "--dlt645 and/or --cjt188" in capsys.readouterr().err
