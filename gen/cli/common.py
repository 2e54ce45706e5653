"""What every command shares: one-line errors, the unit flags built from the units' parameter
tables, parameters resolved from preset, config file and flags, simulation reports."""

from __future__ import annotations

import argparse
import json


class CliError(Exception):
    """A one-line user error."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise CliError(message)


def flag_defaults() -> dict:
    """Every unit's flag-settable parameters (name -> default); a table such as numerics is
    set in a config file only."""
    from attn_rtl.gen.generate import UNITS
    from attn_rtl.hdl.engine_mm import MEMORY_DEFAULTS

    out = {}
    for u in UNITS.values():
        for name, default in u.defaults.items():
            if name != "numerics":
                out.setdefault(name, default)
    out.update(MEMORY_DEFAULTS)   # the memory-mapped top's (--memory-mapped)
    return out


def unit_flags(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """One flag per elaboration parameter (``--a-width``, ``--a-signed/--no-a-signed``, ...)."""
    group = parser.add_argument_group("unit parameters (override preset and config file; each applies "
                                      "to the units that have it)")
    for name, default in defaults.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                               help=f"(default {str(default).lower()})")
        elif isinstance(default, str):
            group.add_argument(flag, dest=name, default=None, metavar="NAME", help=f"(default {default})")
        else:
            group.add_argument(flag, dest=name, type=int, default=None, metavar="N",
                               help=f"(default {'derived' if default is None else default})")
    if "a_width" in defaults and "b_width" in defaults:
        group.add_argument("--data-width", dest="data_width", type=int, default=None, metavar="N",
                           help="set both operand widths")


def overrides(args, defaults: dict) -> dict:
    from attn_rtl.hdl.engine_mm import MEMORY_DEFAULTS

    given = {name for name in flag_defaults() if getattr(args, name, None) is not None}
    memory = sorted(given & set(MEMORY_DEFAULTS))
    if memory and not getattr(args, "memory_mapped", False):
        raise CliError(f"--{memory[0].replace('_', '-')} applies to the memory-mapped top: add --memory-mapped")
    if getattr(args, "memory_mapped", False):
        defaults = {**defaults, **MEMORY_DEFAULTS}
    if getattr(args, "data_width", None) is not None:
        given.add("data_width")
    allowed = set(defaults) | ({"data_width"} if "a_width" in defaults else set())
    foreign = sorted(given - allowed)
    if foreign:
        raise CliError(f"--{foreign[0].replace('_', '-')} is not a parameter of {args.unit}")
    out = {name: getattr(args, name) for name in given - {"data_width"}}
    if "data_width" in given:
        out.setdefault("a_width", args.data_width)
        out.setdefault("b_width", args.data_width)
    return out


def unit_params(args) -> dict:
    """The unit's parameters from preset, config file and flags; with ``--memory-mapped`` (the engine
    only) those of the memory-mapped top: the engine's, then the memory flags."""
    from attn_rtl.gen.config import resolve_params
    from attn_rtl.gen.generate import unit
    given = overrides(args, unit(args.unit).defaults)
    if not getattr(args, "memory_mapped", False):
        return resolve_params(args.unit, preset=args.preset, config=args.config, overrides=given)
    if args.unit != "engine":
        raise CliError(f"--memory-mapped applies to the engine, not to {args.unit}")
    return resolve_params("engine_mm", preset=args.preset, config=args.config, overrides=given)


def unit_name(args) -> str:
    """The unit a command builds: ``engine_mm`` for the engine with ``--memory-mapped``."""
    return "engine_mm" if getattr(args, "memory_mapped", False) and args.unit == "engine" else args.unit


def run_simulation(run) -> tuple[dict, bool]:
    """Run a simulation; a mismatch becomes a failed report, not an exception."""
    from attn_rtl.sim.runner import SimulationFailure

    try:
        return run(), True
    except SimulationFailure as e:
        counts = {k: e.report[k] for k in ("mismatch_count", "elements")} if e.report else {}
        return {"passed": False, "error": str(e), **counts}, False


def print_json(args, params, report, passed) -> int:
    print(json.dumps({"unit": args.unit, "parameters": params, **report}, indent=1))
    return 0 if passed else 1


def header_or_json(args, params, report, passed, what: str) -> int | None:
    """With ``--json`` print the report; else the header line and, on failure, the error.
    Returns the exit status when nothing more is to be printed, else ``None``."""
    if args.json:
        return print_json(args, params, report, passed)
    print(f"attn-rtl sim: {what} on {args.sim}, seed {args.seed}")
    if not passed:
        print(f"FAIL: {report['error']}")
        return 1
    return None


def add_unit_command(sub, name: str, help_text: str, unit_required: bool) -> argparse.ArgumentParser:
    """A command that builds one unit: the unit, ``--preset``, ``--config`` and one flag per parameter of
    every unit (from the units' parameter tables)."""
    from attn_rtl.gen.generate import UNITS

    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("unit", choices=sorted(UNITS), nargs=None if unit_required else "?", default="engine",
                   help="block to build (default: engine)")
    p.add_argument("--preset", help="named parameter set (see attn-rtl presets)")
    p.add_argument("--config", metavar="FILE.toml", help="TOML file of parameters ([UNIT] table or top level)")
    p.add_argument("--memory-mapped", action="store_true",
                   help="engine: the memory-mapped top (AXI4 master DMA, registers, irq; docs/system.md) with "
                        "the memory flags --bus-width, --addr-width, --id-width, --kv-buffer-keys, --outstanding")
    unit_flags(p, flag_defaults())
    return p
