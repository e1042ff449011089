"""`hearthgate check -c FILE`: validate a config without touching devices or the network.

Valid: warnings (if any) on stderr, one summary line on stdout, exit 0.
Invalid: `FILE:LINE:COL: error: MESSAGE` lines (and hints) on stderr, exit 2.
With `gateway.web`, the page's port is bound for a moment (no traffic) to warn when it is
taken or the address is not this machine's, unless the running gateway is the one serving it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from hearthgate.config import ConfigError, GatewayConfig, load
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
    page = page_port_problem(result.config)
    if page is not None:
        print(translate(f"{path}: warning: {page}", language), file=err)
    print(translate(f"{path}: ok: {result.config.summary()}", language), file=out)
    return EXIT_OK


def page_port_problem(config: GatewayConfig) -> str | None:
    """Why the status page could not listen now (a port in use, an address not here); None
    when it could, or when the running service is the one serving it."""
    web = config.gateway.web
    if web is None:
        return None
    from hearthgate.web.listening import probe_listen

    host, port = web.address
    why = probe_listen(host, port)
    if why is None:
        return None
    from hearthgate.control import ControlError
    from hearthgate.views import ask_service

    try:
        status = ask_service(config, None, "status")
    except (ControlError, OSError):
        status = None
    page = status.get("web") if isinstance(status, dict) else None
    if isinstance(page, dict) and page.get("serving") and page.get("listen") == web.listen:
        return None  # the running gateway has it: as it should
    return (f"the status page (gateway.web.listen: {web.listen}) cannot listen: {why};"
            " the gateway will run without it and retry")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="hearthgate check", description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True, type=Path, help="the YAML config file")
    args = parser.parse_args(argv)
    return run_check(args.config)


if __name__ == "__main__":
    sys.exit(main())
