"""``attn-rtl explore``: exhaustive design-space enumeration with the cost model."""

from __future__ import annotations

from pathlib import Path

from .common import CliError


def cmd_explore(args) -> int:
    from attn_rtl.gen.cost.explore import config_toml, explore, parse_budget, plot_pareto
    from attn_rtl.gen.cost.workloads import load_workload

    if args.top < 1:
        raise CliError(f"--top must be a positive integer, not {args.top}")
    workload = load_workload(args.workload)
    result = explore(workload, args.target, args.objective, budget=parse_budget(args.budget), top=args.top,
                     memory_mapped=args.memory_mapped)
    t = result.table
    # Files first: a reader that stops early (`| head`) must not cost the plot or the configuration.
    plot = plot_pareto(result, Path(args.plot))
    if args.emit:
        best = int(result.best[0])
        Path(args.emit).write_text(config_toml(result.config(best), result, best))
    print(f"{workload.name} on {args.target}: {result.candidates:,} configurations in {result.seconds:.2f} s "
          f"({result.candidates_per_second:,.0f} per second); {result.feasible:,} fit and lie in the model's "
          f"validated domain")
    print(f"clock {result.fmax_mhz} MHz ({result.fmax_source})")
    header = ["rows", "cols", "prob_tiles", "max_seq_len", "max_head_dim", "max_heads", "multiplier", "fifo_memory",
              "cycles", "latency_us", "energy_uj", "lut", "ff", "dsp", "bram", "memory_kbit"]
    if args.memory_mapped:
        header[8:8] = ["kv_buffer_keys", "read_kbyte"]
    if "sliding" in t:
        header[8:8] = ["sliding"]
    lines = []
    for i in result.best:
        c = result.config(i)
        lines.append([c["rows"], c["cols"], c["prob_tiles"], c["max_seq_len"], c["max_head_dim"], c["max_heads"],
                      c["multiplier"], c["fifo_memory"], f"{t['cycles'][i]:,.0f}", f"{t['latency_us'][i]:,.1f}",
                      f"{t['energy_uj'][i]:,.1f}", f"{t['lut'][i]:,.0f}", f"{t['ff'][i]:,.0f}",
                      f"{t['dsp'][i]:,.0f}", f"{t['bram'][i]:,.0f}", f"{t['memory_bits'][i] / 1024:,.1f}"])
        if args.memory_mapped:
            lines[-1][8:8] = [c["kv_buffer_keys"], f"{t['read_bytes'][i] / 1024:,.1f}"]
        if "sliding" in t:
            lines[-1][8:8] = [("yes, global row" if c["global_row"] else "yes") if c["sliding"] else "no"]
    widths = [max(len(str(h)), *(len(str(row[k])) for row in lines)) for k, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in lines:
        print("  ".join(str(v).rjust(w) for v, w in zip(row, widths)))
    print(f"wrote {plot}")
    if args.emit:
        mapped = " --memory-mapped" if args.memory_mapped else ""
        print(f"wrote {args.emit} (attn-rtl generate engine{mapped} --config {args.emit} -o DIR)")
    return 0


def add_parser(sub) -> None:
    from attn_rtl.gen.cost.explore import OBJECTIVES
    from attn_rtl.gen.cost.model import TARGETS as PARTS
    from attn_rtl.gen.cost.workloads import WORKLOADS

    exp = sub.add_parser("explore", help="enumerate every engine configuration for a workload with the cost model",
                         description="Exhaustive design-space enumeration with the analytical cost model "
                                     "(docs/cost-model.md): the best configurations as a table, a Pareto plot, "
                                     "optionally the chosen configuration as a TOML file for generate.")
    exp.add_argument("--workload", required=True, metavar="NAME|FILE",
                     help=f"a preset ({', '.join(WORKLOADS)}) or a TOML file")
    exp.add_argument("--target", required=True, choices=list(PARTS))
    exp.add_argument("--objective", choices=OBJECTIVES, default="latency")
    exp.add_argument("--budget", metavar="lut=N,dsp=N,bram=N", help="resource limits below the part's")
    exp.add_argument("--top", type=int, default=10, help="rows of the table (default 10)")
    exp.add_argument("--plot", metavar="FILE.png", default="explore-pareto.png",
                     help="Pareto plot (default explore-pareto.png)")
    exp.add_argument("--emit", metavar="FILE.toml", help="write the best configuration for `generate engine --config`")
    exp.add_argument("--memory-mapped", action="store_true",
                     help="candidates are the memory-mapped top, with and without a K/V buffer holding the "
                          "workload's keys (its bits in the area, its off-chip bytes in the energy)")
    exp.set_defaults(func=cmd_explore)
