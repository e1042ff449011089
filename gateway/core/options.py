"""What a bus, a device or a rule is configured with, as its plugin receives it.

The config file is validated into these (hearthgate.config builds them); drivers and rules
read them and never the loader, so they stay below the service in the import order. The
keys beyond the common ones are validated by the option model that the bus type,
protocol or rule type declares (`hearthgate.registry`) and kept in `.options`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hearthgate.core.durations import Duration

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# One word, in any script (`bathroom`, `卫生间`): no spaces, at most 32 characters.
ROOM_PATTERN = r"^[^\s]{1,32}$"


class Options(BaseModel):
    """Base of every option model: unknown keys are errors (docs/configuration.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def kind_problem(self, kind: str) -> tuple[str, str] | None:
        """`(key, message)` when a key given here makes no sense for a device of `kind`
        (the config loader reports it at that key); None when all is well."""
        return None


class OptionError(ValueError):
    """A bad option value, with a hint for the installer (`hearthgate check` prints it).

    Raise it from an option model's validator where plain `ValueError` would do, when the
    fix is not obvious from the message (a meter address short of its leading zeros).

    `quotes_value=False` promises that neither text quotes the value: then both are shown
    for a `!secret` value too, which otherwise gets only "the value is not valid".
    """

    def __init__(
        self, message: str, hint: str | None = None, *, quotes_value: bool = True
    ) -> None:
        super().__init__(message)
        self.hint = hint
        self.quotes_value = quotes_value


class Section(BaseModel):
    """Base of every config section: frozen, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BusConfig(Section):
    """One entry of `buses:`: an id, a bus type and that type's options."""

    id: str = Field(pattern=ID_PATTERN)
    type: str
    options: Options



class DeviceConfig(Section):
    """One entry of `devices:`: the common keys and its protocol's options."""

    id: str = Field(pattern=ID_PATTERN)
    site: str
    kind: str
    protocol: str
    bus: str
    name: str | None = None
    # Where in the home it is (`bedroom`, `bathroom`, `kitchen`, `living`, `entrance`, or
    # any other word): the routine rules judge where the resident was last seen by it.
    room: str | None = Field(default=None, json_schema_extra={"pattern": ROOM_PATTERN})
    # Silence after which the device counts as offline (hearthgate.core.health).
    offline_after: Duration | None = None
    options: Options

    @field_validator("room")
    @classmethod
    def _one_word(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(ROOM_PATTERN, value):
            raise ValueError(
                f"{value!r} is not one word: write a room as one word of at most 32"
                " characters, like bathroom or living"
            )
        return value
