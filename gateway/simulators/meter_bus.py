"""DL/T 645 and CJ/T 188 meters sharing one simulated RS-485 line.

`MeterBusSimulator(link, meters=[DLT645Meter(...), CJT188Meter(...)])` answers any mix of
them through the same codecs the drivers use; `await sim.run()` serves until cancelled.
Faults are each meter's (`meter_models`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Any

from hearthgate.core.clock import Clock, SystemClock
from hearthgate.core.codec import NEED_MORE, CodecError
from hearthgate.drivers import cjt188_codec, dlt645_codec
from hearthgate.simulators.links import Link
from hearthgate.simulators.meter_models import CJT188Meter, DLT645Meter, SimulatedMeter

log = logging.getLogger("hearthgate.simulate")


def _other_address(address: str) -> str:
    return address[:-1] + ("1" if address[-1] != "1" else "2")


def _corrupt(reply: bytes) -> bytes:
    return reply[:-2] + bytes([(reply[-2] + 1) & 0xFF]) + reply[-1:]


class MeterBusSimulator:
    """DL/T 645 and CJ/T 188 meters sharing one simulated RS-485 line.

    Reads requests from `link` and answers for the meter they address, as the real meter
    would (silence for a request it cannot serve), with that meter's faults applied.

    Args:
        link: The line the gateway's driver opens (a pseudo-terminal or a serial port).
        meters: The meters on the line, `DLT645Meter`s and `CJT188Meter`s in any mix.
        clock: The clock consumption runs on (default: the system clock; a
            `ScaledClock` makes hours pass in seconds).
        reply_delay: Seconds every reply is held back.
        rng: The randomness of `garbage` faults (default: a fixed seed).
        line_baud: If set, replies are also held back by the time request and reply
            would take on a real wire at this speed.
    """

    def __init__(
        self, link: Link, meters: Sequence[SimulatedMeter], *, clock: Clock | None = None,
        reply_delay: float = 0.0, rng: random.Random | None = None,
        line_baud: int | None = None,
    ) -> None:
        self.link = link
        # With `line_baud`, a reply is held back by the time the request and the reply would
        # take on a real wire (10 bits a byte), since a pseudo-terminal delivers at once.
        self.line_baud = line_baud
        self.meters = list(meters)
        self.clock: Clock = clock or SystemClock()
        self.reply_delay = reply_delay
        self.rng = rng or random.Random(645188)
        self.bad_requests = 0
        self.replies = 0
        self._buf = bytearray()
        self._decoders = (dlt645_codec.DLT645StreamDecoder(), cjt188_codec.CJT188StreamDecoder())
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def path(self) -> str:
        return self.link.path

    def dlt645(self) -> list[DLT645Meter]:
        return [m for m in self.meters if isinstance(m, DLT645Meter)]

    def cjt188(self) -> list[CJT188Meter]:
        return [m for m in self.meters if isinstance(m, CJT188Meter)]

    async def run(self) -> None:
        try:
            while True:
                self._buf += await self.link.read()
                for reply, delay in self._take_requests():
                    await self._send(reply, delay)
        finally:
            for task in self._pending:
                task.cancel()

    async def _send(self, reply: bytes, delay: float) -> None:
        delay += self.reply_delay
        if delay <= 0:
            self.link.write(reply)
            return
        # A slow meter must not stall the line for the others' (later) requests.
        task = asyncio.create_task(self._send_later(reply, delay))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send_later(self, reply: bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        self.link.write(reply)

    def _wire_time(self, nbytes: int) -> float:
        return nbytes * 10 / self.line_baud if self.line_baud else 0.0

    def _take_requests(self) -> list[tuple[bytes, float]]:
        out: list[tuple[bytes, float]] = []
        buf = self._buf
        while True:
            preamble = 0
            while buf and buf[0] == 0xFE:
                del buf[0]
                preamble += 1
            if not buf:
                return out
            if buf[0] != 0x68:
                cut = buf.find(0x68)
                del buf[: cut if cut >= 0 else len(buf)]
                self.bad_requests += 1
                continue
            # Both standards start a frame with 68: ask each what the bytes are.
            head = bytes(buf)
            results = [decoder.decode(head) for decoder in self._decoders]
            frames = [(used, item) for used, item in results
                      if item is not None and not isinstance(item, CodecError)]
            if frames:
                used, frame = frames[0]
                del buf[:used]
                reply = self._answer(frame)
                if reply is not None:
                    data, delay = reply
                    out.append((data, delay + self._wire_time(preamble + used + len(data))))
                continue
            if any(result == NEED_MORE for result in results) and len(buf) < 300:
                return out
            del buf[0]
            self.bad_requests += 1

    def _answer(self, frame: Any) -> tuple[bytes, float] | None:
        now = self.clock.now().mono
        for meter in self.meters:
            meter.settle(now)
        try:
            if isinstance(frame, dlt645_codec.DLT645Frame):
                return self._answer_dlt645(frame)
            return self._answer_cjt188(frame)
        except ValueError as exc:  # a request we cannot serve: a real meter stays silent
            log.debug("ignoring request: %s", exc)
            self.bad_requests += 1
            return None

    def _apply_fault(self, meter: SimulatedMeter, reply: bytes, error: bytes,
                     other: bytes) -> tuple[bytes, float] | None:
        fault = meter.next_fault()
        self.replies += 1
        if fault is None:
            return reply, 0.0
        if fault == "no_answer":
            return None
        if fault == "bad_checksum":
            return _corrupt(reply), 0.0
        if fault == "garbage":
            noise = bytes(self.rng.randrange(0, 0xFE) for _ in range(self.rng.randint(1, 12)))
            return noise + reply + noise[:3], 0.0
        if fault == "slow":
            return reply, meter.slow_seconds
        if fault == "error_reply":
            return error, 0.0
        if fault == "wrong_address":
            return other, 0.0
        return reply[: len(reply) // 2], 0.0  # truncated

    def _answer_dlt645(self, frame: dlt645_codec.DLT645Frame) -> tuple[bytes, float] | None:
        function, di = dlt645_codec.decode_request(frame)
        meters = self.dlt645()
        if frame.address == dlt645_codec.BROADCAST_ADDRESS:
            return None
        if function == dlt645_codec.READ_ADDRESS:
            if len(meters) != 1:
                return None  # several meters answering at once would collide on the line
            meter = meters[0]
            reply = dlt645_codec.encode_address_reply(meter.address)
            error = dlt645_codec.encode_error_reply(meter.address, 0x01, dlt645_codec.READ_ADDRESS)
            other = dlt645_codec.encode_address_reply(_other_address(meter.address))
            return self._apply_fault(meter, reply, error, other)
        wanted = frame.address
        meter = next((m for m in meters if _matches(wanted, m.address)), None)
        if meter is None or di is None:
            return None
        value = meter.value(di)
        error = dlt645_codec.encode_error_reply(meter.address, 0x02)
        if value is None:
            reply = error
            other = dlt645_codec.encode_error_reply(_other_address(meter.address), 0x02)
        else:
            reply = dlt645_codec.encode_read_reply(meter.address, di, value)
            other = dlt645_codec.encode_read_reply(_other_address(meter.address), di, value)
        return self._apply_fault(meter, reply, error, other)

    def _answer_cjt188(self, frame: cjt188_codec.CJT188Frame) -> tuple[bytes, float] | None:
        request = cjt188_codec.decode_request(frame)
        meters = self.cjt188()
        if request.address == cjt188_codec.ANY_ADDRESS:
            if len(meters) != 1:
                return None
            meter = meters[0]
        else:
            meter = next((m for m in meters if _matches(request.address, m.address)), None)
            if meter is None:
                return None
        if request.meter_type not in (meter.meter_type, cjt188_codec.ANY_TYPE):
            return None
        t, addr, ser = meter.meter_type, meter.address, request.ser
        error = cjt188_codec.encode_error_reply(t, addr, ser, b"\x01\x00",
                                                function=request.function)
        if request.function == cjt188_codec.READ_ADDRESS:
            reply = cjt188_codec.encode_address_reply(t, addr, ser)
            other = cjt188_codec.encode_address_reply(t, _other_address(addr), ser)
        elif request.function == cjt188_codec.READ and request.di == cjt188_codec.DI_CURRENT_FLOW:
            reading = meter.reading(ser)
            reply = cjt188_codec.encode_flow_reply(t, addr, reading, di_order=meter.di_order)
            other = cjt188_codec.encode_flow_reply(t, _other_address(addr), reading,
                                                   di_order=meter.di_order)
        elif request.function == cjt188_codec.WRITE and request.di == cjt188_codec.DI_VALVE:
            if request.payload[:1] == bytes([cjt188_codec.VALVE_OPEN]):
                meter.valve = "open"
            elif request.payload[:1] == bytes([cjt188_codec.VALVE_CLOSE]):
                meter.valve = "closed"
            data = cjt188_codec.encode_di(cjt188_codec.DI_VALVE, request.di_order) + bytes([ser])
            reply = cjt188_codec.encode_frame(cjt188_codec.CJT188Frame(
                t, addr, cjt188_codec.WRITE | cjt188_codec.FLAG_REPLY, data + b"\0\0"))
            other = error
        else:
            reply = other = error
        return self._apply_fault(meter, reply, error, other)


def _matches(wanted: str, address: str) -> bool:
    """Address match with `A` wildcard nibbles (DL/T 645 and CJ/T 188 both use them)."""
    return all(w == "A" or w == a for w, a in zip(wanted, address, strict=True))
