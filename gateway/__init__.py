"""hearthgate: an edge gateway for elderly care."""

from hearthgate.version import BUILD

__version__ = BUILD.version
