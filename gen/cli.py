"""``attn-rtl``: the command line.  Thin: parse, call gen/ and sim/, print.

Every bad input ends in one line ``attn-rtl: error: ...`` on stderr and exit
status 2; a simulation mismatch ends in exit status 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

__all__ = ["main"]


class CliError(Exception):
    """A one-line user error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise CliError(message)


def _flag_defaults() -> dict:
    """Every unit's flag-settable parameters (name -> default); a table such as numerics is
    set in a config file only."""
    from .generate import UNITS

    out = {}
    for u in UNITS.values():
        for name, default in u.defaults.items():
            if name != "numerics":
                out.setdefault(name, default)
    return out


def _unit_flags(parser: argparse.ArgumentParser, defaults: dict) -> None:
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


def _overrides(args, defaults: dict) -> dict:
    given = {name for name in _flag_defaults() if getattr(args, name, None) is not None}
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


def _unit_params(args) -> dict:
    from .config import resolve_params
    from .generate import unit

    return resolve_params(args.unit, preset=args.preset, config=args.config,
                          overrides=_overrides(args, unit(args.unit).defaults))


def cmd_generate(args) -> int:
    from attn_rtl.gen.flows.collateral import DEFAULT_CLOCK_MHZ

    from .generate import write_outputs

    clock = DEFAULT_CLOCK_MHZ if args.clock_mhz is None else args.clock_mhz
    paths = write_outputs(args.unit, _unit_params(args), Path(args.output), clock_mhz=clock)
    print(f"wrote {len(paths)} files into {args.output}: {', '.join(sorted(paths))}")
    return 0


def _simulate(run) -> tuple[dict, bool]:
    """Run a simulation; a mismatch becomes a failed report, not an exception."""
    from attn_rtl.sim.runner import SimulationFailure

    try:
        return run(), True
    except SimulationFailure as e:
        counts = {k: e.report[k] for k in ("mismatch_count", "elements")} if e.report else {}
        return {"passed": False, "error": str(e), **counts}, False


def _print_json(args, params, report, passed) -> int:
    print(json.dumps({"unit": args.unit, "parameters": params, **report}, indent=1))
    return 0 if passed else 1


def _header_or_json(args, params, report, passed, what: str) -> int | None:
    """With ``--json`` print the report; else the header line and, on failure, the error.
    Returns the exit status when nothing more is to be printed, else ``None``."""
    if args.json:
        return _print_json(args, params, report, passed)
    print(f"attn-rtl sim: {what} on {args.sim}, seed {args.seed}")
    if not passed:
        print(f"FAIL: {report['error']}")
        return 1
    return None


def cmd_build(args) -> int:
    from attn_rtl.gen.flows.boards import build_board

    result = build_board(args.board, args.unit, _unit_params(args), Path(args.output), check_only=args.check_only)
    area = ", ".join(f"{v:,} {k.upper()}" for k, v in result["area"].items())
    print(f"attn-rtl build: {args.unit} on {result['board']} ({result['part']}): fits ({area})")
    if result["bitstream"]:
        print(f"  bitstream: {result['bitstream']} (nextpnr: {result['fmax_mhz']} MHz on the board clock)")
    elif not args.check_only:
        print(f"  build scripts (run them where Vivado is installed): {', '.join(result['files'])}")
    return 0


def cmd_sweep(args) -> int:
    from attn_rtl.gen.flows.sweep import load_sweep_file, parse_grid, run_sweep, sweep_points

    spec = load_sweep_file(args.sweep_file) if args.sweep_file else {}
    if spec.get("unit", args.unit) != args.unit:
        raise CliError(f"the sweep file is for unit {spec['unit']!r}, not {args.unit!r}")
    if args.grid is None and "grid" not in spec:
        raise CliError("give the parameters to vary with --grid or --sweep-file")
    grid = parse_grid(args.grid) if args.grid is not None else spec["grid"]
    base = {**_unit_params(args), **spec.get("base", {})}
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


def cmd_sim(args) -> int:
    if args.unit == "engine":
        return _sim_engine(args)
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
                                            ("--window2d", args.window2d), ("--global", args.global_tokens))
                   if value is not None]
    if args.pattern != "dense":
        engine_only.insert(0, "--pattern")
    if engine_only:
        raise CliError(f"{engine_only[0]} applies to the engine, not to {args.unit}")
    if args.unit == "softmax":
        return _sim_softmax(args)
    if args.keys is not None:
        raise CliError("--keys applies to the softmax unit; the array takes --tiles and --depth")
    from .simulate import simulate_array

    params = _unit_params(args)
    tiles = None if args.tiles is None else [args.depth or params["max_reduction"]] * args.tiles
    if args.tiles is None and args.depth is not None:
        tiles = [args.depth] * 4
    if tiles is not None and not tiles:
        raise CliError("--tiles must be a positive integer, not 0")
    report, passed = _simulate(lambda: simulate_array(params, sim=args.sim, seed=args.seed, tiles=tiles,
                                                      idle=args.idle, stall=args.stall))
    shape = f"{params['rows']}x{params['cols']}"
    kinds = f"a {'s' if params['a_signed'] else 'u'}{params['a_width']}, b {'s' if params['b_signed'] else 'u'}{params['b_width']}"
    done = _header_or_json(args, params, report, passed, f"{args.unit} {shape} ({kinds}, acc {params['acc_width']} bits)")
    if done is not None:
        return done
    print(f"  tiles: {len(report['tiles'])} x reduction {report['tiles'][0]}, idle {args.idle}, backpressure {args.stall}")
    print(f"  PASS: {report['elements']} of {report['elements']} result elements bit-exact against numpy matmul")
    print(f"  cycles: {report['cycles']} from first operand accepted to last result sent "
          f"(model without stalls: {report['model_cycles']}); {report['macs']} MACs, "
          f"utilization {report['macs'] / (params['rows'] * params['cols'] * report['cycles']):.1%}")
    return 0


def _sim_softmax(args) -> int:
    from .simulate import simulate_softmax

    if args.tiles is not None or args.depth is not None:
        raise CliError("--tiles and --depth apply to the array; the softmax unit takes --keys")
    params = _unit_params(args)
    keys = 4 * params["lanes"] if args.keys is None else args.keys
    if keys < 1 or keys > params["max_seq_len"]:
        raise CliError(f"--keys must be from 1 to max_seq_len = {params['max_seq_len']}, not {keys}")
    # One query block of every slot: random scores with a random mask, key tiles in random order.
    groups = [dict(rows=params["slots"], keys=keys, mask="random", order="random")]
    report, passed = _simulate(lambda: simulate_softmax(params, sim=args.sim, seed=args.seed, groups=groups,
                                                        idle=args.idle, stall=args.stall))
    done = _header_or_json(args, params, report, passed,
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


def _sim_scheduler(args) -> int:
    from .simulate import simulate_scheduler

    stray = [flag for flag, value in (("--tiles", args.tiles), ("--depth", args.depth), ("--keys", args.keys),
                                      ("--head-dim", args.head_dim), ("--inputs", args.inputs),
                                      ("--output", args.output)) if value is not None]
    if stray or args.idle:
        raise CliError(f"{(stray or ['--idle'])[0]} does not apply to the scheduler "
                       "(it takes --seq-len, --heads, --stall and the pattern flags)")
    params = _unit_params(args)
    seq_len = min(128, params["max_seq_len"]) if args.seq_len is None else args.seq_len
    heads = 1 if args.heads is None else args.heads
    for flag, value, name in (("--seq-len", seq_len, "max_seq_len"), ("--heads", heads, "max_heads")):
        if value < 1:
            raise CliError(f"{flag} must be a positive integer, not {value}")
        if value > params[name]:
            raise CliError(f"{flag} must be at most {name} = {params[name]}, not {value}")
    pattern = _pattern(args, seq_len)
    run = dict(pattern=pattern.to_dict(), seq_len=seq_len, heads=heads)
    report, passed = _simulate(lambda: simulate_scheduler(params, [run], sim=args.sim, seed=args.seed,
                                                          stall=args.stall))
    done = _header_or_json(args, params, report, passed,
                           f"scheduler {params['rows']}x{params['cols']}, {pattern.to_dict()}, L={seq_len}, "
                           f"heads={heads}")
    if done is not None:
        return done
    print(f"  PASS: {report['elements']} tile fields and mask bits bit-exact against the golden schedule; "
          f"{report['cycles']} cycles from start to the last tile")
    return 0


def _sim_topk(args) -> int:
    from .simulate import simulate_topk

    stray = [flag for flag, value in (("--tiles", args.tiles), ("--depth", args.depth), ("--keys", args.keys),
                                      ("--seq-len", args.seq_len), ("--head-dim", args.head_dim),
                                      ("--heads", args.heads), ("--inputs", args.inputs),
                                      ("--output", args.output)) if value is not None]
    if stray or args.pattern != "dense":
        raise CliError(f"{(stray or ['--pattern'])[0]} does not apply to the top-k engine (it takes --n and --k)")
    params = _unit_params(args)
    n = params["max_n"] if args.n is None else args.n
    k = params["max_k"] if args.k is None else args.k
    for flag, value, name in (("--n", n, "max_n"), ("--k", k, "max_k")):
        if value < 1:
            raise CliError(f"{flag} must be a positive integer, not {value}")
        if value > params[name]:
            raise CliError(f"{flag} must be at most {name} = {params[name]}, not {value}")
    # Random values, then the same with many ties, then an ascending ramp: three answers to check.
    problems = [dict(n=n, k=k, kind=kind) for kind in ("random", "few", "ascending")]
    measure = args.idle == 0 and args.stall == 0
    report, passed = _simulate(lambda: simulate_topk(params, problems, sim=args.sim, seed=args.seed,
                                                     idle=args.idle, stall=args.stall, measure=measure))
    done = _header_or_json(args, params, report, passed,
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



def _cascade_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("SpAtten: cascade pruning and progressive quantization (docs/engine.md)")
    group.add_argument("--token-list", default=None, metavar="I,J,...",
                       help="compute only these tokens (the previous layer's kept tokens)")
    group.add_argument("--token-list-file", default=None, metavar="FILE",
                       help="the token list from a file (indices separated by commas or white space)")
    group.add_argument("--head-list", default=None, metavar="H,...", help="compute only these heads")
    group.add_argument("--token-keep", type=int, default=None, metavar="K",
                       help="importance run: keep the K most important tokens for the next layer")
    group.add_argument("--head-keep", type=int, default=None, metavar="K",
                       help="importance run: keep the K most important heads for the next layer")
    group.add_argument("--progressive", type=int, default=None, metavar="MSB_BITS",
                       help="score with K's MSB_BITS most significant bits first")
    group.add_argument("--threshold", type=float, default=None, metavar="X",
                       help="with --progressive: recompute rows whose largest probability is below X (0 to 2)")


def _cascade_plan(args, heads: int, seq_len: int, nm) -> dict | None:
    """The pruning and progressive flags, checked; ``None`` when none is given."""
    from attn_rtl.sim.pruning import check_index_list, parse_index_list

    if args.token_list is not None and args.token_list_file is not None:
        raise CliError("--token-list and --token-list-file are exclusive")
    text = args.token_list
    if args.token_list_file is not None:
        try:
            text = Path(args.token_list_file).read_text()
        except OSError as e:
            raise CliError(f"cannot read --token-list-file {args.token_list_file}: {e.strerror or e}") from None
    flag = "--token-list-file" if args.token_list_file is not None else "--token-list"
    tokens = None if text is None else check_index_list(flag, parse_index_list(flag, text), seq_len, "token")
    head_list = None if args.head_list is None else check_index_list(
        "--head-list", parse_index_list("--head-list", args.head_list), heads, "head")
    if args.threshold is not None and args.progressive is None:
        raise CliError("--threshold needs --progressive MSB_BITS")
    threshold = None
    if args.progressive is not None:
        if args.threshold is None:
            raise CliError("--progressive needs --threshold X")
        if args.token_keep is not None or args.head_keep is not None:
            raise CliError("--progressive cannot be combined with --token-keep or --head-keep "
                           "(an importance run scores with K in full)")
        limit = ((1 << nm.prob_width) - 1) / (1 << nm.prob_frac_bits)
        if not (math.isfinite(args.threshold) and 0 <= args.threshold <= limit):
            raise CliError(f"--threshold must be from 0 to {limit:.6f}, not {args.threshold!r}")
        threshold = int(round(args.threshold * (1 << nm.prob_frac_bits)))
        if not 1 <= args.progressive <= nm.data_width - 1:
            raise CliError(f"--progressive must be from 1 to {nm.data_width - 1} (bits of K), "
                           f"not {args.progressive}")
    computed_tokens = seq_len if tokens is None else len(tokens)
    computed_heads = heads if head_list is None else len(head_list)
    for flag, keep, bound in (("--token-keep", args.token_keep, computed_tokens),
                              ("--head-keep", args.head_keep, computed_heads)):
        if keep is not None and not 1 <= keep <= bound:
            raise CliError(f"{flag} must be from 1 to {bound} (what the run computes), not {keep}")
    plan = dict(tokens=tokens, heads=head_list, token_keep=args.token_keep, head_keep=args.head_keep,
                msb_bits=args.progressive, threshold=threshold)
    return plan if any(v is not None for v in plan.values()) else None


def _cascade_inputs(plan: dict, q, k, v):
    """q, k, v as (H, L, d), gathered to the plan's tokens and heads (what the DMA fetches)."""
    from attn_rtl.sim.pruning import gather

    return [gather(x if x.ndim == 3 else x[None], plan["tokens"], plan["heads"]) for x in (q, k, v)]


def _cascade_report(plan: dict, layer, heads: int, seq_len: int) -> dict:
    """The JSON figures of a pruned or progressive layer (original indices throughout)."""
    tokens = np.arange(seq_len) if plan["tokens"] is None else plan["tokens"]
    head_ids = np.arange(heads) if plan["heads"] is None else plan["heads"]
    out = {"tokens": tokens.tolist(), "heads_computed": head_ids.tolist()}
    if plan["msb_bits"] is not None:
        out.update(progressive_msb_bits=plan["msb_bits"], threshold=plan["threshold"],
                   recomputed_rows=layer.recomputed_rows, recomputed_fraction=layer.recomputed_fraction,
                   k_bytes_fetched=layer.k_bytes_fetched, k_bytes_full=layer.k_bytes_full)
        return out
    out.update(k_bytes_fetched=layer.fetched.k, bytes_fetched=layer.fetched.total, recomputed_rows=0)
    if layer.importance is not None:
        out.update(importance=dict(zip(map(int, tokens[layer.tokens]), map(int, layer.importance))),
                   head_importance=dict(zip(map(int, head_ids[layer.heads]), map(int, layer.head_importance))))
    if layer.kept_tokens is not None:
        out["kept_tokens"] = tokens[layer.kept_tokens].tolist()
    if layer.kept_heads is not None:
        out["kept_heads"] = head_ids[layer.kept_heads].tolist()
    return out


def _engine_report_start(args, params: dict, out: dict, passed: bool) -> int | None:
    """Print the JSON report and return the exit status, or print the text report's first lines
    (and return 1 on a failed simulation); ``None`` when the text report goes on."""
    if args.json:
        print(json.dumps({"unit": "engine", "parameters": params, **out}, indent=1))
        return 0 if passed and out["mismatches"] == 0 else 1
    print(f"attn-rtl sim: engine {params['rows']}x{params['cols']}, H={out['heads']} L={out['seq_len']} "
          f"d={out['head_dim']} on {args.sim}, seed {args.seed}")
    if not passed:
        print(f"FAIL: {out['error']}")
        return 1
    return None


def _sim_engine(args) -> int:
    import numpy as np

    from attn_rtl.sim.engine_stream import engine_output
    from attn_rtl.sim.golden import Numerics, attention
    from attn_rtl.sim.golden_io import error_figures, load_qkv
    from attn_rtl.sim.sparse import allowed_mask, scheduled_tiles

    from .simulate import simulate_engine

    stray = [flag for flag, value in (("--tiles", args.tiles), ("--depth", args.depth), ("--keys", args.keys))
             if value is not None]
    if stray:
        raise CliError(f"{stray[0]} does not apply to the engine (it takes --seq-len, --head-dim, --heads)")
    params = _unit_params(args)
    nm = Numerics(**params["numerics"])
    if args.inputs is not None:
        given = [flag for flag, value in (("--seq-len", args.seq_len), ("--head-dim", args.head_dim),
                                          ("--heads", args.heads)) if value is not None]
        if given:
            raise CliError(f"{given[0]} conflicts with --inputs (the shapes come from the file)")
        q, k, v = load_qkv(args.inputs)
    else:
        defaults = (1, min(128, params["max_seq_len"]), min(64, params["max_head_dim"]))
        shape = tuple(d_ if given is None else given for d_, given in zip(defaults, (args.heads, args.seq_len,
                                                                                     args.head_dim)))
        for flag, value in zip(("--heads", "--seq-len", "--head-dim"), shape):
            if value < 1:
                raise CliError(f"{flag} must be a positive integer, not {value}")
        rng = np.random.default_rng(args.seed)
        q, k, v = (rng.normal(size=shape) for _ in range(3))
    heads, seq_len, d = (1,) * (3 - q.ndim) + q.shape
    limits = (("--seq-len", seq_len, "max_seq_len"), ("--head-dim", d, "max_head_dim"), ("--heads", heads, "max_heads"))
    for flag, value, name in limits:
        if value > params[name]:
            raise CliError(f"{flag} must be at most {name} = {params[name]}, not {value}")
    pattern = _pattern(args, seq_len)
    if not params["sparse"] and not pattern.is_dense:
        raise CliError(f"--pattern {pattern.kind} needs an engine built with sparse = true (add --sparse)")
    plan = _cascade_plan(args, heads, seq_len, nm)
    if plan is not None:
        if not pattern.is_dense:
            raise CliError("pruning and progressive runs take the dense pattern only")
        return _sim_cascade(args, params, nm, plan, q, k, v, heads, seq_len)
    mask = None if pattern.is_dense else allowed_mask(pattern, seq_len)
    scale = 1.0 / math.sqrt(d)
    golden = attention(q, k, v, scale=scale, nm=nm, key_tile=params["cols"], mask=mask)
    run = dict(heads=heads, seq_len=seq_len, head_dim=d, pattern=pattern.to_dict())
    ints = [x.reshape(heads, seq_len, d) for x in (golden.q_int, golden.k_int, golden.v_int)]
    report, passed = _simulate(lambda: simulate_engine(params, [run], sim=args.sim, seed=args.seed,
                                                       scale_mult=golden.multiplier, scale_shift=golden.shift,
                                                       idle=args.idle, stall=args.stall, operands=[ints]))
    out = {"passed": passed, "sim": args.sim, "seed": args.seed, **run}
    if passed:
        measured = report["runs"][0]
        o_int = report["outputs"][0].reshape(golden.o_int.shape)
        expected = engine_output(*ints, golden.multiplier, golden.shift, nm, params["cols"], mask,
                                 schedule=scheduled_tiles(pattern, seq_len, params["rows"], params["cols"]),
                                 rows=params["rows"]).reshape(golden.o_int.shape)
        out.update(cycles=measured["cycles"], ideal_cycles=measured["ideal_cycles"],
                   useful_macs=measured["useful_macs"], mac_utilization=measured["mac_utilization"],
                   cycle_counter=measured["counter"], mismatches=int((o_int != expected).sum()),
                   elements=report["elements"], memory_bits=report["memory_bits"],
                   allowed_pairs=seq_len * seq_len if mask is None else int(mask.sum()))
        out.update(error_figures(golden, q, k, v, scale, mask))
        if args.output is not None:
            try:
                np.savez(args.output, o=o_int * golden.scales["o"], o_int=o_int)
            except OSError as e:
                raise CliError(f"cannot write output {args.output}: {e.strerror or e}") from None
    else:
        out.update(mismatches=report.get("mismatch_count"), error=report["error"])
    finished = _engine_report_start(args, params, out, passed)
    if finished is not None:
        return finished
    print(f"  PASS: {out['elements']} output values and flags bit-exact against the golden model "
          f"({out['mismatches']} mismatches)")
    print(f"  cycles: {out['cycles']} from first input to last output (ideal {out['ideal_cycles']}): "
          f"MAC utilization {out['mac_utilization']:.2%}")
    print(f"  error against float attention: max {out['max_abs_error_lsb']:.2f} LSB "
          f"(on the quantized inputs: max {out['max_abs_error_lsb_quantized']:.2f} LSB)")
    if args.output is not None:
        print(f"  wrote {args.output}: o and o_int of shape {tuple(o_int.shape)}")
    return 0



def _sim_cascade(args, params: dict, nm, plan: dict, q, k, v, heads: int, seq_len: int) -> int:
    """``sim engine`` with pruning or progressive flags: the layer in RTL (engine, then top-k or the
    recompute run), checked against its golden model."""
    import dataclasses

    from attn_rtl.sim.fixed import dequantize
    from attn_rtl.sim.golden import attention
    from attn_rtl.sim.golden_io import error_figures
    from attn_rtl.sim.progressive import progressive_layer
    from attn_rtl.sim.pruning import pruned_layer

    from .simulate import simulate_layer, simulate_progressive

    q, k, v = _cascade_inputs(plan, q, k, v)
    d = q.shape[-1]
    scale = 1.0 / math.sqrt(d)
    golden = attention(q, k, v, scale=scale, nm=nm, key_tile=params["cols"])
    ints = [x.reshape(q.shape[0], -1, d) for x in (golden.q_int, golden.k_int, golden.v_int)]
    common = dict(scale_mult=golden.multiplier, scale_shift=golden.shift, sim=args.sim, seed=args.seed,
                  idle=args.idle, stall=args.stall)
    rows, cols = params["rows"], params["cols"]
    if plan["msb_bits"] is not None:
        params = dict(params, row_flags=True)
        run = lambda: simulate_progressive(params, *ints, msb_bits=plan["msb_bits"], threshold=plan["threshold"],
                                           **common)
        expect = progressive_layer(*ints, golden.multiplier, golden.shift, nm, rows, cols,
                                   msb_bits=plan["msb_bits"], threshold=plan["threshold"])
    else:
        ranked = plan["token_keep"] is not None or plan["head_keep"] is not None
        params = dict(params, importance=True) if ranked else params
        run = lambda: simulate_layer(params, *ints, token_keep=plan["token_keep"], head_keep=plan["head_keep"],
                                     **common)
        expect = pruned_layer(*ints, golden.multiplier, golden.shift, nm, rows, cols,
                              token_keep=plan["token_keep"], head_keep=plan["head_keep"], importance=ranked)
    found, passed = _simulate(run)
    out = {"passed": passed, "sim": args.sim, "seed": args.seed, "heads": q.shape[0], "seq_len": q.shape[1],
           "head_dim": d}
    if passed:
        layer, reports = found
        first = reports.get("engine", reports.get("first"))
        o_int = np.asarray(layer.o).reshape(golden.o_int.shape)
        hw = dataclasses.replace(golden, o_int=o_int, o=dequantize(o_int, golden.scales["o"]))
        out.update(cycles=sum(r["cycles"] for rep in reports.values() if "runs" in rep for r in rep["runs"]),
                   mismatches=int((o_int != np.asarray(expect.o).reshape(o_int.shape)).sum()),
                   memory_bits=first["memory_bits"], **_cascade_report(plan, layer, heads, seq_len),
                   **error_figures(hw, q, k, v, scale))
        if plan["msb_bits"] is None:
            for name in ("kept_tokens", "kept_heads"):
                ours, theirs = getattr(layer, name), getattr(expect, name)
                if ours is not None and not np.array_equal(ours, theirs):
                    out["mismatches"] += 1
    else:
        out.update(mismatches=found.get("mismatch_count"), error=found["error"])
    finished = _engine_report_start(args, params, out, passed)
    if finished is not None:
        return finished
    print(f"  {'PASS' if out['mismatches'] == 0 else 'FAIL'}: layer bit-exact against the golden model "
          f"({out['mismatches']} mismatches), {out['cycles']} cycles in all runs")
    if plan["msb_bits"] is not None:
        print(f"  progressive: {out['recomputed_rows']} rows recomputed ({out['recomputed_fraction']:.1%}), "
              f"K fetched {out['k_bytes_fetched']} bytes against {out['k_bytes_full']} in full")
    else:
        print(f"  fetched {out['bytes_fetched']} bytes (K {out['k_bytes_fetched']})")
        for name in ("kept_tokens", "kept_heads"):
            if name in out:
                print(f"  {name.replace('_', ' ')}: {','.join(map(str, out[name]))}")
    return 0 if out["mismatches"] == 0 else 1


def _pattern_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sparse pattern (docs/sparse.md)")
    group.add_argument("--pattern", choices=["dense", "window", "dilated", "grid"], default="dense",
                       help="which (query, key) pairs take part (default dense)")
    group.add_argument("--window", type=int, default=None, metavar="W",
                       help="window and dilated: query i attends key j when |i-j| <= W/2")
    group.add_argument("--dilation", type=int, default=None, metavar="D",
                       help="dilated: also D divides i-j, and |i-j| <= D*W/2")
    group.add_argument("--grid", default=None, metavar="HxW", help="grid: tokens on an H x W grid, raster order")
    group.add_argument("--window2d", default=None, metavar="KHxKW",
                       help="grid: |row_i-row_j| <= KH/2 and |col_i-col_j| <= KW/2")
    group.add_argument("--global", dest="global_tokens", default=None, metavar="I,J,...",
                       help="global tokens: attend to every key, and every query attends to them")


def _pattern(args, seq_len: int):
    """The pattern of the flags, checked against ``seq_len`` (a ``ValueError`` names the bad flag)."""
    from attn_rtl.sim.sparse import parse_pattern

    pattern = parse_pattern(args.pattern, window=args.window, dilation=args.dilation, grid=args.grid,
                            window2d=args.window2d, global_tokens=args.global_tokens)
    pattern.check(seq_len)
    return pattern


def cmd_golden(args) -> int:
    import numpy as np

    from attn_rtl.sim.golden import Numerics, attention
    from attn_rtl.sim.golden_io import error_figures, load_qkv
    from attn_rtl.sim.sparse import allowed_mask

    q, k, v = load_qkv(args.inputs)
    pattern = _pattern(args, q.shape[-2])
    mask = None if pattern.is_dense else allowed_mask(pattern, q.shape[-2])
    if args.scale is not None and not (math.isfinite(args.scale) and args.scale > 0):
        raise CliError(f"--scale must be a positive finite number, not {args.scale!r}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if args.scale is None else args.scale
    if args.key_tile is not None and args.key_tile < 1:
        raise CliError(f"--key-tile must be a positive integer, not {args.key_tile}")
    if args.query_block is not None:
        if args.query_block < 1:
            raise CliError(f"--query-block must be a positive integer, not {args.query_block}")
        if args.key_tile is None:
            raise CliError("--query-block needs --key-tile (the engine's rows and cols)")
    plan = _cascade_plan(args, q.shape[0] if q.ndim == 3 else 1, q.shape[-2], Numerics())
    if plan is not None:
        return _golden_cascade(args, plan, pattern, q, k, v, scale)
    result = attention(q, k, v, scale=scale, nm=Numerics(), key_tile=args.key_tile, mask=mask)
    if args.query_block is not None:
        # The sparse engine's order: each block's keys gathered into tiles (docs/sparse.md).
        import dataclasses

        from attn_rtl.sim.engine_stream import engine_output
        from attn_rtl.sim.fixed import dequantize
        from attn_rtl.sim.sparse import scheduled_tiles

        schedule = scheduled_tiles(pattern, q.shape[-2], args.query_block, args.key_tile)
        o_int = engine_output(result.q_int, result.k_int, result.v_int, result.multiplier, result.shift, Numerics(),
                              args.key_tile, mask, schedule=schedule, rows=args.query_block)
        o_int = o_int.reshape(result.o_int.shape)
        result = dataclasses.replace(result, o_int=o_int, o=dequantize(o_int, result.scales["o"]))
    out = Path(args.output)
    try:
        np.savez(out, o=result.o, o_int=result.o_int, q_int=result.q_int, k_int=result.k_int, v_int=result.v_int,
                 scale_q=result.scales["q"], scale_k=result.scales["k"], scale_v=result.scales["v"],
                 scale_o=result.scales["o"], multiplier=result.multiplier, shift=result.shift)
    except OSError as e:
        raise CliError(f"cannot write output {out}: {e.strerror or e}") from None
    if args.json:
        pairs = q.shape[-2] ** 2 if mask is None else int(mask.sum())
        figures = {**pattern.to_dict(), "allowed_pairs": pairs, **error_figures(result, q, k, v, scale, mask)}
        print(json.dumps(figures, indent=1))
    else:
        print(f"wrote {out}: o and o_int of shape {result.o.shape}")
    return 0



def _golden_cascade(args, plan: dict, pattern, q, k, v, scale: float) -> int:
    """``golden`` with pruning or progressive flags: the golden model of the engine's layer."""
    import dataclasses

    from attn_rtl.sim.fixed import dequantize
    from attn_rtl.sim.golden import Numerics, attention
    from attn_rtl.sim.golden_io import error_figures
    from attn_rtl.sim.progressive import progressive_layer
    from attn_rtl.sim.pruning import pruned_layer

    if not pattern.is_dense:
        raise CliError("pruning and progressive runs take the dense pattern only")
    if args.key_tile is None or args.query_block is None:
        raise CliError("pruning and progressive flags need --key-tile and --query-block (the engine's cols and rows)")
    nm = Numerics()
    heads, seq_len = (q.shape[0] if q.ndim == 3 else 1), q.shape[-2]
    q, k, v = _cascade_inputs(plan, q, k, v)
    result = attention(q, k, v, scale=scale, nm=nm, key_tile=args.key_tile)
    ints = (result.q_int, result.k_int, result.v_int)
    rows, cols = args.query_block, args.key_tile
    if plan["msb_bits"] is not None:
        layer = progressive_layer(*ints, result.multiplier, result.shift, nm, rows, cols, msb_bits=plan["msb_bits"],
                                  threshold=plan["threshold"])
    else:
        ranked = plan["token_keep"] is not None or plan["head_keep"] is not None
        layer = pruned_layer(*ints, result.multiplier, result.shift, nm, rows, cols, token_keep=plan["token_keep"],
                             head_keep=plan["head_keep"], importance=ranked)
    result = dataclasses.replace(result, o_int=layer.o, o=dequantize(layer.o, result.scales["o"]))
    figures = _cascade_report(plan, layer, heads, seq_len)
    arrays = {name: np.asarray(figures[name]) for name in ("tokens", "heads_computed", "kept_tokens", "kept_heads")
              if name in figures}
    if "importance" in figures:
        arrays.update(importance=np.asarray(list(figures["importance"].values())),
                      head_importance=np.asarray(list(figures["head_importance"].values())))
    if plan["msb_bits"] is not None:
        arrays["recomputed"] = layer.flags
    try:
        np.savez(Path(args.output), o=result.o, o_int=result.o_int, **arrays)
    except OSError as e:
        raise CliError(f"cannot write output {args.output}: {e.strerror or e}") from None
    if args.json:
        print(json.dumps({**figures, **error_figures(result, q, k, v, scale)}, indent=1))
    else:
        print(f"wrote {args.output}: o and o_int of shape {result.o.shape}")
    return 0


def cmd_bench(args) -> int:
    from attn_rtl.gen.bench import array as bench_array
    from attn_rtl.gen.bench import cost as bench_cost
    from attn_rtl.gen.bench import engine as bench_engine
    from attn_rtl.gen.bench import softmax as bench_softmax
    from attn_rtl.gen.bench import sparse as bench_sparse
    from attn_rtl.gen.bench import spatten as bench_spatten
    from attn_rtl.gen.bench import topk as bench_topk

    module = {"array": bench_array, "softmax": bench_softmax, "engine": bench_engine, "sparse": bench_sparse,
              "topk": bench_topk, "spatten": bench_spatten, "cost": bench_cost}[args.unit]
    parts = [p.strip() for p in (args.parts or ",".join(module.PARTS)).split(",") if p.strip()]
    for part in parts:
        if part not in module.PARTS:
            raise CliError(f"--parts must name {', '.join(module.PARTS)} for {args.unit}, not {part!r}")
    if args.jobs < 1:
        raise CliError(f"--jobs must be a positive integer, not {args.jobs}")
    try:
        seeds = tuple(int(x) for x in args.seeds.split(","))
    except ValueError:
        raise CliError(f"--seeds must be comma-separated integers, not {args.seeds!r}") from None
    runs = {"softmax": lambda: bench_softmax.run(parts, jobs=args.jobs, seeds=seeds),
            "engine": lambda: bench_engine.run(parts, sim=args.sim, jobs=args.jobs, seeds=seeds),
            "sparse": lambda: bench_sparse.run(parts, sim=args.sim),
            "topk": lambda: bench_topk.run(parts, sim=args.sim, jobs=args.jobs),
            "spatten": lambda: bench_spatten.run(parts, sim=args.sim),
            "cost": lambda: bench_cost.run(parts)}
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


def cmd_presets(args) -> int:
    from .generate import elaborate, manifest, unit
    from .presets import DESCRIPTIONS, PRESETS

    key_figures = ("pe_count", "acc_width", "latency", "sum_latency", "memory_bits", "merge_levels",
                   "setup_cycles", "token_importance_width")
    for unit_name, presets in PRESETS.items():
        for name, params in presets.items():
            full = unit(unit_name).validate(**params)
            component = elaborate(unit_name, full)
            component._MustUse__silence = True   # built for its figures only
            derived = manifest(unit_name, component)["derived"]
            figures = ", ".join(f"{k}={derived[k]:,}" if isinstance(derived[k], int) else f"{k}={derived[k]}"
                                for k in key_figures if k in derived)
            print(f"{unit_name:8} {name:10} {DESCRIPTIONS.get((unit_name, name), '')}\n"
                  f"{'':20}figures: {figures}\n"
                  f"{'':20}[{', '.join(f'{k}={v}' for k, v in full.items() if k != 'numerics')}]")
    return 0


def cmd_explore(args) -> int:
    from attn_rtl.gen.cost.explore import config_toml, explore, parse_budget, plot_pareto
    from attn_rtl.gen.cost.workloads import load_workload

    if args.top < 1:
        raise CliError(f"--top must be a positive integer, not {args.top}")
    workload = load_workload(args.workload)
    result = explore(workload, args.target, args.objective, budget=parse_budget(args.budget), top=args.top)
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
    lines = []
    for i in result.best:
        c = result.config(i)
        lines.append([c["rows"], c["cols"], c["prob_tiles"], c["max_seq_len"], c["max_head_dim"], c["max_heads"],
                      c["multiplier"], c["fifo_memory"], f"{t['cycles'][i]:,.0f}", f"{t['latency_us'][i]:,.1f}",
                      f"{t['energy_uj'][i]:,.1f}", f"{t['lut'][i]:,.0f}", f"{t['ff'][i]:,.0f}",
                      f"{t['dsp'][i]:,.0f}", f"{t['bram'][i]:,.0f}", f"{t['memory_bits'][i] / 1024:,.1f}"])
    widths = [max(len(str(h)), *(len(str(row[k])) for row in lines)) for k, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for row in lines:
        print("  ".join(str(v).rjust(w) for v, w in zip(row, widths)))
    print(f"wrote {plot}")
    if args.emit:
        print(f"wrote {args.emit} (attn-rtl generate engine --config {args.emit} -o DIR)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .generate import UNITS

    parser = _Parser(prog="attn-rtl", description="Generate, simulate and check attention-accelerator RTL.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def unit_command(name, help_text, unit_required):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("unit", choices=sorted(UNITS), nargs=None if unit_required else "?", default="engine",
                       help="block to build (default: engine)")
        p.add_argument("--preset", help="named parameter set (see attn-rtl presets)")
        p.add_argument("--config", metavar="FILE.toml", help="TOML file of parameters ([UNIT] table or top level)")
        _unit_flags(p, _flag_defaults())
        return p

    gen_p = unit_command("generate", "write a unit's Verilog and JSON manifest", unit_required=True)
    gen_p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    gen_p.add_argument("--clock-mhz", type=float, default=None, metavar="MHZ",
                       help="clock of the SDC/XDC constraints (default 100)")
    gen_p.set_defaults(func=cmd_generate)

    sweep_p = unit_command("sweep", "Yosys area (and nextpnr Fmax) over a parameter grid x targets, parallel "
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

    build_p = unit_command("build", "a demo bitstream of a unit on a board (amaranth-boards, YoWASP)",
                           unit_required=False)
    build_p.add_argument("--board", required=True, metavar="NAME",
                         help="ulx3s-85f, icebreaker, or arty-a7-35 (Vivado scripts only)")
    build_p.add_argument("--check-only", action="store_true", help="check that the configuration fits, build nothing")
    build_p.add_argument("-o", "--output", required=True, metavar="DIR", help="build folder")
    build_p.set_defaults(func=cmd_build)

    sim_p = unit_command("sim", "generate a unit and simulate it under cocotb against its golden model",
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
    _pattern_flags(sim_p)
    _cascade_flags(sim_p)
    sim_p.set_defaults(func=cmd_sim, preset="default")

    gold = sub.add_parser("golden", help="run the bit-exact golden attention on float q, k, v",
                          description="Quantize float q, k, v (.npz, shape (L, d) or (H, L, d)) as docs/numerics.md "
                                      "says and run the integer attention contract.")
    gold.add_argument("--inputs", required=True, metavar="FILE.npz", help="arrays q, k, v")
    gold.add_argument("--output", required=True, metavar="OUT.npz", help="writes o (float), o_int and more")
    gold.add_argument("--scale", type=float, default=None, help="score scale (default 1/sqrt(d))")
    gold.add_argument("--key-tile", type=int, default=None, help="keys per online-softmax tile (default: all)")
    gold.add_argument("--query-block", type=int, default=None,
                      help="with --key-tile: gather each block of this many queries' keys into tiles, as the "
                           "sparse engine does (its rows and cols); bit-exact with it")
    gold.add_argument("--json", action="store_true", help="print error figures against float attention")
    _pattern_flags(gold)
    _cascade_flags(gold)
    gold.set_defaults(func=cmd_golden)

    bench = sub.add_parser("bench", help="measure a unit (cycles, area, Fmax) and write the table into docs/",
                           description="Run a benchmark and write its Markdown table into docs/.")
    bench.add_argument("unit", choices=["array", "softmax", "engine", "sparse", "topk", "spatten", "cost"])
    bench.add_argument("--parts", default=None,
                       help="comma-separated; array: utilization, area, fmax; softmax: accuracy, area, fmax; "
                            "engine: utilization, area, fmax; sparse: utilization; topk: table (default: all)")
    bench.add_argument("--sim", choices=["icarus", "verilator"], default="verilator")
    bench.add_argument("--jobs", type=int, default=2, help="parallel synthesis jobs")
    bench.add_argument("--seeds", default="1,2,3", help="nextpnr seeds (median reported)")
    bench.add_argument("--sizes", default="4x4,8x8,16x16", help="array: sizes for the area tables")
    bench.set_defaults(func=cmd_bench)

    pre = sub.add_parser("presets", help="list named parameter sets")
    pre.set_defaults(func=cmd_presets)

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
    exp.set_defaults(func=cmd_explore)
    return parser


def main(argv=None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
