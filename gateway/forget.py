"""`hearthgate forget` and `hearthgate ack`: what the care organisation does on the gateway
itself (docs/privacy.md, docs/operations.md).

`forget -c FILE --site ID` erases a resident's data from the store when they leave: the
site's alerts in the local alert log, its transitions and telemetry not yet sent, its hourly
summaries, its rule state and device states (everything registered in
`hearthgate.store.erasure`), then prints what it removed. It refuses while the service runs
(the service holds the rules' state in memory and would write it back): stop it, forget,
start it; the site's rules then start afresh. Alerts already delivered are the platform's.

`ack -c FILE ALERT_ID [--by NAME]` acknowledges an alert as `local:NAME`: through the running
service's control socket when it runs, else on the store itself.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import TextIO

from hearthgate.audit import AuditTrail
from hearthgate.config import GatewayConfig
from hearthgate.control import ControlError, ask
from hearthgate.core.clock import SystemClock
from hearthgate.service import Gateway
from hearthgate.store import SiteRef, Store
from hearthgate.views import control_paths, runtime_dir

EXIT_OK, EXIT_RUNNING, EXIT_UNKNOWN = 0, 1, 2


def local_user(by: str | None) -> str:
    """Who is at the keyboard: `--by`, else the user who ran sudo, else the login."""
    if by:
        return by
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def run_ack(config: GatewayConfig, alert_id: str, by: str | None, *,
            data_dir: Path | None = None, out: TextIO = sys.stdout,
            err: TextIO = sys.stderr) -> int:
    user = local_user(by)
    request = {"command": "ack", "alert_id": alert_id, "user": user}
    try:
        answer = asyncio.run(ask(control_paths(config, data_dir), request))
    except ControlError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_RUNNING
    if answer is None:
        answer = asyncio.run(Gateway(config, data_dir=data_dir).ack_offline(alert_id, user))
        where = "in the store (no service running; published when it starts)"
    else:
        where = "by the running service"
    if not answer.get("ok"):
        print(f"error: {answer.get('error')}", file=err)
        return EXIT_UNKNOWN if answer.get("unknown_alert") else EXIT_RUNNING
    print(f"alert {alert_id} acknowledged as local:{user} {where}", file=out)
    return EXIT_OK


def run_forget(config: GatewayConfig, site_id: str, by: str | None = None, *,
               data_dir: Path | None = None, out: TextIO = sys.stdout,
               err: TextIO = sys.stderr) -> int:
    return asyncio.run(_forget(config, site_id, local_user(by), data_dir, out, err))


async def _forget(config: GatewayConfig, site_id: str, user: str, data_dir: Path | None,
                  out: TextIO, err: TextIO) -> int:
    try:
        running = await ask(control_paths(config, data_dir), {"command": "hello"}) is not None
    except ControlError:
        running = True  # something answers there, if not in words: do not erase under it
    if running:
        print("error: the hearthgate service is running; it keeps the rules' state in memory"
              " and would write it back. Stop it (systemctl stop hearthgate), run forget"
              " again, then start it.", file=err)
        return EXIT_RUNNING
    store = await Store.open(data_dir or config.gateway.data_dir,
                             config.gateway.telemetry_buffer)
    try:
        in_config = any(s.id == site_id for s in config.sites)
        if not in_config and not await store.holds_site(site_id):
            known = ", ".join(s.id for s in config.sites) or "none"
            print(f"error: unknown site '{site_id}': not in the config (sites: {known})"
                  " and nothing of it in the store", file=err)
            return EXIT_UNKNOWN
        devices = frozenset(d.id for d in config.devices if d.site == site_id)
        removed = await store.erase_site(SiteRef(site_id, devices))
        live = runtime_dir(config, data_dir) / "devices.json"
        live.unlink(missing_ok=True)  # a device snapshot file written by older versions
        trail = AuditTrail(store, config.gateway.id, config.gateway.tz, SystemClock(),
                           keep=config.gateway.retention.audit_records)
        await trail.record("local", user, "forget", target=site_id,
                           detail={what: n for what, n in removed})
    finally:
        await store.close()
    print(f"forgot site {site_id}:", file=out)
    for what, n in removed:
        print(f"  {n:6d} {what}", file=out)
    print("alerts already delivered to the platform are the platform's to erase;"
          " the access trail keeps a record of this erasure", file=out)
    return EXIT_OK
