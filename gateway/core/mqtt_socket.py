"""Socket options for every MQTT connection the gateway opens (uplink and device buses)."""

from __future__ import annotations

import logging
import socket
from typing import Any

import paho.mqtt.client as mqtt

# Small MQTT packets (an SOS, a PUBACK, an ack's result) go out at once, not after Nagle's
# wait for more data: that wait cost ~40 ms on every round trip.
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)

log = logging.getLogger(__name__)

# Packets read per readable event at most (see `read_in_bursts`).
READ_BURST = 32
# What `read_in_bursts` uses of paho's insides (paho-mqtt 2.1 and 2.2).
PAHO_INSIDES = ("_packet_read", "_loop_rc_handle", "_out_messages", "_in_messages", "_sock")
_warned = False  # a paho without them is said once, not per reconnection


def read_in_bursts(client: Any, packets: int = READ_BURST) -> bool:
    """Make an aiomqtt client read up to `packets` MQTT packets each time its socket is
    readable, instead of paho's one.

    paho's `loop_read` reads one packet per call unless messages of its own are in flight
    (it ignores its `max_packets` argument), and aiomqtt calls it once per readable event:
    once per event-loop turn. A device bus receiving hundreds of messages a second then
    fell behind by whole seconds whenever turns grew long (a drain's publishes, a scan), and
    an SOS waited in the socket behind the readings before it (py-spy and the bench's
    breakdown, docs/performance.md). Reading stops at the first packet not yet complete
    (paho keeps the partial one), so a turn never waits for the network.

    These are paho's private parts: a paho without them keeps its own one-packet reads
    (slower under load, never wrong), said once at warning. Returns whether it is reading
    in bursts.
    """
    paho = getattr(client, "_client", None)  # aiomqtt's paho client: the socket's one reader
    missing = [name for name in PAHO_INSIDES if not hasattr(paho, name)]
    if missing:
        global _warned
        if not _warned:
            _warned = True
            log.warning("this paho-mqtt lacks %s: the device bus reads one packet per turn",
                        ", ".join(missing))
        return False

    def loop_read(max_packets: int = 1) -> mqtt.MQTTErrorCode:
        own = len(paho._out_messages) + len(paho._in_messages)
        for _ in range(max(packets, own, 1)):
            if paho._sock is None:
                return mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = paho._packet_read()
            if rc > 0:
                return paho._loop_rc_handle(rc)
            if rc == mqtt.MQTTErrorCode.MQTT_ERR_AGAIN:
                break
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    paho.loop_read = loop_read
    return True
