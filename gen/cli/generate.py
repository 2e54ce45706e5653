"""``attn-rtl generate UNIT -o DIR``: Verilog, manifest and collateral of one unit."""

from __future__ import annotations

from pathlib import Path

from .common import add_unit_command, unit_name, unit_params


def cmd_generate(args) -> int:
    from attn_rtl.gen.flows.collateral import DEFAULT_CLOCK_MHZ
    from attn_rtl.gen.generate import write_outputs

    clock = DEFAULT_CLOCK_MHZ if args.clock_mhz is None else args.clock_mhz
    paths = write_outputs(unit_name(args), unit_params(args), Path(args.output), clock_mhz=clock)
    print(f"wrote {len(paths)} files into {args.output}: {', '.join(sorted(paths))}")
    return 0


def add_parser(sub) -> None:
    gen_p = add_unit_command(sub, "generate", "write a unit's Verilog and JSON manifest", unit_required=True)
    gen_p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    gen_p.add_argument("--clock-mhz", type=float, default=None, metavar="MHZ",
                       help="clock of the SDC/XDC constraints (default 100)")
    gen_p.set_defaults(func=cmd_generate)
