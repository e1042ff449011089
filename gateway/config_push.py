"""`P/cmd/config`: a whole config file pushed by the platform, checked before it is used.

The order of the checks is the order of cost and of trust: the size, then the signature
(nothing of an unsigned push is parsed), then the base (the push must replace the config
that runs now), then exactly what `hearthgate check` does, on a copy written beside the
running file so that `!secret` references resolve from the same `secrets.yaml`. Only a push
that passes all of them is handed back as a `VerifiedPush`; the runner applies it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from hearthgate.config import ConfigError, GatewayConfig, load
from hearthgate.config_files import ConfigFiles, config_hash
from hearthgate.uplink import CommandError

log = logging.getLogger("hearthgate.config_push")

MAX_CONFIG_BYTES = 256 * 1024
PUSHED_NAME = "pushed config"  # how errors name the file: it is not on disk under a name


def signature(key: bytes, yaml_bytes: bytes) -> str:
    """HMAC-SHA256 of the YAML's UTF-8 bytes with the gateway's `uplink.config_key`, hex."""
    return hmac.new(key, yaml_bytes, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class VerifiedPush:
    """A pushed config that passed every check: its bytes, hashes and the loaded config."""

    push_id: Any
    raw: bytes
    new_hash: str
    base: str
    config: GatewayConfig
    warnings: list[str]


def verify_push(body: dict[str, Any], running: GatewayConfig, files: ConfigFiles) -> VerifiedPush:
    """Check a `P/cmd/config` body against the running config and its file.

    Raises:
        CommandError: the push is refused; its message (and `errors`, for a config that
            does not pass `hearthgate check`: line, column, message, hint each) goes back
            on `P/cmd/result`.
    """
    key = running.uplink.config_key
    if key is None:
        raise CommandError("config push refused: this gateway has no uplink.config_key")
    text, base, sig = body.get("yaml"), body.get("base"), body.get("sig")
    if not isinstance(text, str):
        raise CommandError("'yaml' must be the whole config file as a string")
    if not isinstance(base, str) or not isinstance(sig, str):
        raise CommandError("'base' (the config_hash it replaces) and 'sig' are required strings")
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        raise CommandError("'yaml' is not valid UTF-8 text") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise CommandError(f"config push refused: larger than {MAX_CONFIG_BYTES // 1024} KiB")
    expected = signature(key.get_secret_value().encode(), raw)
    if not hmac.compare_digest(expected, sig.strip().lower()):
        raise CommandError("config push refused: bad signature (HMAC-SHA256 of 'yaml' with"
                           " uplink.config_key, hex)")
    current = files.current_hash()
    if base.strip().lower() != current:
        raise CommandError(f"config push refused: base {base[:80]!r} is not the running"
                           f" config ({current})", config_hash=current)
    staged = files.stage(raw)
    try:
        result = load(staged, running.registry)
    except ConfigError as exc:
        problems = [p.model_copy(update={"file": PUSHED_NAME}) for p in exc.problems]
        raise CommandError(
            "config push refused: the config is not valid:\n"
            + "\n".join(p.format() for p in problems),
            errors=[{"line": p.line, "col": p.col, "message": p.message, "hint": p.hint}
                    for p in problems],
        ) from None
    finally:
        files.discard_staged()
    warnings = [w.model_copy(update={"file": PUSHED_NAME}).format() for w in result.warnings]
    return VerifiedPush(body.get("id"), raw, config_hash(raw), current, result.config, warnings)
