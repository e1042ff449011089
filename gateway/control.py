"""The local control socket: how `hearthgate ack`, `status` and `devices` reach a running service.

The service listens on a Unix socket in its runtime directory (`/run/hearthgate/control.sock`
under systemd; the data dir otherwise), readable by its own user only (mode 0600): one JSON
request line in, one JSON answer line out. A command that finds no one listening knows that
no service is running (then `ack` works on the store itself and `forget` may go ahead).

Requests: `hello` (is a service there), `status` (uplink, outbox, coverage: what `P/status`
says, live), `devices` (the device health the service holds now), `ack` (with `user`).
Something listening that does not answer like hearthgate (garbage, a hang, a reset) is
`ControlError`, never taken for "not running" and never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("hearthgate.control")

CONTROL_SOCKET = "control.sock"
MAX_REQUEST = 64 * 1024
MAX_ANSWER = 8 * 1024 * 1024  # `devices` of a large facility, with last values
SUN_PATH_MAX = 107  # bytes of a Unix socket path (Linux sun_path, without its NUL)

ControlHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve_control(path: Path, handler: ControlHandler) -> None:
    """Answer requests on `path` until cancelled; the socket file is removed on the way out.

    A request that is not a JSON object is answered `{"ok": false, "error": ...}`; what
    `handler` raises is logged and answered the same way: nothing reaches the supervisor but
    a socket that cannot be made.
    """
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        log.error("control socket path %s is too long: `hearthgate ack` cannot reach this"
                  " service (it will act on the store and be undone)", path)
        await asyncio.Event().wait()

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                request = json.loads(line[:MAX_REQUEST] or b"null")
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
                answer = await handler(request)
            except ValueError as exc:
                answer = {"ok": False, "error": f"bad request: {exc}"}
            except Exception as exc:  # a bug must not take the socket down
                log.exception("control request failed")
                answer = {"ok": False, "error": f"internal error: {type(exc).__name__}"}
            writer.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a socket file left by a crash
    server = await asyncio.start_unix_server(one, path=str(path), limit=MAX_REQUEST)
    os.chmod(path, 0o600)
    try:
        async with server:
            await server.serve_forever()
    finally:
        path.unlink(missing_ok=True)


class ControlError(Exception):
    """Something listens on the control socket but gave no hearthgate answer; the message
    names the socket and what went wrong, for the operator."""


async def ask(paths: list[Path], request: dict[str, Any], timeout: float = 15.0
              ) -> dict[str, Any] | None:
    """Send `request` to the first running service found at one of `paths`; None when no
    service listens on any of them.

    Raises:
        ControlError: a socket accepted the connection but the answer was not one JSON
            object line within `timeout` (a hung or foreign process, garbage, a reset).
    """
    for path in paths:
        if not path.exists() or len(os.fsencode(path)) > SUN_PATH_MAX:
            continue
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(path), limit=MAX_ANSWER), timeout)
        except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
            continue  # a socket file without a service behind it
        except OSError as exc:
            raise ControlError(f"cannot connect to the control socket {path}: {exc}") from None
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), timeout)
        except TimeoutError:
            raise ControlError(f"the control socket {path} did not answer within"
                               f" {timeout:g} s") from None
        except (OSError, ValueError, asyncio.LimitOverrunError) as exc:
            raise ControlError(f"the control socket {path} broke off: {exc or type(exc).__name__}"
                               ) from None
        finally:
            writer.close()
        if not line:
            raise ControlError(f"the control socket {path} closed without an answer")
        try:
            answer = json.loads(line)
        except ValueError:
            raise ControlError(f"the control socket {path} answered something that is not"
                               f" hearthgate's: {line[:60]!r}") from None
        if not isinstance(answer, dict):
            raise ControlError(f"the control socket {path} answered {type(answer).__name__},"
                               " not a JSON object")
        return answer
    return None
