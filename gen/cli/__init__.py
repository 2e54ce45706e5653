"""``attn-rtl``: the command line.  Thin: parse, call attn_rtl.gen and attn_rtl.sim, print.

One module per command, each with its ``cmd_*`` function and an ``add_parser`` that adds its
subcommand; :mod:`.common` holds what they share.  Every bad input ends in one line
``attn-rtl: error: ...`` on stderr and exit status 2; a simulation mismatch ends in exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from attn_rtl.sim.runner import CACHE_VARIABLE

from . import bench, build, explore, generate, golden, presets, sim, sweep
from .common import CliError, Parser

__all__ = ["main", "build_parser"]

#: The commands in the order ``attn-rtl --help`` lists them.
COMMANDS = (generate, sweep, build, sim, golden, bench, presets, explore)


def build_parser() -> argparse.ArgumentParser:
    from attn_rtl.gen.provenance import version_line

    parser = Parser(prog="attn-rtl", description="Generate, simulate and check attention-accelerator RTL.")
    parser.add_argument("--version", action="version", version=version_line())
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help=f"keep builds, conversions and logs here (default: ${CACHE_VARIABLE}, else the "
                             "user's cache folder)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv=None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.cache_dir is not None:
            # Through the environment, so that worker processes (sweeps, simulators) see it too.
            os.environ[CACHE_VARIABLE] = os.path.abspath(os.path.expanduser(args.cache_dir))
        if args.command is None:
            parser.print_help()
            return 2
        return args.func(args)
    except (CliError, ValueError) as e:
        print(f"attn-rtl: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `attn-rtl ... | head`: the reader is gone; stop writing without a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1

