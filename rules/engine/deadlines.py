"""When each rule next needs a tick: a heap, so the engine's next deadline is not O(rules)."""

from __future__ import annotations

import heapq
import itertools

from hearthgate.rules.base import Rule


class RuleDeadlines:
    """The `next_deadline()` of every rule, by (site id, rule index).

    A heap with lazy deletion: an entry counts only while it equals the rule's latest
    deadline, so a rule that moves its deadline leaves the old entry to be skipped.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str, int]] = []
        self._deadline_of: dict[tuple[str, int], float | None] = {}
        self._seq = itertools.count()

    def refresh(self, site_id: str, index: int, rule: Rule) -> None:
        """Ask `rule` (rule `index` of `site_id`) for its deadline again."""
        key = (site_id, index)
        d = rule.next_deadline()
        if self._deadline_of.get(key) != d:
            self._deadline_of[key] = d
            if d is not None:
                heapq.heappush(self._heap, (d, next(self._seq), site_id, index))

    def earliest(self) -> float | None:
        heap = self._heap
        while heap:
            d, _, site_id, index = heap[0]
            if self._deadline_of.get((site_id, index)) == d:
                return d
            heapq.heappop(heap)
        return None

    def pop_due(self, mono: float) -> list[tuple[str, int]]:
        """(site id, rule index) of the rules whose deadline is at or before `mono`.

        Each is forgotten until the next `refresh` of that rule.
        """
        due: list[tuple[str, int]] = []
        while self._heap and self._heap[0][0] <= mono:
            d, _, site_id, index = heapq.heappop(self._heap)
            key = (site_id, index)
            if self._deadline_of.get(key) == d:
                self._deadline_of[key] = None
                due.append(key)
        return due
