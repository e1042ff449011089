"""Fixtures for the other-broker tests: one RabbitMQ for the whole session (it takes
~10-15 s to start), skipped with the reason when Debian's package is not installed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hearthgate.devkit.local_broker import BrokerUnavailable
from hearthgate.devkit.rabbitmq import RabbitMqBroker, rabbitmq_server_script

# The home's zigbee2mqtt broker and a zigbee2mqtt stand-in on it, as the spine tests have them.
from tests.spine.conftest import zigbee  # noqa: F401


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMqBroker]:
    if rabbitmq_server_script() is None:
        pytest.skip("RabbitMQ is not installed: `make test` installs it (apt-get install"
                    " rabbitmq-server); on a machine without apt, install it by hand")
    try:
        broker = RabbitMqBroker().start()
    except BrokerUnavailable as exc:
        pytest.fail(f"RabbitMQ is installed but did not start: {exc}")
    try:
        yield broker
    finally:
        broker.close()
