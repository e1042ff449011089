"""`read_in_bursts` patches paho's reader only where paho has the parts it uses: another
paho-mqtt keeps its own reads (slower under load, never wrong) and the log says so once."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import aiomqtt
import pytest

from hearthgate.core import mqtt_socket
from hearthgate.core.mqtt_socket import read_in_bursts


async def test_the_installed_paho_reads_in_bursts() -> None:
    client = aiomqtt.Client("127.0.0.1", port=1)  # never connected: only its paho is used
    own = client._client.loop_read
    assert read_in_bursts(client) is True
    assert client._client.loop_read is not own


def test_a_paho_without_those_parts_keeps_its_own_reads(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mqtt_socket, "_warned", False)
    own = object()
    paho = SimpleNamespace(loop_read=own, _sock=None, _out_messages={}, _in_messages={})
    client = SimpleNamespace(_client=paho)
    with caplog.at_level(logging.WARNING, logger="hearthgate.core.mqtt_socket"):
        assert read_in_bursts(client) is False
        assert read_in_bursts(client) is False
    assert paho.loop_read is own
    [record] = caplog.records
    assert "_packet_read, _loop_rc_handle" in record.getMessage()
    assert read_in_bursts(SimpleNamespace()) is False  # not even a paho client
