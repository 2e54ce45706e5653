"""Parameter sets from presets, TOML files and flags, merged in that order and validated up front."""

from __future__ import annotations

import tomllib
from pathlib import Path

from .generate import unit
from .presets import PRESETS

__all__ = ["resolve_params", "load_config_file"]

#: Units that take another unit's presets and config table (the memory-mapped top: the engine's).
_SHARES_PARAMETERS_OF = {"engine_mm": "engine"}


def load_config_file(path, unit_name: str) -> dict:
    """Parameters for ``unit_name`` from a TOML file: its ``[unit_name]`` table, else its top level."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"cannot read config {path}: {e.strerror or e}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config {path} is not valid TOML: {e}") from None
    table = doc.get(_SHARES_PARAMETERS_OF.get(unit_name, unit_name), doc)
    if not isinstance(table, dict):
        raise ValueError(f"config {path}: [{unit_name}] must be a table, not {table!r}")
    tables = {name for name, default in unit(unit_name).defaults.items() if name == "numerics"}
    for key, value in table.items():
        if isinstance(value, dict) and key not in tables:
            raise ValueError(f"config {path}: unknown table [{key}]; expected parameters of {unit_name!r}")
    return dict(table)


def resolve_params(unit_name: str, preset: str | None = None, config: str | None = None,
                   overrides: dict | None = None) -> dict:
    """Preset, then config file, then ``overrides`` (CLI flags); validated, defaults filled in."""
    u = unit(unit_name)
    params: dict = {}
    if preset is not None:
        presets = PRESETS.get(_SHARES_PARAMETERS_OF.get(unit_name, unit_name), {})
        if preset not in presets:
            raise ValueError(f"preset must be one of {', '.join(presets) or '(none)'} for {unit_name}, not {preset!r}")
        params.update(presets[preset])
    if config is not None:
        params.update(load_config_file(config, unit_name))
    params.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return u.validate(**params)
