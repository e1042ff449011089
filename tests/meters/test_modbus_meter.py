"""Modbus RTU: an Eastron SDM120 served by pymodbus's own server, read through SerialBus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hearthgate.core.clock import SimulatedClock
from hearthgate.drivers.modbus import MODELS, ModbusOptions, ModbusRTU, RegisterSpec, plan_reads
from hearthgate.simulators.links import PtyLink
from hearthgate.simulators.meter_models import SDM120Meter
from hearthgate.simulators.sdm120 import SDM120Simulator
from tests.meters.conftest import wait_until
from tests.meters.harness import meter_config, running_bus

h = bytes.fromhex


@pytest.fixture
async def sdm(tmp_path: Path, clock: SimulatedClock) -> AsyncIterator[SDM120Simulator]:
    link = PtyLink(tmp_path / "ttyMODBUS")
    meters = [SDM120Meter(unit=1, voltage_v=230.0, power_w=2300.0, import_kwh=1234.5),
              SDM120Meter(unit=7, voltage_v=229.5, power_w=0.0, import_kwh=3.25)]
    sim = SDM120Simulator(link, meters, clock=clock)
    task = asyncio.create_task(sim.run())
    yield sim
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    link.unplug()


SDM_DEVICES = [
    {"id": "power-302", "kind": "power_meter", "protocol": "modbus", "unit": 1,
     "model": "sdm120", "poll": "1m"},
    {"id": "power-303", "kind": "power_meter", "protocol": "modbus", "unit": 7,
     "model": "sdm120", "poll": "1m"},
]


async def test_sdm120_read_through_the_bus(sdm: SDM120Simulator, clock: SimulatedClock) -> None:
    async with running_bus(meter_config(sdm.path, SDM_DEVICES), clock) as rb:
        await wait_until(lambda: rb.last("power-303", "energy_export_kwh") is not None)
        await wait_until(lambda: rb.last("power-302", "energy_export_kwh") is not None)
        assert rb.values("power-302", "voltage_v") == [230.0]
        assert rb.values("power-302", "current_a") == [pytest.approx(10.0)]
        assert rb.values("power-302", "power_w") == [2300.0]
        assert rb.values("power-302", "energy_total_kwh") == [1234.5]
        assert rb.values("power-302", "frequency_hz") == [50.0]
        assert rb.values("power-303", "voltage_v") == [229.5]
        assert rb.values("power-303", "energy_total_kwh") == [3.25]
        assert rb.values("power-302", "alive") == [True]
        await clock.advance(3600)  # an hour at 2.3 kW
        await wait_until(lambda: len(rb.values("power-302", "energy_export_kwh")) >= 2)
        assert rb.values("power-302", "energy_total_kwh")[-1] == pytest.approx(1236.8, abs=0.01)
        assert rb.ctx.error_count() == 0


@pytest.mark.parametrize(
    ("fault", "kind"), [("bad_checksum", "checksum"), ("garbage", None), ("truncated", None)]
)
async def test_sdm120_faults_recovered(
    sdm: SDM120Simulator, clock: SimulatedClock, fault: str, kind: str | None
) -> None:
    meter = sdm.meters[7]
    meter.fault, meter.fault_every, meter.requests = fault, 2, 1  # type: ignore[assignment]
    async with running_bus(meter_config(sdm.path, SDM_DEVICES[1:]), clock) as rb:
        await wait_until(lambda: rb.last("power-303", "energy_export_kwh") is not None)
        assert rb.values("power-303", "voltage_v") == [229.5]
        if kind:
            assert rb.ctx.errors[("power-303", kind)] >= 1
        assert rb.values("power-303", "alive") == [True]


async def test_sdm120_error_reply_and_silence(
    sdm: SDM120Simulator, clock: SimulatedClock
) -> None:
    meter = sdm.meters[7]
    meter.fault = "error_reply"
    async with running_bus(meter_config(sdm.path, SDM_DEVICES[1:]), clock) as rb:
        await wait_until(lambda: rb.values("power-303", "alive") == [False])
        assert rb.ctx.errors[("power-303", "error_reply")] == len(plan_reads(MODELS["sdm120"]))
        meter.fault = "no_answer"
        await clock.advance(60)
        await wait_until(lambda: rb.bus.stats.no_reply >= 1)
        meter.fault = None
        await clock.advance(60)
        await wait_until(lambda: rb.values("power-303", "alive") == [False, True])
        assert rb.values("power-303", "voltage_v") == [229.5]


def test_protocol_examples() -> None:
    rtu = ModbusRTU()
    assert rtu.read_request(1, 4, 0x0000, 2) == h("01 04 00 00 00 02 71 CB")
    assert rtu.read_request(1, 4, 0x0156, 2) == h("01 04 01 56 00 02 90 27")
    found: list[tuple[str, bytes, str]] = []

    def report(kind: str, data: bytes, detail: str) -> None:
        found.append((kind, data, detail))

    spec = RegisterSpec(address=0, function=4, type="float32", metric="voltage_v")
    pdu = rtu.next_reply(bytearray(h("01 04 04 43 66 00 00 0E 1F")), 1, 4, report)
    assert pdu is not None and spec.decode(list(pdu.registers)) == 230.0
    pdu = rtu.next_reply(bytearray(h("01 04 04 44 9A 50 00 F3 5B")), 1, 4, report)
    assert pdu is not None and spec.decode(list(pdu.registers)) == 1234.5
    pdu = rtu.next_reply(bytearray(h("01 84 02 C2 C1")), 1, 4, report)
    assert pdu is not None and pdu.function_code == 0x84 and pdu.exception_code == 2
    assert found == []


def test_reply_scanning_resyncs_and_counts() -> None:
    rtu = ModbusRTU()
    found: list[str] = []

    def report(kind: str, data: bytes, detail: str) -> None:
        found.append(kind)

    good = h("01 04 04 43 66 00 00 0E 1F")
    buf = bytearray(h("FF 13") + good[:-1] + b"\x00" + good)
    pdu = rtu.next_reply(buf, 1, 4, report)
    assert pdu is not None and list(pdu.registers) == [0x4366, 0]
    assert found == ["garbage", "checksum", "garbage"] and not buf
    found.clear()
    assert rtu.next_reply(bytearray(good[:5]), 1, 4, report) is None and found == []
    assert rtu.next_reply(bytearray(h("07 04 04 43 66 00 00 0E 1F")), 1, 4, report) is None
    assert found == ["garbage"]


@pytest.mark.parametrize(
    ("spec", "registers", "value"),
    [
        ({"type": "uint16"}, [1234], 1234.0),
        ({"type": "int16"}, [0xFFFE], -2.0),
        ({"type": "uint32"}, [0x0001, 0x0002], 65538.0),
        ({"type": "uint32", "word_order": "little"}, [0x0002, 0x0001], 65538.0),
        ({"type": "uint32", "byte_order": "little"}, [0x0100, 0x0200], 65538.0),
        ({"type": "int32", "scale": 0.01}, [0xFFFF, 0xFF9C], -1.0),
        ({"type": "float32"}, [0x4366, 0x0000], 230.0),
        ({"type": "float32", "word_order": "little"}, [0x0000, 0x4366], 230.0),
        ({"type": "float64"}, [0x4093, 0x4A00, 0, 0], 1234.5),
        ({"type": "uint64"}, [0, 0, 0, 7], 7.0),
    ],
)
def test_register_decoding(spec: dict, registers: list[int], value: float) -> None:
    register = RegisterSpec.model_validate({"address": 0, "metric": "power_w", **spec})
    assert register.count == len(registers)
    assert register.decode(registers) == pytest.approx(value)
    assert register.encode(value) == registers


def test_register_units_convert() -> None:
    liters = RegisterSpec.model_validate(
        {"address": 10, "type": "uint32", "unit": "L", "metric": "water_total_m3"})
    assert liters.decode([0, 12345]) == pytest.approx(12.345)
    wh = RegisterSpec.model_validate(
        {"address": 10, "type": "uint32", "unit": "Wh", "metric": "energy_total_kwh"})
    assert wh.decode([0, 1500]) == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"unit": 1}, "either model"),
        ({"unit": 1, "model": "sdm120", "registers": [{"address": 0, "metric": "power_w"}]},
         "either model"),
        ({"unit": 0, "model": "sdm120"}, "greater than or equal to 1"),
        ({"unit": 1, "model": "sdm999"}, "sdm120"),
        ({"unit": 1, "registers": [{"address": 0, "metric": "water_flow"}]}, "unknown metric"),
        ({"unit": 1, "registers": [{"address": 0, "metric": "power_w", "unit": "L"}]},
         "does not convert"),
        ({"unit": 1, "registers": [{"address": 0, "metric": "power_w", "type": "int24"}]},
         "int24"),
        ({"unit": 1, "registers": []}, "empty"),
    ],
)
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModbusOptions.model_validate(options)


def test_register_map_from_yaml_plan() -> None:
    opts = ModbusOptions.model_validate({"unit": 3, "registers": [
        {"address": 0x10, "function": 3, "type": "uint32", "unit": "L",
         "metric": "water_total_m3"},
        {"address": 0x12, "function": 3, "type": "uint16", "metric": "battery_pct"},
        {"address": 0x00, "function": 4, "type": "float32", "metric": "water_flow_m3h"},
    ]})
    blocks = plan_reads(opts.register_map)
    assert [(b.function, b.address, b.count) for b in blocks] == [(3, 0x10, 3), (4, 0, 2)]
