"""Issue 16's scenario suite: simulated residents, four incidents, minutes to the first alert.

Residents with their own routines (tests/rules/residents.py: early and late risers, a
napper, night-time bathroom visits, visitors, nights away, illness …), each for weeks of
ordinary days through the real rule engine with the shipped `living_alone` profile, in
simulated time. On chosen days after learning, an incident on a copy of the day: a fall in
the bathroom on a night-time visit at 02:30, not getting up in the morning (measured from
when they would have got out of bed), a fall in the living room at 16:00; and, beyond issue
16's three, a day ill in bed but alive (`ill_in_bed`: missed if nothing by 16 h after they
would have got up; not held to the hour, which is for falls). Prints per incident
the median and 90th percentile of the minutes to the first alert about the resident (any
type but device alerts), the incidents missed (no such alert within 12 h), and the alerts on
days without an incident (false alarms) per resident-month, with each one listed.

    python bench/routine_suite.py              the full run (10 residents x 42 days; minutes)
    python bench/routine_suite.py --short      the profile of the normal test suite
    python bench/routine_suite.py --seed 2     other residents' days (the same routines)

Each target of issue 16 that is not met is named; with `--check` the exit status is then 1
(`make bench` runs this file without it: the figures are the result).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.rules.residents import SHORT, shortfalls, suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the normal test suite's profile")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=None, help="days per resident")
    parser.add_argument("--most", type=int, default=6,
                        help="incident days per resident and incident (default 6)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a target of issue 16 is not met")
    args = parser.parse_args(argv)
    kwargs: dict = dict(SHORT) if args.short else {"most": args.most}
    if args.days:
        kwargs["days"] = args.days
    began = time.perf_counter()
    result = suite(seed=args.seed, **kwargs)
    elapsed = time.perf_counter() - began
    print(f"seed {args.seed}")
    print(result.table())
    print(f"\n{result.events:,} events replayed in {elapsed:.0f} s"
          f" ({result.events / elapsed:,.0f} events/s, simulated time)")
    missing = shortfalls(result)
    for line in missing:
        print(f"target not met: {line}")
    if not missing:
        print("issue 16's targets: all met")
    return 1 if missing and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
