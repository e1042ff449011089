"""The files a config names, as `hearthgate check` sees them: TLS files that must be readable,
a data directory that must be writable (docs/configuration.md, "What check refuses").

The only part of `hearthgate.config` that looks at the machine beyond the config file and
its secrets: it reads each TLS file's first byte and asks the file system about the data
directory, and changes nothing. (`!secret` and `password_file:` are read where they are
resolved, `hearthgate.config.secrets` and `loading`.)
"""

from __future__ import annotations

import os
from pathlib import Path

from hearthgate.config.models import ConfigProblem, GatewayConfig
from hearthgate.config.positions import SourceMap
from hearthgate.config.reporting import problem_at

TLS_FILES = ("ca_file", "cert_file", "key_file")


def check_files(config: GatewayConfig, file: str, smap: SourceMap) -> list[ConfigProblem]:
    """Errors about the TLS files and the data directory, each at the key that names it."""
    out: list[ConfigProblem] = []
    tls = config.uplink.tls
    for key in TLS_FILES if tls is not None else ():
        path = getattr(tls, key)
        if path is None:
            continue
        reason = _unreadable(Path(path))
        if reason is not None:
            out.append(problem_at(
                file, smap.value(("uplink", "tls", key)),
                f"uplink: tls.{key} {path} cannot be read: {reason}",
                "give the full path of the file; the service must be able to read it",
            ))
    reason = _unwritable(Path(config.gateway.data_dir))
    if reason is not None:
        out.append(problem_at(
            file, smap.value(("gateway", "data_dir")),
            f"gateway: data_dir {config.gateway.data_dir} {reason}",
            "the alert store lives there: choose a directory the service can write"
            " (default /var/lib/hearthgate)",
        ))
    return out


def _unreadable(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            f.read(1)
    except IsADirectoryError:
        return "it is a directory"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def _unwritable(path: Path) -> str | None:
    """Why the service could not create or write `path`; None when it can, or when this
    user cannot tell (a directory owned by another user, e.g. the service's own)."""
    probe = path
    while not probe.exists():
        if probe.is_symlink():
            return f"cannot be created: {probe} is a broken link"
        parent = probe.parent
        if parent == probe:
            return None
        probe = parent
    if not probe.is_dir():
        return f"cannot be created: {probe} is a file, not a directory"
    try:
        if os.statvfs(probe).f_flag & os.ST_RDONLY:
            return f"cannot be written: {probe} is on a read-only file system"
        owner = probe.stat().st_uid
    except OSError as exc:
        return f"cannot be checked: {exc.strerror or type(exc).__name__}"
    if os.access(probe, os.W_OK | os.X_OK):
        return None
    if owner == os.geteuid() or os.geteuid() == 0:
        verb = "written" if probe == path else "created"
        return f"cannot be {verb}: {probe} is not writable"
    return None  # another user's directory (the service's): not ours to judge
