"""An RFLink 433 MHz receiver, simulated: prints the lines a real one prints when buttons,
PIRs and door contacts send, each press repeated the way the radio repeats it.

Writes to a `Link` (a pseudo-terminal in tests and the demo, a real port for bench
checks); acts out scenario actions for the `rflink` devices it is given.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hearthgate.drivers.rflink_codec import RFLinkMatch, RFLinkPacket, encode_line
from hearthgate.simulators.links import Link
from hearthgate.simulators.scenario import ScenarioAction, ScenarioDevice

BANNER = b"20;00;Nodo RadioFrequencyLink - RFLink Gateway V1.1 - R46;\r\n"
# What each scenario action looks like on the air (CMD=…).
ACTION_COMMANDS = {
    "press": "ON",
    "motion": "ON",
    "door_open": "ON",
    "door_close": "OFF",
    "no_motion": "OFF",
}


class RFLinkReceiverSimulator:
    def __init__(
        self,
        link: Link,
        devices: dict[str, ScenarioDevice] | dict[str, str],
        *,
        repeats: int = 4,
        repeat_gap: float = 0.02,
    ) -> None:
        self.link = link
        self.devices: dict[str, RFLinkMatch] = {}
        for device_id, dev in devices.items():
            match = dev if isinstance(dev, str) else dev.options.get("match")
            if match:
                self.devices[device_id] = RFLinkMatch.parse(str(match))
        self.repeats = repeats
        # Real time between repeats: the radio's timing, not the scenario's.
        self.repeat_gap = repeat_gap
        self._counter = 0
        self.lines_sent = 0
        self.transmitting = False  # inside a press's repeats (tests wait for the air to clear)

    def banner(self) -> None:
        self.link.write(BANNER)

    def handles(self, device: str) -> bool:
        return device in self.devices

    async def perform(self, action: ScenarioAction) -> None:
        match = self.devices[action.device]
        if action.do == "battery":
            low = float(action.step.value or 0) < 20
            await self.transmit(match, "", repeats=1, extra={"BAT": "LOW" if low else "OK"})
            return
        cmd = ACTION_COMMANDS.get(action.do)
        if cmd is None:
            return  # silent/online/...: a 433 MHz device simply sends nothing
        await self.transmit(match, cmd, repeats=action.step.repeats)

    async def transmit(
        self,
        match: RFLinkMatch,
        cmd: str,
        *,
        repeats: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Send one press: the same packet `repeats` times, as the button's radio does."""
        fields = {"ID": f"{match.id:06X}", "SWITCH": match.switch or "1"}
        if cmd:
            fields["CMD"] = match.cmd or cmd
        fields.update({k: str(v) for k, v in (extra or {}).items()})
        self.transmitting = True
        try:
            for i in range(repeats or self.repeats):
                if i:
                    await asyncio.sleep(self.repeat_gap)
                self._counter = (self._counter + 1) & 0xFF
                self.link.write(encode_line(RFLinkPacket(self._counter, match.protocol, fields)))
                self.lines_sent += 1
        finally:
            self.transmitting = False
