"""`hearthgate simulate KIND`: the dispatch to each simulator family's command line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from hearthgate.cli import main as cli_main
from hearthgate.devkit.testkit import REPO
from hearthgate.drivers import dlt645_codec
from hearthgate.drivers.serial_bus import SerialBus, SerialBusOptions
from hearthgate.simulate import SIMULATORS, entry_point, run_simulator


def test_unknown_kind_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_simulator("gasmeter", ["--port", "x"]) == 2
    err = capsys.readouterr().err
    assert "unknown kind 'gasmeter'" in err
    for kind in ("dlt645", "cjt188", "sdm120", "rflink", "osdp", "zigbee2mqtt"):
        assert kind in err
    assert cli_main(["simulate", "gasmeter"]) == 2


def test_help_lists_the_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_simulator("help", []) == 0
    out = capsys.readouterr().out
    assert all(f"  {kind} " in out for kind in SIMULATORS)


@pytest.mark.parametrize("kind", sorted(SIMULATORS))
def test_every_kind_reaches_its_own_command_line(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert callable(entry_point(kind))
    assert run_simulator(kind, ["--help"]) == 0
    assert f"hearthgate simulate {kind}" in capsys.readouterr().out
    # Bad options are the simulator's usage errors, not a traceback.
    assert run_simulator(kind, ["--no-such-option"]) == 2
    assert "--no-such-option" in capsys.readouterr().err


async def test_a_meter_simulator_through_the_cli_answers_real_frames(tmp_path: Path) -> None:
    link = tmp_path / "ttyDLT"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hearthgate", "simulate", "dlt645", "--link", str(link),
        "--meter", "000000005678=321.09", "--duration", "20",
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        assert f"dlt645 simulator on {link}" in line.decode()
        bus = SerialBus("bench", SerialBusOptions(port=str(link), parity="N", timeout=1.0))
        task = asyncio.create_task(bus.run())
        try:
            async with asyncio.timeout(5):
                while not bus.is_open:
                    await asyncio.sleep(0.01)
            frame = await bus.exchange(
                dlt645_codec.read_request("000000005678", 0x00010000),
                dlt645_codec.DLT645StreamDecoder().take,
            )
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        reply = dlt645_codec.decode_reply(frame)
        assert isinstance(reply, dlt645_codec.ReadReply)
        assert reply.value == Decimal("321.09")
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
