"""``attn-rtl sweep UNIT``: Yosys area (and nextpnr Fmax) over a parameter grid, parallel and resumable."""

from __future__ import annotations

from pathlib import Path

from .common import CliError, add_unit_command, unit_params


def cmd_sweep(args) -> int:
    if args.memory_mapped:
        raise CliError("--memory-mapped: sweep takes the streaming engine; generate or sim the memory-mapped top")
    from attn_rtl.gen.flows.sweep import load_sweep_file, parse_grid, run_sweep, sweep_points

    spec = load_sweep_file(args.sweep_file) if args.sweep_file else {}
    if spec.get("unit", args.unit) != args.unit:
        raise CliError(f"the sweep file is for unit {spec['unit']!r}, not {args.unit!r}")
    if args.grid is None and "grid" not in spec:
        raise CliError("give the parameters to vary with --grid or --sweep-file")
    grid = parse_grid(args.grid) if args.grid is not None else spec["grid"]
    base = {**unit_params(args), **spec.get("base", {})}
    targets = args.targets.split(",") if args.targets else spec.get("targets", ["ecp5"])
    seeds = args.seeds if args.seeds is not None else spec.get("seeds", [1])
    if isinstance(seeds, str):
        try:
            seeds = [int(x) for x in seeds.split(",")]
        except ValueError:
            raise CliError(f"--seeds must be comma-separated integers, not {seeds!r}") from None
    timeout = args.timeout if args.timeout is not None else spec.get("timeout", 1800)
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise CliError(f"--timeout must be a positive number of seconds, not {timeout!r}")
    points = sweep_points(args.unit, base, grid, [t.strip() for t in targets],
                          pnr=bool(args.pnr if args.pnr is not None else spec.get("pnr", False)), seeds=seeds)
    workload_name = args.workload if args.workload is not None else spec.get("workload")
    workload = None
    if workload_name is not None:
        if args.unit != "engine":
            raise CliError(f"--workload applies to the engine, not to {args.unit}")
        from attn_rtl.gen.cost.workloads import load_workload
        workload = load_workload(workload_name)
    outcome = run_sweep(points, Path(args.output), jobs=args.jobs, timeout=timeout, scheduler=args.scheduler,
                        workload=workload)
    bad = [r for r in outcome["results"] if r["status"] != "ok"]
    print(f"attn-rtl sweep: {len(points)} points ({outcome['computed']} computed, {outcome['reused']} reused), "
          f"{len(bad)} failed; wrote {', '.join(outcome['files'].values())}")
    for r in bad:
        print(f"  {r['status']}: {r['target']} {r['varied']}: {r['error']} (log {r['log']})")
    return 1 if bad else 0


def add_parser(sub) -> None:
    sweep_p = add_unit_command(sub, "sweep", "Yosys area (and nextpnr Fmax) over a parameter grid x targets, parallel "
                                    "and resumable", unit_required=True)
    sweep_p.add_argument("--grid", default=None, metavar="NAME=V1,V2 ...",
                         help="parameters to vary, e.g. 'rows=2,4 cols=2,4' (the preset, config and flags are the base)")
    sweep_p.add_argument("--sweep-file", default=None, metavar="FILE.toml",
                         help="the sweep in TOML: unit, targets, pnr, seeds, timeout, [grid], [base]")
    sweep_p.add_argument("--targets", default=None, metavar="T1,T2", help="ecp5, ice40, xilinx7 (default ecp5)")
    sweep_p.add_argument("--pnr", action="store_true", default=None, help="also place and route (Fmax, ecp5)")
    sweep_p.add_argument("--seeds", default=None, metavar="S1,S2", help="nextpnr seeds (default 1)")
    sweep_p.add_argument("--jobs", type=int, default=2, help="parallel jobs (local processes)")
    sweep_p.add_argument("--timeout", type=float, default=None, help="seconds per tool run (default 1800)")
    sweep_p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="run the jobs on this Dask scheduler")
    sweep_p.add_argument("--workload", default=None, metavar="NAME|FILE",
                         help="engine: add each point's predicted cycles for this workload (cost model) and "
                              "plot area against cycles (sweep-cycles.png)")
    sweep_p.add_argument("-o", "--output", required=True, metavar="DIR",
                         help="results: points/ (the cache), logs/, sweep.csv, sweep.json, sweep.png")
    sweep_p.set_defaults(func=cmd_sweep)
