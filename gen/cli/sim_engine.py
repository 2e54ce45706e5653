"""``attn-rtl sim engine``: the engine's RTL on float q, k, v against the golden model, pruned and
progressive layers included."""

from __future__ import annotations

import json
import math

import numpy as np

from .common import CliError, print_json, run_simulation, unit_params
from .layer_flags import (
    cascade_inputs,
    cascade_plan,
    cascade_report,
    cascade_requested,
    check_decoder_flags,
    decoder_pattern,
    decoder_requested,
    decoder_shape,
    pattern_of,
)


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


def sim_engine(args) -> int:
    from attn_rtl.sim.engine_stream import engine_output
    from attn_rtl.sim.golden import Numerics, attention
    from attn_rtl.sim.golden_io import error_figures, load_qkv
    from attn_rtl.sim.sliding import SLIDING_PATTERNS, diagonal_tiles, sliding_output
    from attn_rtl.sim.sparse import allowed_mask, scheduled_tiles

    stray = [flag for flag, value in (("--tiles", args.tiles), ("--depth", args.depth), ("--keys", args.keys))
             if value is not None]
    if stray:
        raise CliError(f"{stray[0]} does not apply to the engine (it takes --seq-len, --head-dim, --heads)")
    params = unit_params(args)
    if args.diagonal:
        if not params["sliding"]:
            raise CliError("--diagonal needs an engine built with sliding = true (add --sliding)")
        if args.pattern not in SLIDING_PATTERNS:
            raise CliError(f"--diagonal takes --pattern window, dilated or grid, not {args.pattern}")
        if args.memory_mapped or decoder_requested(args):
            raise CliError("--diagonal takes a stream run of the encoder shape (no --memory-mapped, --kv-heads, "
                           "--q-len or --kv-len)")
    if args.memory_mapped:
        return _sim_memory_mapped(args, params)
    if args.importance_run:
        raise CliError("--importance-run applies to --memory-mapped (a stream run ranks with --token-keep or "
                       "--head-keep)")
    nm = Numerics(**params["numerics"])
    if decoder_requested(args):
        return _sim_decoder(args, params, nm)
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
    pattern = pattern_of(args, seq_len)
    if not params["sparse"] and not pattern.is_dense:
        raise CliError(f"--pattern {pattern.kind} needs an engine built with sparse = true (add --sparse)")
    plan = cascade_plan(args, heads, seq_len, nm)
    if plan is not None:
        if not pattern.is_dense or args.diagonal:
            raise CliError("pruning and progressive runs take the dense pattern only")
        return _sim_cascade(args, params, nm, plan, q, k, v, heads, seq_len)
    mask = None if pattern.is_dense else allowed_mask(pattern, seq_len)
    scale = 1.0 / math.sqrt(d)
    golden = attention(q, k, v, scale=scale, nm=nm, key_tile=params["cols"], mask=mask)
    run = dict(heads=heads, seq_len=seq_len, head_dim=d, pattern=pattern.to_dict(), diagonal=args.diagonal)
    ints = [x.reshape(heads, seq_len, d) for x in (golden.q_int, golden.k_int, golden.v_int)]
    report, passed, out = _simulate(args, params, run, golden, ints)
    if passed:
        o_int = report["outputs"][0].reshape(golden.o_int.shape)
        if args.diagonal:   # each query's keys in the diagonal tiles' order
            tiling = diagonal_tiles(pattern, seq_len, params["rows"], params["cols"],
                                    global_row=int(params["global_row"]))
            expected = sliding_output(*ints, golden.multiplier, golden.shift, nm, tiling)
        else:
            expected = engine_output(*ints, golden.multiplier, golden.shift, nm, params["cols"], mask,
                                     schedule=scheduled_tiles(pattern, seq_len, params["rows"], params["cols"]),
                                     rows=params["rows"])
        expected = expected.reshape(golden.o_int.shape)
        out.update(_figures(report, o_int, expected),
                   allowed_pairs=seq_len * seq_len if mask is None else int(mask.sum()))
        out.update(error_figures(golden, q, k, v, scale, mask))
        _save_output(args, o_int, o_int * golden.scales["o"])
    return _finish(args, params, out, passed, report)


def _save_output(args, o_int, o) -> None:
    if args.output is not None:
        try:
            np.savez(args.output, o=o, o_int=o_int)
        except OSError as e:
            raise CliError(f"cannot write output {args.output}: {e.strerror or e}") from None


def _finish(args, params: dict, out: dict, passed: bool, report: dict, preamble: str | None = None) -> int:
    """The command's report (JSON, or text with ``preamble`` under the header) and exit status."""
    if not passed:
        out.update(mismatches=report.get("mismatch_count"), error=report["error"])
    finished = _engine_report_start(args, params, out, passed)
    if finished is not None:
        return finished
    if preamble:
        print(preamble)
    print(f"  PASS: {out['elements']} output values and flags bit-exact against the golden model "
          f"({out['mismatches']} mismatches)")
    print(f"  cycles: {out['cycles']} from first input to last output (ideal {out['ideal_cycles']}): "
          f"MAC utilization {out['mac_utilization']:.2%}")
    print(f"  error against float attention: max {out['max_abs_error_lsb']:.2f} LSB "
          f"(on the quantized inputs: max {out['max_abs_error_lsb_quantized']:.2f} LSB)")
    if args.output is not None:
        print(f"  wrote {args.output}: o and o_int of shape {tuple(out['shape'])}")
    return 0


def _simulate(args, params: dict, run: dict, golden, ints) -> tuple[dict, bool, dict]:
    """The engine's RTL on one run of integer operands at the golden model's scale: the report, whether
    it passed, and the start of the command's report."""
    from attn_rtl.gen.simulate import simulate_engine

    report, passed = run_simulation(lambda: simulate_engine(params, [run], sim=args.sim, seed=args.seed,
                                                            scale_mult=golden.multiplier, scale_shift=golden.shift,
                                                            idle=args.idle, stall=args.stall, operands=[ints]))
    return report, passed, {"passed": passed, "sim": args.sim, "seed": args.seed, **run}


def _figures(report: dict, o_int, expected) -> dict:
    """Cycles, utilization and mismatches of a passed run whose output ``o_int`` should be ``expected``."""
    measured = report["runs"][0]
    return dict(cycles=measured["cycles"], ideal_cycles=measured["ideal_cycles"],
                useful_macs=measured["useful_macs"], mac_utilization=measured["mac_utilization"],
                cycle_counter=measured["counter"], mismatches=int((o_int != expected).sum()),
                elements=report["elements"], memory_bits=report["memory_bits"])


def _decoder_inputs(args, params: dict):
    """Float q (H, q_len, d) and k, v (H_kv, kv_len, d) from --inputs or, random, from the shape flags."""
    from attn_rtl.sim.golden_io import load_qkv

    if args.inputs is not None:
        if args.seq_len is not None or args.head_dim is not None:
            raise CliError(f"{'--seq-len' if args.seq_len is not None else '--head-dim'} conflicts with --inputs "
                           "(the shapes come from the file)")
        q, k, v = load_qkv(args.inputs, decoder=True)
        return (q, k, v), check_decoder_flags(args, q, k)
    heads, kv_heads, q_len, kv_len = decoder_shape(args, min(128, params["max_seq_len"]))
    d = min(64, params["max_head_dim"]) if args.head_dim is None else args.head_dim
    if d < 1:
        raise CliError(f"--head-dim must be a positive integer, not {d}")
    rng = np.random.default_rng(args.seed)
    q = rng.normal(size=(heads, q_len, d))
    k, v = (rng.normal(size=(kv_heads, kv_len, d)) for _ in range(2))
    return (q, k, v), (heads, kv_heads, q_len, kv_len)


def _sim_decoder(args, params: dict, nm) -> int:
    """``sim engine`` on decoder attention: causal masks at the cache's positions, grouped heads."""
    import dataclasses

    from attn_rtl.sim.decoder import decoder_attention, decoder_attention_float, stack_queries, unstack_queries
    from attn_rtl.sim.engine_stream import engine_output
    from attn_rtl.sim.fixed import dequantize
    from attn_rtl.sim.golden_io import error_figures
    from attn_rtl.sim.sparse import allowed_mask, scheduled_tiles

    if cascade_requested(args):
        raise CliError("pruning and progressive flags take encoder layers, not decoder shapes")
    (q, k, v), (heads, kv_heads, q_len, kv_len) = _decoder_inputs(args, params)
    d = q.shape[-1]
    for flag, value, name in (("--kv-len", kv_len, "max_seq_len"), ("--head-dim", d, "max_head_dim"),
                              ("--heads", heads, "max_heads")):
        if value > params[name]:
            raise CliError(f"{flag} must be at most {name} = {params[name]}, not {value}")
    pattern = decoder_pattern(args, kv_len)
    if pattern.is_causal and not params["sparse"]:
        raise CliError(f"--pattern {pattern.kind} needs an engine built with sparse = true (add --sparse)")
    window = pattern.window if pattern.kind == "causal-window" else None
    scale = 1.0 / math.sqrt(d)
    golden = decoder_attention(q, k, v, window=window, causal=pattern.is_causal, scale=scale, nm=nm,
                               key_tile=params["cols"])
    group = heads // kv_heads
    run = dict(heads=heads, kv_heads=kv_heads, query_len=q_len, seq_len=kv_len, head_dim=d, pattern=pattern.to_dict())
    ints = (golden.q_int, golden.k_int[::group], golden.v_int[::group])   # each K/V head once
    report, passed, out = _simulate(args, params, run, golden, ints)
    if passed:
        o_int = report["outputs"][0]
        shape = dict(query_len=q_len, group=group)
        mask = None if pattern.is_dense else allowed_mask(pattern, kv_len, **shape)
        stacked = engine_output(stack_queries(ints[0], kv_heads), *ints[1:], golden.multiplier, golden.shift, nm,
                                params["cols"], mask, rows=params["rows"],
                                schedule=scheduled_tiles(pattern, kv_len, params["rows"], params["cols"], **shape))
        expected = unstack_queries(stacked, heads)

        def reference(q_, k_, v_):
            return decoder_attention_float(q_, k_, v_, window=window, scale=scale, causal=pattern.is_causal)

        # Per query head, as for encoder runs.
        out.update(_figures(report, o_int, expected),
                   allowed_pairs=int(allowed_mask(pattern, kv_len, query_len=q_len).sum()))
        hw = dataclasses.replace(golden, o_int=o_int, o=dequantize(o_int, golden.scales["o"]))
        out.update(error_figures(hw, q, k, v, scale, reference=reference))
        _save_output(args, o_int, hw.o)
    out["seq_len"] = kv_len
    return _finish(args, params, out, passed, report,
                   f"  decoder: {heads} query heads on {kv_heads} K/V heads, {q_len} queries at positions "
                   f"{kv_len - q_len}..{kv_len - 1} of a {kv_len}-key cache, {pattern.kind}")


def _sim_cascade(args, params: dict, nm, plan: dict, q, k, v, heads: int, seq_len: int) -> int:
    """``sim engine`` with pruning or progressive flags: the layer in RTL (engine, then top-k or the
    recompute run), checked against its golden model."""
    import dataclasses

    from attn_rtl.gen.simulate import simulate_layer, simulate_progressive
    from attn_rtl.sim.fixed import dequantize
    from attn_rtl.sim.golden import attention
    from attn_rtl.sim.golden_io import error_figures
    from attn_rtl.sim.progressive import progressive_layer
    from attn_rtl.sim.pruning import pruned_layer

    q, k, v = cascade_inputs(plan, q, k, v)
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
    found, passed = run_simulation(run)
    out = {"passed": passed, "sim": args.sim, "seed": args.seed, "heads": q.shape[0], "seq_len": q.shape[1],
           "head_dim": d}
    if passed:
        layer, reports = found
        first = reports.get("engine", reports.get("first"))
        o_int = np.asarray(layer.o).reshape(golden.o_int.shape)
        hw = dataclasses.replace(golden, o_int=o_int, o=dequantize(o_int, golden.scales["o"]))
        out.update(cycles=sum(r["cycles"] for rep in reports.values() if "runs" in rep for r in rep["runs"]),
                   mismatches=int((o_int != np.asarray(expect.o).reshape(o_int.shape)).sum()),
                   memory_bits=first["memory_bits"], **cascade_report(plan, layer, heads, seq_len),
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


def _sim_memory_mapped(args, params: dict) -> int:
    """A run of the memory-mapped top against the latency/bandwidth memory model (tb/axi_memory.v)."""
    from attn_rtl.gen.simulate import measure_engine_mm

    stray = [flag for flag, value in (("--inputs", args.inputs), ("--output", args.output)) if value is not None]
    if args.pattern != "dense" or stray:
        raise CliError(f"{stray[0] if stray else '--pattern'} does not apply to --memory-mapped (a dense run of "
                       f"random tensors through memory)")
    from attn_rtl.sim.golden import Numerics

    heads = args.heads or 1
    seq_len = args.kv_len or args.seq_len or min(128, params["max_seq_len"])
    run = dict(heads=heads, kv_heads=args.kv_heads or heads, seq_len=seq_len, query_len=args.q_len or seq_len,
               head_dim=args.head_dim or min(64, params["max_head_dim"]), layout=args.layout)
    # SpAtten through memory: lists read by the DMA, an importance run writing its importances, the
    # progressive first run reading K's MSB plane (the build takes importance and row_flags as needed).
    plan = cascade_plan(args, heads, seq_len, Numerics(**params["numerics"]))
    if plan is not None:
        if plan["tokens"] is not None:
            run["tokens"] = plan["tokens"].tolist()
        if plan["heads"] is not None:
            run["head_list"] = plan["heads"].tolist()
        if plan["token_keep"] is not None or plan["head_keep"] is not None:
            raise CliError("--token-keep and --head-keep select in software: with --memory-mapped, make it an "
                           "importance run (--importance-run) and rank the importances it writes")
        if plan["msb_bits"] is not None:
            if plan["msb_bits"] not in (1, 2, 4):
                raise CliError(f"--progressive with --memory-mapped reads K's MSB plane of 1, 2 or 4 bits, "
                               f"not {plan['msb_bits']}")
            run.update(k_msb_bits=plan["msb_bits"], threshold=plan["threshold"])
            params = dict(params, row_flags=True)
        else:
            params = dict(params, importance=True)
    if args.importance_run:
        run["importance"] = True
        params = dict(params, importance=True)
    report, passed = run_simulation(lambda: measure_engine_mm(params, [run], latency=args.mem_latency,
                                                              bytes_per_cycle=args.mem_bytes_per_cycle,
                                                              sim=args.sim, seed=args.seed))
    if args.json:
        return print_json(args, params, report, passed)
    print(f"attn-rtl sim: memory-mapped engine {params['rows']}x{params['cols']}, {params['bus_width']}-bit bus, "
          f"memory latency {args.mem_latency} cycles, on {args.sim}, seed {args.seed}")
    if not passed:
        print(f"FAIL: {report['error']}")
        return 1
    r = report["runs"][0]
    print("  PASS: O read back from memory bit-exact, the rest of memory unchanged")
    print(f"  cycles: {r['cycles']:,} from START to irq; MAC utilization {r['mac_utilization']:.2%}")
    if "token_list" in r or "head_list" in r:
        print(f"  computed {len(r.get('token_list', range(seq_len)))} tokens of {seq_len}, "
              f"{len(r.get('head_list', range(heads)))} heads of {heads} (lists read from memory)")
    print(f"  bytes read {r['bytes_read']:,}, written {r['bytes_written']:,} (K/V buffer "
          f"{'holds the head: K and V read once' if r['kv_fits'] else 'too small: K and V read per query block'})")
    return 0
