"""The daemon configuration file (``/etc/pullgate/config.toml``): types, defaults, validation.

Stable keys (docs/architecture.md §4): ``trust_dir``, ``hosts_dir``, ``[api] socket``,
``[cri] socket``, ``[cri] upstream``, ``[metrics] address``, ``[statements."<name>"] require /
on_inconclusive / mode``. Everything else is an addition with a default.

This module is the one import point for the rest of the daemon; the work is split in three:

* :mod:`pullgate.config.model`: the frozen dataclasses and enums, with their defaults;
* :mod:`pullgate.config.load`: reading the file and validating every table (the loading rules:
  relative paths, absolute sockets, loopback metrics, …);
* :mod:`pullgate.config.checker`: typed reads of TOML values that collect all problems at once.
"""

from __future__ import annotations

from pullgate.config.load import (
    load_config,
    load_process_settings,
    parse_config,
    read_config_file,
)
from pullgate.config.model import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_STATEMENT,
    ApiConfig,
    BreakGlassConfig,
    CacheConfig,
    CriConfig,
    DaemonConfig,
    ImageVerifierConfig,
    InconclusiveAction,
    MetricsConfig,
    Mode,
    NriConfig,
    RegistryConfig,
    Requirement,
    RuntimeConfig,
    StatementSettings,
    VerificationConfig,
    VerifierPlatforms,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_STATEMENT",
    "ApiConfig",
    "BreakGlassConfig",
    "CacheConfig",
    "CriConfig",
    "DaemonConfig",
    "ImageVerifierConfig",
    "InconclusiveAction",
    "MetricsConfig",
    "Mode",
    "NriConfig",
    "RegistryConfig",
    "Requirement",
    "RuntimeConfig",
    "StatementSettings",
    "VerificationConfig",
    "VerifierPlatforms",
    "load_config",
    "load_process_settings",
    "parse_config",
    "read_config_file",
]
