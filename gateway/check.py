"""`hearthgate check -c FILE`: validate a config without touching devices or the network.

Valid: warnings (if any) on stderr, one summary line on stdout, exit 0.
Invalid: `FILE:LINE:COL: error: MESSAGE` lines (and hints) on stderr, exit 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from hearthgate.config import ConfigError, load
from hearthgate.registry import STANDARD, Registry

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2


def run_check(
    path: Path,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    registry: Registry = STANDARD,
) -> int:
    try:
        result = load(Path(path), registry)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem.format(), file=err)
        return EXIT_INVALID
    except Exception as exc:  # a bug of ours; an installer still gets one line, not a traceback
        # The exception's text is left out: it could quote a secret.
        print(
            f"{path}: internal error while checking ({type(exc).__name__}); please report it",
            file=err,
        )
        return EXIT_INTERNAL
    for warning in result.warnings:
        print(warning.format(), file=err)
    print(f"{path}: ok: {result.config.summary()}", file=out)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="hearthgate check", description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True, type=Path, help="the YAML config file")
    args = parser.parse_args(argv)
    return run_check(args.config)


if __name__ == "__main__":
    sys.exit(main())
