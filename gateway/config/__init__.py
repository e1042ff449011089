"""The config file: YAML read with positions, validated into frozen models (docs/configuration.md).

`load_config(path)` and `parse_config_data(data)` give a GatewayConfig or raise ConfigError,
whose problems each carry a file, line and column; `load(path)` also gives the warnings
`hearthgate check` prints. The modules, bottom up: `models` (what a config means),
`positions` (the YAML reader), `secrets`, `reporting` (problems in an installer's words),
`entries`, `references` and `sites` (validation against the registry), `checks` (the
warnings), `loading` (the passes in order); `schema` writes the JSON Schema for editors
(`python -m hearthgate.config.schema`) and is not imported here.
"""

from hearthgate.config.loading import LoadResult, load, load_config, parse_config_data
from hearthgate.config.models import (
    ConfigError,
    ConfigProblem,
    GatewayConfig,
    GatewaySection,
    RuleConfig,
    SiteConfig,
    TlsSection,
    UplinkSection,
)

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "GatewayConfig",
    "GatewaySection",
    "LoadResult",
    "RuleConfig",
    "SiteConfig",
    "TlsSection",
    "UplinkSection",
    "load",
    "load_config",
    "parse_config_data",
]
