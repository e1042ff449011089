"""Running the gateway from its config file, through config pushes, rollbacks and restarts.

`GatewayRunner` is what `hearthgate run` runs. It starts a `Gateway` for the config file and
gives it three downlink commands (dispatched by `Gateway._command`, like every other):

- `config`: a pushed config, checked (`hearthgate.config_push`), written beside the running
  one (`hearthgate.config_files`), then applied by stopping this gateway cleanly and starting
  one on the new config, with the rule state of every unchanged rule carried over
  (`hearthgate.state_carry`). The new config is on probation until its uplink connects; if
  it does not within `uplink.config_rollback_after`, or the gateway fails to start on it,
  the previous file is put back and the gateway starts on it again. Every step goes to the
  log and to `P/cmd/result` (the later ones as soon as an uplink is up to carry them).
- `logs`: the newest lines of the in-memory ring (`hearthgate.log_ring`).
- `restart`: a clean stop, then exit status `EXIT_RESTART` (3), which systemd's
  `Restart=on-failure` answers by starting the service again.

Between the old gateway's stop and the new one's start, alerts are safe where they always
are: in the store's outbox and the engine's saved state. Observations are not taken during
that second; drivers start again on the new config.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import time
from pathlib import Path
from typing import Any

from hearthgate.config import ConfigError, GatewayConfig, LoadResult, load
from hearthgate.config_files import ConfigFiles, config_hash
from hearthgate.config_push import verify_push
from hearthgate.core.clock import Clock
from hearthgate.journal_logging import add_secret
from hearthgate.log_ring import LogRing, logs_command
from hearthgate.registry import STANDARD, Registry
from hearthgate.service import Gateway
from hearthgate.uplink import CommandError

log = logging.getLogger("hearthgate.runner")

EXIT_STOPPED = 0
EXIT_RESTART = 3  # not 0 (Restart=on-failure ignores it) and not 2 (RestartPreventExitStatus)
COMMAND_GRACE = 0.5  # s for a command's result to leave before the gateway stops
CONTROL_EVERY = 0.1  # s between looks at requests, probation and the stop event


def register_secrets(result: LoadResult) -> None:
    """Keep every secret of a loaded config out of the log (and so out of `logs`)."""
    for value in result.secrets:
        add_secret(value)
    up = result.config.uplink
    if up.config_key is not None:
        add_secret(up.config_key.get_secret_value())
    if up.password is not None:
        add_secret(up.password.get_secret_value())


def roll_back_unloadable(path: Path, registry: Registry = STANDARD) -> dict[str, Any] | None:
    """At start: if a pushed config on probation no longer loads, put the previous one back.

    Returns the probation record rolled back (to report once online), or None.
    """
    files = ConfigFiles(path)
    probation = files.pending()
    if probation is None or not files.previous.exists():
        return None
    try:
        load(path, registry)
    except ConfigError as exc:
        log.error("pushed config %s does not load (%s); rolling back to the previous one",
                  probation.get("config_hash"), exc.problems[0].format() if exc.problems else "")
        files.roll_back()
        return probation
    return None



def release_garbage() -> None:
    """Collect the cycles left by loading a config and hand the freed heap back to the
    system (glibc's malloc_trim; elsewhere only the collection)."""
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: what was freed stays with the process, to be reused

class GatewayRunner:
    """Runs a `Gateway` for a config file until stopped, and applies what the platform sends.

    `run(stop)` returns the process's exit status: `EXIT_STOPPED` after `stop` is set and
    the gateway stopped cleanly, `EXIT_RESTART` after a `restart` command. A gateway that
    fails outside a probation raises out of `run` as `Gateway.run` does.

    Args:
        path: the config file (`hearthgate run -c FILE`); pushes replace it.
        data_dir: overrides `gateway.data_dir` (`--data-dir`).
        clock: the clock for every gateway it starts (tests).
        ring: the log ring `logs` reads; without one, `logs` is refused.
        registry: the tables configs are checked against.
        rolled_back: a probation record already rolled back at start, to report.
        loaded: the config file as the caller already loaded it (`hearthgate run` checks it
            before logging starts): the first gateway starts on it instead of a second load.

    Attributes:
        gateway: the gateway running now.
        files: the config file, its previous version and the probation marker.
    """

    def __init__(
        self, path: Path, *, data_dir: Path | None = None, clock: Clock | None = None,
        ring: LogRing | None = None, registry: Registry = STANDARD,
        rolled_back: dict[str, Any] | None = None, loaded: LoadResult | None = None,
    ) -> None:
        self.path = path
        self._loaded = loaded
        self.files = ConfigFiles(path)
        self.data_dir = data_dir
        self.clock = clock
        self.ring = ring
        self.registry = registry
        self.gateway: Gateway | None = None
        self.config: GatewayConfig | None = None
        self._request: tuple[str, dict[str, Any] | None] | None = None
        self._probation: dict[str, Any] | None = None
        self._reports: list[dict[str, Any]] = []
        if rolled_back is not None:
            self._reports.append(self._rollback_report(
                rolled_back, "the pushed config did not load when the gateway started"))

    # -- the loop of gateways ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        result, self._loaded = self._loaded or load(self.path, self.registry), None
        register_secrets(result)
        config, carry_from = result.config, None
        # The YAML parser's round-trip tree is cyclic garbage once validated (about 1 MB
        # for 200 devices): freed now, before the gateway's own objects fill the heap
        # around it, so that idle RSS does not keep it (docs/performance.md).
        release_garbage()
        probation = self.files.pending()
        if probation is not None and probation.get("config_hash") != self.files.current_hash():
            log.warning("dropping a stale probation marker: the config file changed since")
            self.files.confirm()
            probation = None
        if probation is not None:
            log.warning("starting on pushed config %s, still on probation",
                        probation.get("config_hash"))
        while True:
            self._probation = probation
            outcome, detail = await self._run_one(config, carry_from, stop)
            if outcome == "stopped":
                return EXIT_STOPPED
            if outcome == "restart":
                log.warning("restarting on request: exit status %d, systemd starts us again",
                            EXIT_RESTART)
                return EXIT_RESTART
            failed = config
            if outcome == "apply":
                probation = detail
                log.info("config push %s: stopping to start on config %s",
                         (detail or {}).get("id"), (detail or {}).get("config_hash"))
            else:  # "rollback"
                assert self._probation is not None
                log.error("config push %s: %s; rolling back to config %s",
                          self._probation.get("id"), detail,
                          self._probation.get("previous_hash"))
                await asyncio.to_thread(self.files.roll_back)
                self._reports.append(self._rollback_report(self._probation, str(detail)))
                probation = None
            result = await asyncio.to_thread(load, self.path, self.registry)
            register_secrets(result)
            config, carry_from = result.config, failed
            release_garbage()  # as at the start

    async def _run_one(
        self, config: GatewayConfig, carry_from: GatewayConfig | None, stop: asyncio.Event
    ) -> tuple[str, Any]:
        self.config = config
        self._request = None
        gateway = Gateway(
            config, clock=self.clock, data_dir=self.data_dir, carry_from=carry_from,
            config_hash=config_hash(self.files.read()),
            commands={"config": self._config, "logs": self._logs, "restart": self._restart},
        )
        self.gateway = gateway
        gateway_stop = asyncio.Event()
        failure: list[BaseException] = []
        outcome: list[tuple[str, Any]] = []

        async def run_gateway() -> None:
            try:
                await gateway.run(gateway_stop)
            except Exception as exc:  # judged below: a rollback on probation, else fatal
                failure.append(exc)

        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(run_gateway(), name="gateway")
            tg.create_task(self._control(gateway, task, stop, gateway_stop, outcome),
                           name="gateway-control")
        if failure:
            if self._probation is not None:
                return "rollback", f"the gateway failed on the new config: {failure[0]!r}"
            raise failure[0]
        return outcome[0] if outcome else ("stopped", None)

    async def _control(
        self, gateway: Gateway, task: asyncio.Task[None], stop: asyncio.Event,
        gateway_stop: asyncio.Event, outcome: list[tuple[str, Any]],
    ) -> None:
        probation = self._probation
        deadline = (time.monotonic() + float(probation.get("rollback_after_s", 120))
                    if probation is not None else None)
        while not task.done():
            connected = gateway.uplink is not None and gateway.uplink.stats.connected
            if connected and probation is not None:
                await self._confirm(gateway, probation)
                probation = deadline = None
            if connected and self._reports:
                assert gateway.uplink is not None
                while self._reports and await gateway.uplink.publish_result(self._reports[0]):
                    self._reports.pop(0)
            if stop.is_set():
                outcome.append(("stopped", None))
                break
            if self._request is not None:
                await asyncio.sleep(COMMAND_GRACE)  # the command's own result goes first
                outcome.append(self._request)
                break
            if deadline is not None and time.monotonic() >= deadline:
                bound = float((probation or {}).get("rollback_after_s", 0))
                outcome.append(("rollback", f"the uplink did not come back within {bound:g}s"
                                            " on the new config"))
                break
            await asyncio.sleep(CONTROL_EVERY)
        gateway_stop.set()

    async def _confirm(self, gateway: Gateway, probation: dict[str, Any]) -> None:
        await asyncio.to_thread(self.files.confirm)
        self._probation = None
        log.info("config push %s applied: config %s, the uplink is back",
                 probation.get("id"), probation.get("config_hash"))
        self._reports.append({
            "id": probation.get("id"), "command": "config", "ok": True, "error": None,
            "step": "applied", "config_hash": probation.get("config_hash"),
            "previous_hash": probation.get("previous_hash"),
        })

    @staticmethod
    def _rollback_report(probation: dict[str, Any], why: str) -> dict[str, Any]:
        return {
            "id": probation.get("id"), "command": "config", "ok": False,
            "error": f"rolled back: {why}", "step": "rolled_back",
            "config_hash": probation.get("previous_hash"),
            "rejected_hash": probation.get("config_hash"),
        }

    # -- the commands -------------------------------------------------------------------------

    def _not_busy(self) -> None:
        if self._request is not None:
            raise CommandError(f"busy: a {self._request[0]} is already under way")
        if self._probation is not None:
            raise CommandError("busy: the last pushed config is still on probation")

    async def _config(self, body: dict[str, Any]) -> dict[str, Any]:
        self._not_busy()
        assert self.config is not None
        running = self.config
        push = await asyncio.to_thread(verify_push, body, running, self.files)
        bound = float(running.uplink.config_rollback_after)
        probation = {"id": push.push_id, "config_hash": push.new_hash,
                     "previous_hash": push.base, "rollback_after_s": bound}
        self._not_busy()  # another command may have come in while this one was checked
        try:
            await asyncio.to_thread(self.files.install, push.raw, probation)
        except OSError as exc:
            raise CommandError(f"cannot write the config file {self.path}:"
                               f" {exc.strerror or exc}") from None
        log.info("config push %s accepted: %s -> %s; back to the previous config unless the"
                 " uplink comes back within %gs", push.push_id, push.base, push.new_hash, bound)
        for warning in push.warnings:
            log.warning("config push %s: %s", push.push_id, warning)
        self._request = ("apply", probation)
        return {"step": "accepted", "config_hash": push.new_hash, "previous_hash": push.base,
                "rollback_after_s": bound, "warnings": push.warnings}

    async def _logs(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.ring is None:
            raise CommandError("this gateway keeps no log ring")
        return logs_command(self.ring, body)

    async def _restart(self, body: dict[str, Any]) -> dict[str, Any]:
        self._not_busy()
        log.warning("restart requested by the platform (command %s)", body.get("id"))
        self._request = ("restart", None)
        return {"restarting": True, "exit_status": EXIT_RESTART}

