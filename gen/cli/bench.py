"""``attn-rtl bench UNIT``: measure a unit in RTL and write its table into docs/."""

from __future__ import annotations

from .common import CliError


def cmd_bench(args) -> int:
    from attn_rtl.gen.bench import array as bench_array
    from attn_rtl.gen.bench import cost as bench_cost
    from attn_rtl.gen.bench import decoder as bench_decoder
    from attn_rtl.gen.bench import engine as bench_engine
    from attn_rtl.gen.bench import softmax as bench_softmax
    from attn_rtl.gen.bench import sparse as bench_sparse
    from attn_rtl.gen.bench import spatten as bench_spatten
    from attn_rtl.gen.bench import system as bench_system
    from attn_rtl.gen.bench import timing as bench_timing
    from attn_rtl.gen.bench import topk as bench_topk
    from attn_rtl.gen.bench import verification as bench_verification

    module = {"array": bench_array, "softmax": bench_softmax, "engine": bench_engine, "sparse": bench_sparse,
              "topk": bench_topk, "spatten": bench_spatten, "cost": bench_cost,
              "timing": bench_timing, "decoder": bench_decoder, "system": bench_system,
              "verification": bench_verification}[args.unit]
    parts = [p.strip() for p in (args.parts or ",".join(module.PARTS)).split(",") if p.strip()]
    known = getattr(module, "part_names", lambda: module.PARTS)()
    for part in parts:
        if part not in known:
            raise CliError(f"--parts must name {', '.join(known)} for {args.unit}, not {part!r}")
    if args.jobs < 1:
        raise CliError(f"--jobs must be a positive integer, not {args.jobs}")
    try:
        seeds = tuple(int(x) for x in args.seeds.split(","))
    except ValueError:
        raise CliError(f"--seeds must be comma-separated integers, not {args.seeds!r}") from None
    if args.widest_nets:
        if args.unit != "timing":
            raise CliError(f"--widest-nets is for bench timing, not bench {args.unit}")
        print(bench_timing.widest(parts))
        return 0
    if args.deep_paths:
        if args.unit != "timing":
            raise CliError(f"--deep-paths is for bench timing, not bench {args.unit}")
        print(bench_timing.deep(parts))
        return 0
    runs = {"softmax": lambda: bench_softmax.run(parts, jobs=args.jobs, seeds=seeds),
            "engine": lambda: bench_engine.run(parts, sim=args.sim, jobs=args.jobs, seeds=seeds),
            "sparse": lambda: bench_sparse.run(parts, sim=args.sim),
            "decoder": lambda: bench_decoder.run(parts, sim=args.sim),
            "system": lambda: bench_system.run(parts, sim=args.sim),
            "topk": lambda: bench_topk.run(parts, sim=args.sim, jobs=args.jobs),
            "spatten": lambda: bench_spatten.run(parts, sim=args.sim),
            "cost": lambda: bench_cost.run(parts),
            "verification": lambda: bench_verification.run(parts, sim=args.sim),
            "timing": lambda: bench_timing.run(parts, seeds=seeds)}
    if args.unit in runs:
        print(f"wrote {runs[args.unit]()}")
        return 0
    try:
        sizes = [tuple(int(n) for n in size.lower().split("x")) for size in args.sizes.split(",")]
        assert all(len(size) == 2 and min(size) > 0 for size in sizes)
    except (ValueError, AssertionError):
        raise CliError(f"--sizes must be like 4x4,8x8, not {args.sizes!r}") from None
    out = bench_array.run(parts, sim=args.sim, jobs=args.jobs, seeds=seeds, sizes=sizes)
    print(f"wrote {out}")
    return 0


def add_parser(sub) -> None:
    bench = sub.add_parser("bench", help="measure a unit (cycles, area, Fmax) and write the table into docs/",
                           description="Run a benchmark and write its Markdown table into docs/.")
    bench.add_argument("unit", choices=["array", "softmax", "engine", "sparse", "decoder", "topk", "spatten", "cost",
                                        "timing", "system", "verification"])
    bench.add_argument("--parts", default=None,
                       help="comma-separated; array: utilization, area, fmax; softmax: accuracy, area, fmax; "
                            "engine: utilization, area, fmax; sparse: utilization; decoder: prefill, decode; "
                            "topk: table; timing: units, proxy, softmax, array, engine, engine_sparse, "
                            "engine_spatten; verification: proofs, mutations, soak (default: all)")
    bench.add_argument("--sim", choices=["icarus", "verilator"], default="verilator")
    bench.add_argument("--jobs", type=int, default=2, help="parallel synthesis jobs")
    bench.add_argument("--seeds", default="1,2,3", help="nextpnr seeds (median reported)")
    bench.add_argument("--sizes", default="4x4,8x8,16x16", help="array: sizes for the area tables")
    bench.add_argument("--widest-nets", action="store_true",
                       help="timing: synthesize only and print each design's widest nets (no place and route)")
    bench.add_argument("--deep-paths", action="store_true",
                       help="timing: synthesize only and print each design's deepest register-to-register paths, "
                            "estimated (no place and route)")
    bench.set_defaults(func=cmd_bench)
