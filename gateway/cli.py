"""`hearthgate` — the one command (its commands: docs/operations.md, README.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hearthgate.version import BUILD

if TYPE_CHECKING:
    from hearthgate.config import GatewayConfig, LoadResult

EXIT_OK, EXIT_FATAL, EXIT_CONFIG = 0, 1, 2

log = logging.getLogger("hearthgate")


def _setup_logging(level: str) -> None:
    from hearthgate.journal_logging import setup_logging

    setup_logging(level)


def _load_result(path: str, warnings: list[str] | None = None) -> LoadResult | None:
    """The loaded config, or None after printing its problems; warnings are collected, not
    printed."""
    from hearthgate.config import ConfigError, load

    try:
        result = load(Path(path))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem.format(), file=sys.stderr)
        return None
    if warnings is not None:
        warnings += [w.format() for w in result.warnings]
    return result


def _load(path: str, warnings: list[str] | None = None) -> GatewayConfig | None:
    """The config, or None after printing its problems (`_load_result`)."""
    result = _load_result(path, warnings)
    return None if result is None else result.config


def cmd_run(args: argparse.Namespace) -> int:
    from hearthgate.runner import roll_back_unloadable

    # A pushed config on probation that no longer loads: back to the previous one first.
    rolled_back = roll_back_unloadable(Path(args.config))
    warnings: list[str] = []
    loaded = _load_result(args.config, warnings)
    if loaded is None:
        return EXIT_CONFIG
    config = loaded.config
    from hearthgate.journal_logging import add_secret
    from hearthgate.log_ring import LogRing
    from hearthgate.runner import GatewayRunner
    from hearthgate.service import uplink_password

    try:
        add_secret(uplink_password(config))
    except OSError as exc:
        print(f"{args.config}: error: cannot read uplink.password_file: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for bus in config.buses:
        secret = getattr(bus.options, "password", None)
        add_secret(secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret)
    _setup_logging(args.log_level or config.gateway.log_level)
    # The newest lines in memory, redacted, for P/cmd/logs.
    ring = LogRing()
    logging.getLogger().addHandler(ring)
    for warning in warnings:
        log.warning("%s", warning)

    # The runner starts on this load rather than reading the file again (for 200 devices
    # the YAML parse alone is about 0.4 s of start-up), and no other reference to it is
    # kept here: a config pushed later replaces it in memory instead of joining it.
    runner = GatewayRunner(
        Path(args.config), data_dir=Path(args.data_dir) if args.data_dir else None,
        ring=ring, rolled_back=rolled_back, loaded=loaded,
    )
    del loaded, config

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await runner.run(stop)

    try:
        return asyncio.run(main())
    except Exception:
        log.critical("hearthgate stopped on a fatal error", exc_info=True)
        return EXIT_FATAL


def cmd_check(args: argparse.Namespace) -> int:
    from hearthgate.check import run_check

    return run_check(Path(args.config), lang=args.lang)


def cmd_view(args: argparse.Namespace) -> int:
    """`alerts`, `devices` and `status`: a table (or JSON) of what the gateway knows."""
    from hearthgate import views

    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    data_dir = Path(args.data_dir) if args.data_dir else None
    if args.command == "alerts":
        return views.print_alerts(config, data_dir=data_dir, as_json=args.json)
    show = {"devices": views.print_devices, "status": views.print_status}[args.command]
    return show(config, data_dir=data_dir, as_json=args.json, lang=args.lang)


def cmd_replay(args: argparse.Namespace) -> int:
    from hearthgate.replay import run_replay

    return run_replay(Path(args.config), Path(args.events))


def cmd_discover(args: argparse.Namespace) -> int:
    from hearthgate.core.durations import parse_duration
    from hearthgate.discover import run_discover

    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        print(f"hearthgate discover: --timeout: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return run_discover(Path(args.config), timeout=max(timeout, 0.1), base=args.base_topic)


def cmd_simulate(args: argparse.Namespace) -> int:
    from hearthgate.simulate import run_simulator

    return run_simulator(args.kind, args.args)


def cmd_demo(args: argparse.Namespace) -> int:
    from hearthgate.demo.runner import run_demo

    return run_demo(args.args)


def cmd_ack(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    from hearthgate.forget import run_ack

    return run_ack(config, args.alert_id, args.by,
                   data_dir=Path(args.data_dir) if args.data_dir else None)


def cmd_walktest(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    timeout = None
    if args.timeout:
        from hearthgate.core.durations import parse_duration

        try:
            timeout = parse_duration(args.timeout)
        except ValueError as exc:
            print(f"walktest: --timeout: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    # The gateway a walk test runs logs its warnings and up; the checklist is the output.
    _setup_logging(args.log_level or "warning")
    from hearthgate.walktest import run_walktest

    return run_walktest(config, args.config,
                        data_dir=Path(args.data_dir) if args.data_dir else None,
                        as_json=args.json, timeout=timeout, lang=args.lang, by=args.by)


def cmd_forget(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    from hearthgate.forget import run_forget

    return run_forget(config, args.site, args.by,
                      data_dir=Path(args.data_dir) if args.data_dir else None)


class _VersionAction(argparse.Action):
    """`--version`: argparse's own action wraps the line at the terminal's width."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(BUILD.describe())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hearthgate", description="Edge gateway for elderly care: sensors in, alerts out."
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="print the version and the build (tag, commit) and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("-c", "--config", required=True, metavar="FILE", help="the YAML config")
        return p

    p = with_config("run", "run the service in the foreground")
    p.add_argument("--data-dir", help="override gateway.data_dir")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_run)

    p = with_config("check", "validate the config without touching devices or the network")
    p.add_argument("--lang", choices=["zh", "en"], help="override gateway.language")
    p.set_defaults(func=cmd_check)

    for name, text in (
        ("alerts", "list alerts in the local store"),
        ("devices", "list devices: last seen, last value, battery, online (live from the"
         " running service, else as last saved)"),
        ("status", "the running gateway as the platform sees it: uplink, outbox, and per site"
         " the rules watching and the blind ones (exit 1 when not running)"),
    ):
        p = with_config(name, text)
        p.add_argument("--data-dir", help="override gateway.data_dir")
        p.add_argument("--json", action="store_true", help="JSON instead of a table")
        if name != "alerts":
            p.add_argument("--lang", choices=["zh", "en"],
                           help="override gateway.language (--json stays English)")
        p.set_defaults(func=cmd_view)

    p = with_config("ack", "acknowledge an alert on the gateway itself, as local:NAME")
    p.add_argument("alert_id", metavar="ALERT_ID")
    p.add_argument("--by", metavar="NAME", help="who acknowledges (default: your user name)")
    p.add_argument("--data-dir", help="override gateway.data_dir")
    p.set_defaults(func=cmd_ack)

    p = with_config("walktest", "commissioning: tick each device off as it is heard")
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    p.add_argument("--timeout", metavar="DURATION", help="give up after this long (e.g. 10m)")
    p.add_argument("--lang", choices=["zh", "en"], help="override gateway.language")
    p.add_argument("--by", metavar="NAME", help="who tests, for the access trail")
    p.add_argument("--data-dir", help="override gateway.data_dir")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_walktest)

    p = with_config("forget", "erase a resident's data on the gateway when they leave")
    p.add_argument("--site", required=True, metavar="ID", help="the site to erase")
    p.add_argument("--by", metavar="NAME", help="who erases, for the access trail")
    p.add_argument("--data-dir", help="override gateway.data_dir")
    p.set_defaults(func=cmd_forget)

    p = with_config("replay", "run the rules over recorded observations in simulated time")
    p.add_argument("events", metavar="EVENTS.jsonl")
    p.set_defaults(func=cmd_replay)

    p = with_config("discover", "print a devices: entry for each zigbee2mqtt device paired but"
                                " not in the config")
    p.add_argument("--timeout", default="5s",
                   help="how long to wait for each broker's bridge/devices (default 5s)")
    p.add_argument("--base-topic", metavar="TOPIC",
                   help="zigbee2mqtt's mqtt.base_topic (default: the config's, or zigbee2mqtt)")
    p.set_defaults(func=cmd_discover)

    p = sub.add_parser("simulate", help="run one device simulator (for bench tests)")
    p.add_argument("kind", help="dlt645 | cjt188 | meters | sdm120 | rflink | osdp | zigbee2mqtt")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the simulator's own options")
    p.set_defaults(func=cmd_simulate)

    # Its own --help lists its options (run_demo parses them).
    p = sub.add_parser("demo", help="a self-contained showcase in accelerated time",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # argparse hands a REMAINDER positional nothing when the first word after the
    # command is an option (`hearthgate demo --speed 600`); those commands take them.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command not in ("demo", "simulate"):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.args = [*extra, *args.args]
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
