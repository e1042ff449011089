"""A replaced water meter, from the driver's plausibility check to the rules.

The meter's total jumps when it is swapped. `CumulativeSense` (the drivers' meter
sense) holds the odd reading, confirms it with the next and marks it as a new
baseline; the water rules must not read that jump as water used.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hearthgate.drivers.meter_sense import CumulativeSense
from tests.rules.support import Harness, make_config

START = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)  # 08:00 in Asia/Shanghai
POLL = 1800.0


@pytest.mark.parametrize("new_meter_total", [0.01, 900.0])
def test_swapped_meter_is_not_water_use(new_meter_total: float) -> None:
    config = make_config(
        [{"type": "no_water", "window": "12h"}, {"type": "continuous_water", "window": "2h"}],
        devices=[{"id": "water-1", "kind": "water_meter", "poll": "30m"}],
    )
    h = Harness(config, START)
    sense = CumulativeSense("water-1", max_rate_per_hour=5.0, slack=0.01)

    def poll(total: float) -> None:
        result = sense.accept(total, h.clock.now().mono)
        if result.emit:
            h.obs("water-1", "water_total_m3", result.value, **result.attrs)

    total = 523.40
    for _ in range(4):  # a morning of washing and cooking
        total += 0.02
        poll(total)
        h.advance(POLL)
    # The meter is swapped: every later reading is the new meter's, and nobody uses water.
    for _ in range(40):  # 20 hours
        poll(new_meter_total)
        h.advance(POLL)

    types = [(t.type, str(t.state)) for t in h.out]
    assert ("no_water", "raised") in types, types
    assert ("continuous_water", "raised") not in types, types
    no_water = next(t for t in h.out if t.type == "no_water")
    # Raised within the window plus one poll of the last real use. Had the swap counted as
    # use, it would come two polls (an hour) later.
    last_use = START.timestamp() + 3 * POLL
    assert 12 * 3600 <= no_water.raised_at.timestamp() - last_use <= 12 * 3600 + POLL
