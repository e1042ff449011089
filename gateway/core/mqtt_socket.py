"""Socket options for every MQTT connection the gateway opens (uplink and device buses)."""

from __future__ import annotations

import socket

# Small MQTT packets (an SOS, a PUBACK, an ack's result) go out at once, not after Nagle's
# wait for more data: that wait cost ~40 ms on every round trip.
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
