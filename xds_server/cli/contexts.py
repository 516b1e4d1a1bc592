"""Contexts: named ways to reach a control plane, kept in xdsctl's config file.

``$XDG_CONFIG_HOME/xdsctl/config.yaml`` (default ``~/.config/xdsctl/config.yaml``):

    current-context: prod
    contexts:
      prod: {server: xds.prod.internal:18001, token-file: ~/.xds/prod.token, ca: ...}
      local: {server: 127.0.0.1:18001}

A connection setting comes from its flag, else its environment variable, else the
context (``--context NAME``, else ``XDSCTL_CONTEXT``, else ``current-context``). The
file holds paths, never a token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xds_server.cli.client import EXIT_USAGE
from xds_server.errors import CliError
from xds_server.model.names import did_you_mean

CONTEXT_ENV = "XDSCTL_CONTEXT"
# What a context may set: the connection flags, by their names without "--".
SETTINGS = ("server", "token-file", "ca", "cert", "key")


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "xdsctl" / "config.yaml"


@dataclass
class Config:
    current: str | None = None
    contexts: dict[str, dict[str, str]] = field(default_factory=dict)


def load() -> Config:
    """The config file, or an empty config when there is none; a broken file is refused
    with where it is and what is wrong."""
    path = config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Config()
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}", EXIT_USAGE) from error
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text: fix or remove it", EXIT_USAGE) from None
    try:
        document: Any = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise CliError(f"{path} is not YAML ({error}): fix or remove it", EXIT_USAGE) from None
    contexts = document.get("contexts", {}) if isinstance(document, dict) else None
    valid = isinstance(contexts, dict) and all(
        isinstance(name, str)
        and isinstance(values, dict)
        and all(key in SETTINGS and isinstance(value, str) for key, value in values.items())
        for name, values in contexts.items()
    )
    if not valid:
        raise CliError(
            f"{path} is not an xdsctl config: it holds `current-context: NAME` and "
            f"`contexts: {{NAME: {{{', '.join(SETTINGS)}}}}}`; fix it, or set contexts again "
            "with `xdsctl config set-context`",
            EXIT_USAGE,
        )
    current = document.get("current-context")
    return Config(current if isinstance(current, str) else None, dict(contexts))


def save(config: Config) -> Path:
    """Write the config file (readable by its owner only: it says where tokens are)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"contexts": config.contexts}
    if config.current is not None:
        document = {"current-context": config.current, **document}
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file too
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    return path


def selected(flag: str | None) -> tuple[str, dict[str, str]] | None:
    """The context in force (``--context``, ``XDSCTL_CONTEXT``, then the current one) and
    its settings; None when none is named anywhere."""
    config = load()
    name = flag or os.environ.get(CONTEXT_ENV) or config.current
    if name is None:
        return None
    return name, named(config, name)


def named(config: Config, name: str) -> dict[str, str]:
    """Context ``name``'s settings; an unknown name is refused with the closest one."""
    if name not in config.contexts:
        known = ", ".join(sorted(config.contexts)) or "none yet"
        raise CliError(
            f"no context named {name} in {config_path()} (contexts: {known}): "
            f"{did_you_mean(name, config.contexts)}"
            f"add it with `xdsctl config set-context {name} --server HOST:PORT`",
            EXIT_USAGE,
        )
    return config.contexts[name]
