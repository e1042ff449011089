"""The service under a real systemd: boots a Debian bookworm tree with systemd-nspawn and runs
tests/ops/nspawn_probe.sh (readiness, status line, watchdog restart of a hung process,
journald fields, devices/alerts, security score, clean stop). It needs root, systemd-nspawn
and a prepared tree (see the script), so it runs only when HEARTHGATE_NSPAWN_ROOT names one."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "nspawn_probe.sh"
TREE = os.environ.get("HEARTHGATE_NSPAWN_ROOT")


@pytest.mark.slow
@pytest.mark.skipif(not TREE, reason="set HEARTHGATE_NSPAWN_ROOT to a debootstrapped bookworm "
                                     "tree to boot the service under a real systemd")
@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-nspawn needs root")
@pytest.mark.skipif(shutil.which("systemd-nspawn") is None, reason="systemd-nspawn missing")
def test_service_under_real_systemd() -> None:
    result = subprocess.run([str(SCRIPT), str(TREE)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "StatusText=running: " in result.stdout
    assert "Watchdog timeout" in result.stdout
