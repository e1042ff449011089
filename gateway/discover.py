"""`hearthgate discover -c FILE`: the devices zigbee2mqtt has paired that the config lacks.

Reads zigbee2mqtt's retained `<base>/bridge/devices` on each `mqtt` bus of the config and
prints, on stdout, a `devices:` entry for each paired device whose topic the config does
not name yet, to paste under `devices:` once each `site:` is filled in. What went wrong
with a bus (no broker, no bridge message, a message that is not zigbee2mqtt's) goes to
stderr, one line each, and the other buses are still read.

The I/O is at the edges (`read_bridges`, `run_discover`); choosing the entries
(`propose`) and writing them (`render`) are pure, so they are tested without a broker.
Exit: 0 when at least one bus was read (even if nothing is new); 1 when none could be;
2 for a config that does not load.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import aiomqtt

from hearthgate.config import ConfigError, GatewayConfig, load
from hearthgate.core.options import ID_PATTERN
from hearthgate.drivers.mqtt_bus import MqttBusOptions
from hearthgate.drivers.zigbee2mqtt import Zigbee2MqttOptions, bridge_topic
from hearthgate.drivers.zigbee2mqtt_bridge import (
    KIND_PROPERTIES,
    BridgeDevice,
    BridgeDevices,
    BridgeError,
    parse_bridge_devices,
)

EXIT_OK, EXIT_NOTHING_READ, EXIT_CONFIG = 0, 1, 2
DEFAULT_BASE = "zigbee2mqtt"  # zigbee2mqtt's default mqtt.base_topic
DEFAULT_TIMEOUT = 5.0

_ID_RE = re.compile(ID_PATTERN)
# A device id's prefix when its friendly name gives none (a Chinese name, an IEEE address).
_KIND_PREFIX = {"sos_button": "sos", "motion_sensor": "pir", "presence_sensor": "radar",
                "door_contact": "door", "fall_sensor": "fall", "smoke_sensor": "smoke",
                "gas_sensor": "gas", "co_sensor": "co", "leak_sensor": "leak"}
# Kinds a guess already covers: a fall radar also reports presence and movement, a
# presence radar movement. Any other kind that also fits is worth a comment.
_IMPLIED = {"fall_sensor": {"presence_sensor", "motion_sensor"},
            "presence_sensor": {"motion_sensor"}}
# Scalars YAML would read as something other than text (YAML 1.1 and 1.2 booleans, null).
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
_SOS_WORDS = re.compile(r"\b(sos|emergency|panic)\b")
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_./-]*$")


@dataclass(frozen=True)
class Proposal:
    """One paired device the config lacks, as an entry to paste (or why it is left out).

    Args:
        device: what bridge/devices says about it.
        bus, topic: the config's bus it was read on, and its state topic.
        id, kind: the entry's id and kind; kind None: nothing the gateway watches fits,
            and the entry is printed commented out.
        notes: comments for the installer (an uncertain guess, what to check).
    """

    device: BridgeDevice
    bus: str
    topic: str
    id: str
    kind: str | None
    notes: tuple[str, ...] = ()


@dataclass
class BusReport:
    """What one bus gave: the proposals, how many paired devices the config already has."""

    bus: str
    base: str
    paired: int = 0
    configured: int = 0
    proposals: list[Proposal] = field(default_factory=list)


def is_sos_model(device: BridgeDevice) -> bool:
    """Whether zigbee2mqtt describes the device as an SOS button, not just a button."""
    words = " ".join([device.description or "", *device.actions]).lower()
    return "sos" in device.properties or bool(_SOS_WORDS.search(words))


def kind_notes(device: BridgeDevice, kind: str | None) -> tuple[str, ...]:
    """Comments on a guessed kind: when it may be wrong, and when nothing fits."""
    if kind is None:
        shown = sorted(p for p in device.properties if p != "linkquality")[:8]
        return (f"exposes nothing the gateway watches ({', '.join(shown) or 'no exposes'}):"
                " a light, a plug or a thermometer is not a care sensor; left out",)
    notes: list[str] = []
    if kind == "sos_button" and not is_sos_model(device):
        notes.append("an ordinary button, not an SOS button by make: keep"
                     " sos_button if it is handed out as one (every press raises sos)")
    fits = {k for k, needed in KIND_PROPERTIES.items() if needed & device.properties}
    others = sorted(fits - {kind} - _IMPLIED.get(kind, set()) - {"presence_sensor"})
    if others:
        notes.append(f"it also reports what a {' / '.join(others)} does: check what it"
                     " is used for")
    return tuple(notes)


def derive_id(friendly_name: str, kind: str | None, ieee: str, taken: set[str]) -> str:
    """A device id (per the config's id pattern) from the friendly name, not in `taken`."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", friendly_name.lower()).strip("-_")
    if not slug or not slug[0].isalnum():
        # Nothing usable in the name (Chinese, symbols): the kind and the IEEE address.
        tail = re.sub(r"[^0-9a-f]", "", ieee.lower())[-6:] or "0"
        slug = f"{_KIND_PREFIX.get(kind or '', 'zigbee')}-{tail}"
    slug = slug[:64]
    candidate, n = slug, 2
    while candidate in taken or not _ID_RE.match(candidate):
        suffix = f"-{n}"
        candidate = slug[: 64 - len(suffix)] + suffix
        n += 1
    taken.add(candidate)
    return candidate


def propose(bus: str, base: str, listed: BridgeDevices, configured_topics: set[str],
            taken_ids: set[str]) -> BusReport:
    """The entries for one bus's bridge/devices, skipping the Coordinator and every device
    whose topic the config already names. `taken_ids` grows with the ids handed out."""
    report = BusReport(bus, base)
    for device in listed.devices.values():
        if device.device_type == "Coordinator":
            continue
        report.paired += 1
        topic = f"{base}/{device.friendly_name}"
        if topic in configured_topics:
            report.configured += 1
            continue
        kind = device.guess_kind()
        notes = kind_notes(device, kind)
        if device.model is None:
            kind = None
            notes = ("zigbee2mqtt has no definition for it (not interviewed, or a model it"
                     " does not support): pair it again, or see docs/devices.md `mapping:`",)
        elif any(c in device.friendly_name for c in "+#") or topic.endswith("/"):
            kind = None
            notes = ("its friendly name cannot be an MQTT topic: rename it in zigbee2mqtt",)
        ident = derive_id(device.friendly_name, kind, device.ieee_address, taken_ids)
        report.proposals.append(Proposal(device, bus, topic, ident, kind, notes))
    return report


def _scalar(value: str) -> str:
    """`value` as a YAML scalar that reads back as the same text."""
    if _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
        return value
    # A JSON string is a YAML double-quoted scalar (UTF-8 kept, controls escaped).
    return json.dumps(value, ensure_ascii=False)


def _comment(text: str) -> str:
    return " ".join(text.split())  # one line: a newline in a name must not end the comment


def render(reports: Sequence[BusReport], sites: Iterable[str]) -> str:
    """The entries as YAML, indented to paste under `devices:`; empty when nothing is new."""
    names = list(sites)
    site_list = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    site_hint = f"one of: {site_list}" if site_list else "a site of the config's `sites:`"
    lines: list[str] = []
    for report in reports:
        for p in report.proposals:
            d = p.device
            entry = [
                f"- id: {_scalar(p.id)}",
                f"  site:    # FILL IN: the site this device is in ({site_hint})",
                f"  kind: {p.kind}" if p.kind else "  kind: ?",
                "  protocol: zigbee2mqtt",
                f"  bus: {_scalar(p.bus)}",
                f"  topic: {_scalar(p.topic)}",
            ]
            if d.model is not None:
                entry.append(f"  model: {_scalar(d.model)}")
            if p.id != d.friendly_name:
                entry.append(f"  name: {_scalar(d.friendly_name)}")
            what = " ".join(x for x in (d.vendor, d.model or "(no model)") if x)
            if d.description:
                what += f" ({d.description})"
            head = f"# {_comment(d.friendly_name)}: {_comment(what)}, {d.ieee_address}"
            lines.append(f"  {head}")
            for note in p.notes:
                lines.append(f"  # {_comment(note)}")
            # Left-out devices are printed commented, so the paste stays valid either way.
            prefix = "  " if p.kind else "  # "
            lines += [prefix + line for line in entry]
    return "\n".join(lines) + ("\n" if lines else "")


def summary(report: BusReport) -> str:
    new = sum(1 for p in report.proposals if p.kind)
    left = len(report.proposals) - new
    text = (f"bus '{report.bus}' ({report.base}/bridge/devices): {report.paired} paired,"
            f" {report.configured} already in the config, {new} new")
    return text + (f", {left} left out (commented)" if left else "")


# -- I/O ----------------------------------------------------------------------------


class BridgeUnread(Exception):
    """A bus whose bridge/devices could not be read, and why (for the installer)."""


def bases_by_bus(config: GatewayConfig, override: str | None = None) -> dict[str, list[str]]:
    """Each mqtt bus's zigbee2mqtt base topics: those of its configured devices, else the
    default; `override` replaces them (a zigbee2mqtt with another `mqtt.base_topic`)."""
    out: dict[str, list[str]] = {}
    for bus in config.buses:
        if bus.type != "mqtt":
            continue
        bases = sorted({bridge_topic(d.options.topic) for d in config.devices
                        if d.bus == bus.id and isinstance(d.options, Zigbee2MqttOptions)})
        out[bus.id] = [override] if override else (bases or [DEFAULT_BASE])
    return out


async def read_bridges(options: MqttBusOptions, bases: Sequence[str], timeout: float
                       ) -> dict[str, bytes | None]:
    """The retained bridge/devices of each base topic (None: none within `timeout`).

    Raises BridgeUnread when the broker cannot be reached or refuses us."""
    topics = {f"{base}/bridge/devices": base for base in bases}
    got: dict[str, bytes | None] = dict.fromkeys(bases)
    connected = False
    try:
        async with asyncio.timeout(timeout):
            # No client id of the bus's own: the broker would cut the running gateway off.
            async with aiomqtt.Client(
                options.host, options.port, username=options.username,
                password=(options.password.get_secret_value() if options.password else None),
                timeout=timeout,
            ) as client:
                connected = True
                for topic in topics:
                    await client.subscribe(topic, qos=1)
                async for message in client.messages:
                    base = topics.get(str(message.topic))
                    payload = message.payload
                    if base is None or not isinstance(payload, bytes | bytearray) \
                            or not payload:
                        continue
                    got[base] = bytes(payload)
                    if all(v is not None for v in got.values()):
                        break
    except TimeoutError as exc:
        if not connected:
            raise BridgeUnread(f"no answer from the broker at {options.host}:{options.port}"
                               f" within {timeout:g}s") from exc
        # Connected: what arrived in time is kept; the rest is reported as absent.
    except aiomqtt.MqttError as exc:
        raise BridgeUnread(f"cannot reach the broker at {options.host}:{options.port}:"
                           f" {exc}") from exc
    except OSError as exc:
        raise BridgeUnread(f"cannot reach the broker at {options.host}:{options.port}:"
                           f" {exc.strerror or exc}") from exc
    return got


async def _discover(config: GatewayConfig, timeout: float, base: str | None, err: TextIO
                    ) -> list[BusReport] | None:
    by_bus = bases_by_bus(config, base)
    if not by_bus:
        print(f"{config.source}: no `mqtt` bus in the config: zigbee2mqtt publishes to one"
              " (docs/devices.md)", file=err)
        return None

    async def one(bus_id: str) -> dict[str, bytes | None] | BridgeUnread:
        options = config.bus(bus_id).options
        assert isinstance(options, MqttBusOptions)
        try:
            return await read_bridges(options, by_bus[bus_id], timeout)
        except BridgeUnread as exc:
            return exc

    results = await asyncio.gather(*(one(b) for b in by_bus))
    configured = {d.options.topic for d in config.devices
                  if isinstance(d.options, Zigbee2MqttOptions)}
    taken = {d.id for d in config.devices}
    reports: list[BusReport] = []
    for bus_id, result in zip(by_bus, results, strict=True):
        if isinstance(result, BridgeUnread):
            print(f"bus '{bus_id}': {result}", file=err)
            continue
        for bridge, payload in result.items():
            where = f"bus '{bus_id}': {bridge}/bridge/devices"
            if payload is None:
                print(f"{where}: no retained message within {timeout:g}s (is zigbee2mqtt"
                      f" running, with mqtt.base_topic '{bridge}'? --base-topic names"
                      " another)", file=err)
                continue
            try:
                listed = parse_bridge_devices(payload)
            except BridgeError as exc:
                print(f"{where}: not zigbee2mqtt's device list: {exc}", file=err)
                continue
            for reason in listed.skipped[:8]:
                print(f"{where}: skipped {reason}", file=err)
            if len(listed.skipped) > 8:
                print(f"{where}: and {len(listed.skipped) - 8} more entries skipped",
                      file=err)
            reports.append(propose(bus_id, bridge, listed, configured, taken))
    return reports


def run_discover(path: Path, *, timeout: float = DEFAULT_TIMEOUT, base: str | None = None,
                 out: TextIO | None = None, err: TextIO | None = None) -> int:
    # Looked up now, not at import: whoever replaced sys.stdout (a test, a pipe) gets it.
    out, err = out or sys.stdout, err or sys.stderr
    try:
        config = load(Path(path)).config
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem.format(), file=err)
        return EXIT_CONFIG
    reports = asyncio.run(_discover(config, timeout, base, err))
    if not reports:
        return EXIT_NOTHING_READ
    for report in reports:
        print(summary(report), file=err)
    text = render(reports, (s.id for s in config.sites))
    if text:
        print("# Paste under `devices:` and fill in each `site:`; then: hearthgate check -c"
              f" {path}", file=out)
        out.write(text)
    return EXIT_OK


__all__ = ["BusReport", "Proposal", "propose", "render", "run_discover"]
