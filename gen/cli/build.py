"""``attn-rtl build UNIT --board NAME``: a demo bitstream of a unit on a board."""

from __future__ import annotations

from pathlib import Path

from .common import CliError, add_unit_command, unit_params


def cmd_build(args) -> int:
    if args.memory_mapped:
        raise CliError("--memory-mapped: build takes the streaming engine; generate or sim the memory-mapped top")
    from attn_rtl.gen.flows.boards import build_board

    result = build_board(args.board, args.unit, unit_params(args), Path(args.output), check_only=args.check_only)
    area = ", ".join(f"{v:,} {k.upper()}" for k, v in result["area"].items())
    print(f"attn-rtl build: {args.unit} on {result['board']} ({result['part']}): fits ({area})")
    if result["bitstream"]:
        print(f"  bitstream: {result['bitstream']} (nextpnr: {result['fmax_mhz']} MHz on the board clock)")
    elif not args.check_only:
        print(f"  build scripts (run them where Vivado is installed): {', '.join(result['files'])}")
    return 0


def add_parser(sub) -> None:
    build_p = add_unit_command(sub, "build", "a demo bitstream of a unit on a board (amaranth-boards, YoWASP)",
                           unit_required=False)
    build_p.add_argument("--board", required=True, metavar="NAME",
                         help="ulx3s-85f, icebreaker, or arty-a7-35 (Vivado scripts only)")
    build_p.add_argument("--check-only", action="store_true", help="check that the configuration fits, build nothing")
    build_p.add_argument("-o", "--output", required=True, metavar="DIR", help="build folder")
    build_p.set_defaults(func=cmd_build)
