"""`hearthgate check -c FILE`: validate a config without touching devices or the network.

Valid: warnings (if any) on stderr, one summary line on stdout, exit 0.
Invalid: `FILE:LINE:COL: error: MESSAGE` lines (and hints) on stderr, exit 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from hearthgate.config import ConfigError, load
from hearthgate.messages import language_of_file, translate
from hearthgate.registry import STANDARD, Registry

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2


def _language(path: Path, lang: str | None) -> str:
    if lang:
        return lang
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "en"
    # Chinese when the file says so: a file that names no language keeps the English that
    # installers' scripts and the docs quote.
    return language_of_file(text) or "en"


def run_check(
    path: Path,
    out: TextIO | None = None,
    err: TextIO | None = None,
    registry: Registry = STANDARD,
    lang: str | None = None,
) -> int:
    """Check `path`; problems in `lang` (default: the file's `gateway.language`), at the
    same `FILE:LINE:COL` whatever the language."""
    out = out or sys.stdout
    err = err or sys.stderr
    language = _language(path, lang)
    try:
        result = load(Path(path), registry)
    except ConfigError as exc:
        for problem in exc.problems:
            print(translate(problem.format(), language), file=err)
        return EXIT_INVALID
    except Exception as exc:  # a bug of ours; an installer still gets one line, not a traceback
        # The exception's text is left out: it could quote a secret.
        print(
            f"{path}: internal error while checking ({type(exc).__name__}); please report it",
            file=err,
        )
        return EXIT_INTERNAL
    for warning in result.warnings:
        print(translate(warning.format(), language), file=err)
    print(translate(f"{path}: ok: {result.config.summary()}", language), file=out)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="hearthgate check", description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True, type=Path, help="the YAML config file")
    args = parser.parse_args(argv)
    return run_check(args.config)


if __name__ == "__main__":
    sys.exit(main())
