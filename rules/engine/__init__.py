"""The rules engine: signals from rules become alert transitions with a lifecycle.

`RuleEngine` (rule_engine.py) feeds the rules and keeps their deadlines (deadlines.py);
the alerts' lifecycle, from raised to cleared, is lifecycle.py; how far the wall clock is
believed across restarts and jumps is clocks.py; the JSON snapshot is snapshot.py.
"""

from hearthgate.rules.engine.lifecycle import OpenAlert, UnknownAlert
from hearthgate.rules.engine.rule_engine import RuleEngine

__all__ = ["OpenAlert", "RuleEngine", "UnknownAlert"]
