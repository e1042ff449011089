"""hearthgate: an edge gateway for elderly care."""

__version__ = "0.1.0"
