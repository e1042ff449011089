"""`hearthgate simulate KIND ...`: one device simulator, for an installer's bench tests.

Each family of simulators owns its command line (`simulate_main(kind, argv)`); this
module only knows which module serves which kind, and imports that one alone, so
`hearthgate simulate rflink` never loads pymodbus.
"""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Callable

METERS = "hearthgate.simulators.meter_command"

# kind -> (module with `simulate_main(kind, argv) -> int`, what it simulates)
SIMULATORS: dict[str, tuple[str, str]] = {
    "dlt645": (METERS, "DL/T 645-2007 electricity meters on a serial line"),
    "cjt188": (METERS, "CJ/T 188-2004 water meters on a serial line"),
    "meters": (METERS, "DL/T 645 and CJ/T 188 meters sharing one serial line"),
    "sdm120": (METERS, "Eastron SDM120 Modbus RTU meters on a serial line"),
    "rflink": ("hearthgate.simulators.presence", "an RFLink 433 MHz receiver hearing buttons"),
    "osdp": ("hearthgate.simulators.presence", "an OSDP reader / access controller on RS-485"),
    "zigbee2mqtt": ("hearthgate.simulators.presence", "zigbee2mqtt publishing device states"),
}

EXIT_USAGE = 2


def usage() -> str:
    lines = ["usage: hearthgate simulate KIND [options]   (hearthgate simulate KIND --help)",
             "kinds:"]
    lines += [f"  {kind:<12} {text}" for kind, (_, text) in SIMULATORS.items()]
    return "\n".join(lines)


def entry_point(kind: str) -> Callable[[str, list[str]], int]:
    """The `simulate_main` that serves `kind`; KeyError for an unknown kind."""
    module_name, _ = SIMULATORS[kind]
    module = importlib.import_module(module_name)
    main: Callable[[str, list[str]], int] = module.simulate_main
    return main


def run_simulator(kind: str, argv: list[str]) -> int:
    if kind in ("-h", "--help", "help"):
        print(usage())
        return 0
    if kind not in SIMULATORS:
        print(f"hearthgate simulate: unknown kind '{kind}'; known kinds: "
              f"{', '.join(SIMULATORS)}", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return EXIT_USAGE
    # SIGTERM (systemctl stop, a test's terminate) ends a simulator like Ctrl-C: its
    # `finally` blocks remove the pseudo-terminal and its symlink.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(entry_point(kind)(kind, list(argv)) or 0)
    except SystemExit as exc:  # argparse inside a simulator: --help, or bad options
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
