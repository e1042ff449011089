"""Without `gateway.web` the gateway never loads the web library: the service, the CLI and a
built Gateway leave aiohttp out of the process (its footprint is what it was)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.ops.sos_home import write_sos_config
from tests.web.webkit import write_page_config

PROBE = """
import sys
from pathlib import Path
import hearthgate.cli, hearthgate.service, hearthgate.check
from hearthgate.config import load_config
from hearthgate.service import Gateway
from hearthgate.check import run_check
import io
assert run_check(Path(sys.argv[1]), io.StringIO(), io.StringIO()) == 0
gw = Gateway(load_config(Path(sys.argv[1])))
print(sorted(m for m in sys.modules if m == "aiohttp" or m.startswith("aiohttp.")),
      sorted(m for m in sys.modules if m.startswith("hearthgate.web")))
"""


class _Port:
    port = 1883


def loaded(config: Path) -> str:
    result = subprocess.run([sys.executable, "-c", PROBE, str(config)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_no_web_library_without_the_page(tmp_path: Path) -> None:
    config = write_sos_config(tmp_path, _Port(), "gw-foot-0001")  # type: ignore[arg-type]
    assert loaded(config) == "[] []"


def test_checking_a_config_with_the_page_loads_no_web_library_either(tmp_path: Path) -> None:
    # `check` tries the page's port (a module without the library); only running the page
    # loads the server.
    path, _ = write_page_config(tmp_path, _Port(), "gw-foot-0002")  # type: ignore[arg-type]
    assert loaded(path) == "[] ['hearthgate.web', 'hearthgate.web.listening']"


def test_the_probe_sees_the_library_when_the_page_server_is_imported() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import sys, hearthgate.web.server;"
         " print('aiohttp' in sys.modules)"], capture_output=True, text=True, timeout=60,
        check=False)
    assert result.stdout.strip() == "True", result.stderr
