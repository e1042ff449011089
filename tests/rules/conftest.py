"""Fixtures for the rules tests (helpers live in tests/rules/support.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tests.rules.support import Harness, local, make_config


@pytest.fixture
def harness() -> Callable[..., Harness]:
    def build(rules: list[dict[str, Any]], start: datetime | None = None, **kw: Any) -> Harness:
        tz = kw.get("timezone", "Asia/Shanghai")
        return Harness(make_config(rules, **kw), start or local(tz, 2026, 11, 22, 8, 0))

    return build
