"""Eastron SDM120 meters served by pymodbus's own `ModbusSerialServer` (SimDevice/SimData).

`SDM120Simulator(link, meters=[SDM120Meter(unit=1)])` serves them on a second
pseudo-terminal cross-connected to `link` (a null modem), so faults can be injected on the
way back. pymodbus is imported only when a simulator runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from typing import Any

from hearthgate.core.clock import Clock, SystemClock
from hearthgate.simulators.links import Link, PtyLink
from hearthgate.simulators.meter_models import SDM120Meter


class SDM120Simulator:
    """SDM120 meters answered by pymodbus's `ModbusSerialServer` behind a null modem.

    The server opens the slave of a private pseudo-terminal; its master is cross-connected
    with `link` (the line the gateway opens). Replies pass through `_replies`, where faults
    are applied, since the server itself cannot be made to misbehave.

    Args:
        link: The line the gateway's driver opens.
        meters: The meters on the line, one per Modbus unit id.
        clock: The clock consumption runs on (default: the system clock).
        rng: The randomness of `garbage` faults (default: a fixed seed).
    """

    def __init__(self, link: Link, meters: Sequence[SDM120Meter], *, clock: Clock | None = None,
                 rng: random.Random | None = None) -> None:
        self.link = link
        self.meters = {m.unit: m for m in meters}
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random(120)

    @property
    def path(self) -> str:
        return self.link.path

    def _device(self, meter: SDM120Meter) -> Any:
        from pymodbus.simulator import DataType, SimData, SimDevice

        async def refresh(function_code: int, start_address: int, address: int, count: int,
                          registers: list[int], set_values: Any) -> None:
            meter.settle(self.clock.now().mono)
            for reg, value in meter.registers().items():
                if address <= reg < address + count or address <= reg + 1 < address + count:
                    words = _float_words(value)
                    registers[reg - start_address] = words[0]
                    registers[reg + 1 - start_address] = words[1]
            return None

        data = [SimData(reg, values=float(value), datatype=DataType.FLOAT32)
                for reg, value in sorted(meter.registers().items())]
        return SimDevice(id=meter.unit, simdata=data, action=refresh)

    async def run(self) -> None:
        from pymodbus.server import ModbusSerialServer

        inner = PtyLink()
        server = ModbusSerialServer(
            [self._device(m) for m in self.meters.values()], port=inner.slave_name,
            baudrate=9600, parity="N",
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._requests(inner))
                group.create_task(self._replies(inner))
                group.create_task(server.serve_forever())
        finally:
            with contextlib.suppress(Exception):
                await server.shutdown()
            inner.unplug()

    async def _requests(self, inner: PtyLink) -> None:
        while True:
            inner.write(await self.link.read())

    async def _replies(self, inner: PtyLink) -> None:
        while True:
            data = await inner.read()
            meter = self.meters.get(data[0]) if data else None
            fault = meter.next_fault() if meter is not None else None
            if fault is None or meter is None:
                self.link.write(data)
            elif fault == "no_answer":
                continue
            elif fault == "bad_checksum":
                self.link.write(data[:-1] + bytes([data[-1] ^ 0xFF]))
            elif fault == "garbage":
                noise = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 8)))
                self.link.write(noise + data)
            elif fault == "slow":
                await asyncio.sleep(meter.slow_seconds)
                self.link.write(data)
            elif fault == "error_reply":
                self.link.write(_modbus_exception(data[0], data[1], 0x04))
            elif fault == "wrong_address":
                self.link.write(_modbus_recrc(bytes([(data[0] % 247) + 1]) + data[1:-2]))
            else:
                self.link.write(data[: len(data) // 2])


def _float_words(value: float) -> tuple[int, int]:
    import struct

    raw = struct.pack(">f", value)
    return int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big")


def _modbus_recrc(body: bytes) -> bytes:
    from pymodbus.framer import FramerRTU

    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


def _modbus_exception(unit: int, function: int, code: int) -> bytes:
    return _modbus_recrc(bytes([unit, function | 0x80, code]))
