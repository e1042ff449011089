"""`HOST:PORT` listen options (`gateway.metrics_listen`, `gateway.web.listen`), read one way."""

from __future__ import annotations


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:9108`, `[::1]:9108`, `:9108` (all interfaces) -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", port
