"""Which build this is: the version and the (tag, commit) it was made from.

setuptools-scm derives the version from the newest `vX.Y.Z` git tag when the package is
built and writes `hearthgate/_build.py` (not in git; pyproject.toml, [tool.setuptools_scm]).
Between tags the version is `X.Y.(Z+1).devN+gHASH`; in a clone with no tags at all the tag
is the fallback `0.0.0`, shown here as no tag. Without `_build.py` (a source tree that was
never built) the installed metadata is asked, and failing that the version is unknown: the
gateway still runs and says so on `P/status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

NO_TAG = "0.0.0"  # setuptools-scm's fallback: what a clone without tags reports as its tag


@dataclass(frozen=True)
class Build:
    """The build a running gateway was made from.

    Attributes:
        version: the package version (PEP 440).
        tag: the git tag it was built at or after (`v0.2.0`), None when there were no tags.
        distance: commits since that tag (0: exactly at the tag), None when unknown.
        commit: the abbreviated commit id, None when built without git.
        dirty: whether the working tree had uncommitted changes.
    """

    version: str
    tag: str | None
    distance: int | None
    commit: str | None
    dirty: bool

    def as_dict(self) -> dict[str, object]:
        """The `build` field of `P/status`."""
        return {"tag": self.tag, "commit": self.commit, "distance": self.distance,
                "dirty": self.dirty}

    def describe(self) -> str:
        """One line for `hearthgate --version`:
        `hearthgate 0.2.0 (tag v0.2.0, commit 1a2b3c4d5e6f)`."""
        parts = [f"tag {self.tag}" if self.tag else "no tag"]
        if self.tag and self.distance:
            parts[0] += f" +{self.distance} commits"
        parts.append(f"commit {self.commit}" if self.commit else "commit unknown")
        if self.dirty:
            parts.append("uncommitted changes")
        return f"hearthgate {self.version} ({', '.join(parts)})"


def current_build() -> Build:
    try:
        from hearthgate import _build  # type: ignore[attr-defined]
    except ImportError:
        try:
            version = metadata.version("hearthgate")
        except metadata.PackageNotFoundError:
            version = "0+unknown"
        return Build(version, None, None, None, False)
    tag = str(getattr(_build, "tag", "") or "")
    commit = getattr(_build, "commit", None)
    if isinstance(commit, str):
        commit = commit.removeprefix("g")[:12] or None
    return Build(
        version=str(_build.version),
        tag=None if tag in ("", NO_TAG) else f"v{tag}",
        distance=getattr(_build, "distance", None),
        commit=commit,
        dirty=bool(getattr(_build, "dirty", False)),
    )


BUILD = current_build()
