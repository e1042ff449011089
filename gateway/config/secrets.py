"""`!secret NAME` from `secrets.yaml` beside the config (Home Assistant's convention),
and `password_file:`. Secret values never appear in messages, reprs or logs."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from hearthgate.config.models import ConfigProblem
from hearthgate.config.positions import SecretLookupError, read_yaml

SECRETS_FILE = "secrets.yaml"
MAX_SECRET_FILE = 64 * 1024


class SecretsFile:
    """Reads `secrets.yaml` once, on the first `!secret`; problems in it are kept positioned."""

    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / SECRETS_FILE
        self._values: dict[str, Any] | None = None
        self._failure: str | None = None
        self.problems: list[ConfigProblem] = []
        self.used: list[str] = []  # the values handed out, to scrub them from messages

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._failure = f"no {SECRETS_FILE} beside the config (looked for {self.path})"
            return
        except OSError as exc:
            self._failure = f"cannot read {self.path}: {exc.strerror or exc}"
            return
        data, smap, problems = read_yaml(raw, str(self.path))
        self.problems.extend(problems)
        if problems:
            self._failure = f"{self.path} has errors (see above)"
            return
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.problems.append(
                ConfigProblem(
                    file=str(self.path),
                    line=1,
                    col=1,
                    message="secrets.yaml must be a mapping of names to values (name: value)",
                )
            )
            self._failure = f"{self.path} has errors (see above)"
            return
        values: dict[str, Any] = {}
        for name, value in data.items():
            if isinstance(value, (dict, list)) or value is None:
                mark = smap.value((name,))
                self.problems.append(
                    ConfigProblem(
                        file=str(self.path),
                        line=mark.line,
                        col=mark.col,
                        message=f"secret '{name}' must be a single value (text or number)",
                    )
                )
                continue
            values[name] = value
        self._values = values

    def __call__(self, name: str) -> Any:
        if self._values is None and self._failure is None:
            self._load()
        if self._values is None:
            raise SecretLookupError(f"secret '{name}' cannot be read: {self._failure}")
        if name not in self._values:
            close = difflib.get_close_matches(name, list(self._values), n=1)
            raise SecretLookupError(
                f"no secret named '{name}' in {self.path}",
                f"did you mean '{close[0]}'?" if close else None,
            )
        value = self._values[name]
        self.used.append(str(value))
        return value


def read_password_file(path: Path) -> str:
    """The file's text without its trailing newline.

    Raises OSError, or ValueError with a message that never quotes the content."""
    with path.open("rb") as f:
        raw = f.read(MAX_SECRET_FILE + 1)
    if len(raw) > MAX_SECRET_FILE:
        raise ValueError("is larger than 64 KiB; a password file holds one line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("is not UTF-8 text") from exc
    text = text.rstrip("\r\n")
    if not text:
        raise ValueError("is empty")
    return text


def redact(message: str, secrets: list[str]) -> str:
    """Remove secret values from a message.

    Quoted, as messages show values, any secret goes; bare, only secrets of four characters or
    more, so that a one-letter secret does not shred every message.
    """
    for value in sorted(set(secrets), key=len, reverse=True):
        if not value:
            continue
        for quoted in (repr(value), f"'{value}'", f'"{value}"'):
            message = message.replace(quoted, "'***'")
        if len(value) >= 4:
            message = message.replace(value, "***")
    return message
