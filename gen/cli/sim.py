"""``attn-rtl sim UNIT``: simulate the array, softmax unit, scheduler or top-k engine against its golden
model (the engine: :mod:`.sim_engine`)."""

from __future__ import annotations

from .common import CliError, add_unit_command, header_or_json, run_simulation, unit_params
from .layer_flags import cascade_flags, decoder_pattern, decoder_requested, decoder_shape, pattern_flags, pattern_of
from .sim_engine import sim_engine


def cmd_sim(args) -> int:
    from attn_rtl.gen.simulate import check_probability, check_seed

    # Refused before any Verilog is generated or built (seconds to a minute).
    check_seed(args.seed)
    for name in ("idle", "stall"):
        check_probability(name, getattr(args, name))
    if args.unit == "engine":
        return sim_engine(args)
    if args.unit == "scheduler":
        return _sim_scheduler(args)
    if args.unit == "topk":
        return _sim_topk(args)
    if args.n is not None or args.k is not None:
        raise CliError(f"{'--n' if args.n is not None else '--k'} applies to the top-k engine, not to {args.unit}")
    engine_only = [flag for flag, value in (("--seq-len", args.seq_len), ("--head-dim", args.head_dim),
                                            ("--heads", args.heads), ("--inputs", args.inputs),
                                            ("--output", args.output), ("--window", args.window),
                                            ("--dilation", args.dilation), ("--grid", args.grid),
                                            ("--window2d", args.window2d), ("--global", args.global_tokens),
                                            ("--kv-heads", args.kv_heads), ("--q-len", args.q_len),
                                            ("--kv-len", args.kv_len))
                   if value is not None]
    if args.pattern != "dense":
        engine_only.insert(0, "--pattern")
    if args.diagonal:
        engine_only.insert(0, "--diagonal")
    if engine_only:
        raise CliError(f"{engine_only[0]} applies to the engine, not to {args.unit}")
    if args.unit == "softmax":
        return _sim_softmax(args)
    if args.keys is not None:
        raise CliError("--keys applies to the softmax unit; the array takes --tiles and --depth")
    from attn_rtl.gen.simulate import simulate_array

    params = unit_params(args)
    tiles = None if args.tiles is None else [args.depth or params["max_reduction"]] * args.tiles
    if args.tiles is None and args.depth is not None:
        tiles = [args.depth] * 4
    if tiles is not None and not tiles:
        raise CliError("--tiles must be a positive integer, not 0")
    report, passed = run_simulation(lambda: simulate_array(params, sim=args.sim, seed=args.seed, tiles=tiles,
                                                           idle=args.idle, stall=args.stall))
    shape = f"{params['rows']}x{params['cols']}"
    kinds = f"a {'s' if params['a_signed'] else 'u'}{params['a_width']}, b {'s' if params['b_signed'] else 'u'}{params['b_width']}"
    done = header_or_json(args, params, report, passed, f"{args.unit} {shape} ({kinds}, acc {params['acc_width']} bits)")
    if done is not None:
        return done
    print(f"  tiles: {len(report['tiles'])} x reduction {report['tiles'][0]}, idle {args.idle}, backpressure {args.stall}")
    print(f"  PASS: {report['elements']} of {report['elements']} result elements bit-exact against numpy matmul")
    print(f"  cycles: {report['cycles']} from first operand accepted to last result sent "
          f"(model without stalls: {report['model_cycles']}); {report['macs']} MACs, "
          f"utilization {report['macs'] / (params['rows'] * params['cols'] * report['cycles']):.1%}")
    return 0


def _sim_softmax(args) -> int:
    from attn_rtl.gen.simulate import simulate_softmax

    if args.tiles is not None or args.depth is not None:
        raise CliError("--tiles and --depth apply to the array; the softmax unit takes --keys")
    params = unit_params(args)
    keys = 4 * params["lanes"] if args.keys is None else args.keys
    if keys < 1 or keys > params["max_seq_len"]:
        raise CliError(f"--keys must be from 1 to max_seq_len = {params['max_seq_len']}, not {keys}")
    # One query block of every slot: random scores with a random mask, key tiles in random order.
    groups = [dict(rows=params["slots"], keys=keys, mask="random", order="random")]
    report, passed = run_simulation(lambda: simulate_softmax(params, sim=args.sim, seed=args.seed, groups=groups,
                                                             idle=args.idle, stall=args.stall))
    done = header_or_json(args, params, report, passed,
                          f"softmax, {params['lanes']} lanes, {params['slots']} slots, scores of "
                          f"{params['score_width']} bits")
    if done is not None:
        return done
    print(f"  {params['slots']} rows x {keys} keys (random mask, random tile order), idle {args.idle}, "
          f"backpressure {args.stall}")
    print(f"  PASS: {report['elements']} of {report['elements']} output fields bit-exact against "
          f"sim/softmax_stream.py ({report['beats']} beats, {report['row_ends']} row ends)")
    print(f"  cycles: {report['cycles']} from first to last beat accepted ({report['beats']} beats); "
          f"latency {report['latency']} (probabilities), {report['sum_latency']} (reciprocal)")
    return 0


def _check_sizes(params: dict, *sizes) -> None:
    """Each ``(flag, value, bound)``: a positive value no larger than the build's ``params[bound]``."""
    for flag, value, name in sizes:
        if value < 1:
            raise CliError(f"{flag} must be a positive integer, not {value}")
        if value > params[name]:
            raise CliError(f"{flag} must be at most {name} = {params[name]}, not {value}")


def _sim_scheduler(args) -> int:
    from attn_rtl.gen.simulate import simulate_scheduler

    stray = [flag for flag, value in (("--tiles", args.tiles), ("--depth", args.depth), ("--keys", args.keys),
                                      ("--head-dim", args.head_dim), ("--inputs", args.inputs),
                                      ("--output", args.output)) if value is not None]
    if stray or args.idle:
        raise CliError(f"{(stray or ['--idle'])[0]} does not apply to the scheduler "
                       "(it takes --seq-len, --heads, --stall and the pattern flags)")
    params = unit_params(args)
    heads, kv_heads, query_len, seq_len = decoder_shape(args, min(128, params["max_seq_len"]))
    _check_sizes(params, ("--seq-len", seq_len, "max_seq_len"), ("--heads", heads, "max_heads"))
    pattern = decoder_pattern(args, seq_len) if decoder_requested(args) else pattern_of(args, seq_len)
    run = dict(pattern=pattern.to_dict(), seq_len=seq_len, heads=kv_heads, query_len=query_len,
               group=heads // kv_heads)
    report, passed = run_simulation(lambda: simulate_scheduler(params, [run], sim=args.sim, seed=args.seed,
                                                               stall=args.stall))
    done = header_or_json(args, params, report, passed,
                          f"scheduler {params['rows']}x{params['cols']}, {pattern.to_dict()}, L={seq_len}, "
                          f"heads={heads}")
    if done is not None:
        return done
    print(f"  PASS: {report['elements']} tile fields and mask bits bit-exact against the golden schedule; "
          f"{report['cycles']} cycles from start to the last tile")
    return 0


def _sim_topk(args) -> int:
    from attn_rtl.gen.simulate import simulate_topk

    stray = [flag for flag, value in (("--tiles", args.tiles), ("--depth", args.depth), ("--keys", args.keys),
                                      ("--seq-len", args.seq_len), ("--head-dim", args.head_dim),
                                      ("--heads", args.heads), ("--inputs", args.inputs),
                                      ("--output", args.output)) if value is not None]
    if stray or args.pattern != "dense":
        raise CliError(f"{(stray or ['--pattern'])[0]} does not apply to the top-k engine (it takes --n and --k)")
    params = unit_params(args)
    n = params["max_n"] if args.n is None else args.n
    k = params["max_k"] if args.k is None else args.k
    _check_sizes(params, ("--n", n, "max_n"), ("--k", k, "max_k"))
    # Random values, then the same with many ties, then an ascending ramp: three answers to check.
    problems = [dict(n=n, k=k, kind=kind) for kind in ("random", "few", "ascending")]
    measure = args.idle == 0 and args.stall == 0
    report, passed = run_simulation(lambda: simulate_topk(params, problems, sim=args.sim, seed=args.seed,
                                                          idle=args.idle, stall=args.stall, measure=measure))
    done = header_or_json(args, params, report, passed,
                          f"top-k, {params['lanes']} lanes, {'signed' if params['signed'] else 'unsigned'} "
                          f"{params['value_width']}-bit values, n={n}, k={k}")
    if done is not None:
        return done
    print(f"  PASS: {report['elements']} output fields bit-exact against sim/topk.py "
          f"(3 problems: random, many ties, ascending)")
    if measure:
        print(f"  cycles per problem (first value accepted to last pair taken): "
              f"{', '.join(map(str, report['cycles_per_problem']))}")
    return 0


def add_parser(sub) -> None:
    sim_p = add_unit_command(sub, "sim", "generate a unit and simulate it under cocotb against its golden model",
                         unit_required=False)
    sim_p.add_argument("--sim", choices=["icarus", "verilator"], default="icarus")
    sim_p.add_argument("--seed", type=int, default=1)
    sim_p.add_argument("--tiles", type=int, default=None, help="number of tiles (default 4)")
    sim_p.add_argument("--depth", type=int, default=None, help="reduction length per tile (default max_reduction)")
    sim_p.add_argument("--keys", type=int, default=None, help="softmax: keys per row (default 4 x lanes)")
    sim_p.add_argument("--n", type=int, default=None, help="top-k: values per problem (default max_n)")
    sim_p.add_argument("--k", type=int, default=None, help="top-k: pairs to keep (default max_k)")
    sim_p.add_argument("--idle", type=float, default=0.0, help="probability of an idle input cycle")
    sim_p.add_argument("--stall", type=float, default=0.0, help="probability of output backpressure")
    sim_p.add_argument("--seq-len", type=int, default=None, help="engine: sequence length L (default 128, at most max_seq_len)")
    sim_p.add_argument("--head-dim", type=int, default=None, help="engine: head dimension d (default 64, at most max_head_dim)")
    sim_p.add_argument("--heads", type=int, default=None, help="engine: number of heads (default 1)")
    sim_p.add_argument("--inputs", metavar="FILE.npz", default=None,
                       help="engine: float q, k, v of shape (L, d) or (H, L, d), as for attn-rtl golden")
    sim_p.add_argument("--output", metavar="OUT.npz", default=None, help="engine: write the engine's o and o_int")
    sim_p.add_argument("--json", action="store_true", help="print the report as JSON")
    sim_p.add_argument("--mem-latency", type=int, default=100, metavar="CYCLES",
                       help="--memory-mapped: cycles from a read address to its data (default 100)")
    sim_p.add_argument("--mem-bytes-per-cycle", type=int, default=None, metavar="N",
                       help="--memory-mapped: memory bandwidth (default: the bus width)")
    sim_p.add_argument("--importance-run", action="store_true",
                       help="with --memory-mapped: an importance run, its token and head importances written to "
                            "memory (builds with importance)")
    sim_p.add_argument("--layout", choices=["heads", "tokens", "fused"], default="heads",
                       help="--memory-mapped: tensors as [H][L][d], [L][H*d], or Q/K/V interleaved per token")
    pattern_flags(sim_p)
    sim_p.add_argument("--diagonal", action="store_true",
                       help="engine: a diagonal run (SALO's sliding-window dataflow, docs/sparse.md) of the window, "
                            "dilated or grid pattern, on a build with sliding = true")
    cascade_flags(sim_p)
    sim_p.set_defaults(func=cmd_sim, preset="default")
