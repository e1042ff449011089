"""Whether the status page can listen where the config says, in an installer's words; for the
server (a failed bind) and `hearthgate check` (a bind tried and let go). No web library."""

from __future__ import annotations

import errno
import socket


def why_not_listening(exc: OSError, host: str, port: int) -> str:
    """An installer's words for a failed bind."""
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} is already in use on {host} (another program, or a second"
                f" hearthgate; see: ss -ltnp 'sport = :{port}')")
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine"
    if exc.errno == errno.EACCES:
        return f"port {port} needs root (use a port above 1023)"
    return f"{type(exc).__name__}: {exc.strerror or exc}"


def probe_listen(host: str, port: int) -> str | None:
    """Bind `host:port` for a moment; None when that works, else why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"{host} is not a name or address this machine can listen on ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # As the server binds: a port left in TIME_WAIT by the last run is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return why_not_listening(exc, host, port)
    return None
