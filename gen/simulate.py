"""Generate a unit, run its cocotb testbench on a simulator, return the measured report."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import attn_rtl.tb
from attn_rtl.params import boolean, int_in_range, positive_int
from attn_rtl.sim.golden import Numerics
from attn_rtl.sim.sparse import (
    SparsePattern,
    allowed_mask,
    check_queries,
    pattern_from_dict,
    register_values,
    scheduled_tiles,
)

from .generate import cached_verilog, unit

__all__ = ["simulate_array", "simulate_softmax", "simulate_accumulator", "simulate_global_row", "simulate_scheduler",
           "simulate_topk", "simulate_engine", "simulate_layer", "simulate_progressive", "simulate_engine_axil",
           "simulate_engine_mm", "measure_engine_mm", "measure_engine", "check_probability", "check_seed"]

#: The full-rate harness around the engine (tb/engine_bench.v).
ENGINE_BENCH = Path(attn_rtl.tb.__file__).resolve().parent / "engine_bench.v"
MM_BENCH_MEMORY = ENGINE_BENCH.with_name("axi_memory.v")
MM_BENCH_MAIN = ENGINE_BENCH.with_name("mm_bench_main.v")
ENGINE_BENCH_MAIN = ENGINE_BENCH.with_name("engine_bench_main.v")


def check_probability(name: str, value) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a probability from 0 up to (not including) 1, not {value!r}")
    return float(value)


def check_seed(seed) -> int:
    """A testbench's seed: a non-negative integer (numpy's generators take no other)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    return int(seed)


def simulate_array(params: dict, *, sim: str = "icarus", seed: int = 1, tiles=None, idle: float = 0.0,
                   stall: float = 0.0, reset_mid: bool = False, operands: str = "random",
                   diagonal: bool = False, kinds=None, loads=None, global_columns=None,
                   reset_from_sliding: bool = False) -> dict:
    """Run ``tiles`` (a list of reduction lengths; default four of ``max_reduction``) through the array;
    ``diagonal`` (a ``sliding`` build) runs them as diagonal tiles with the ``sliding`` input high.
    ``kinds`` names each tile's kind instead: ``dense`` (all), or ``diagonal`` and ``stationary``
    (weight-stationary P·V, at most ``cols`` steps) in a ``sliding`` build; ``loads`` says for each
    stationary tile whether it swaps in new weights (default: all do; the first always does);
    ``global_columns`` which diagonal or stationary tiles take the global lane in their last column.
    ``reset_from_sliding`` (a ``sliding`` build, dense tiles) first cuts a diagonal tile by a reset at every
    cycle from its last step to its rows' drain, turning ``sliding`` off with the reset: no row of it may
    come out.

    The report holds ``passed``, ``elements`` compared, ``cycles`` from the
    first operand accepted to the last result sent, and ``macs``.
    """
    from attn_rtl.sim.runner import run_cocotb

    path, component = cached_verilog("array", params)
    full = component.params
    tiles = [full["max_reduction"]] * 4 if tiles is None else list(tiles)
    if not tiles:
        raise ValueError("tiles must list at least one reduction length")
    for depth in tiles:
        positive_int("reduction length", depth, at_most=full["max_reduction"])
    kinds = list(kinds) if kinds is not None else ["diagonal" if diagonal else "dense"] * len(tiles)
    if len(kinds) != len(tiles):
        raise ValueError(f"kinds must name one kind per tile ({len(tiles)}), not {len(kinds)}")
    for kind, depth in zip(kinds, tiles):
        if kind not in ("dense", "diagonal", "stationary"):
            raise ValueError(f"a tile's kind must be dense, diagonal or stationary, not {kind!r}")
        if kind != "dense" and not full["sliding"]:
            raise ValueError(f"{kind} tiles need an array built with sliding = true")
        if kind == "stationary" and depth > full["cols"]:
            raise ValueError(f"a stationary tile has at most cols = {full['cols']} steps, not {depth}")
    if "dense" in kinds and len(set(kinds)) > 1:
        raise ValueError("dense tiles and diagonal or stationary ones need different runs (the sliding input)")
    loads = [True] * len(tiles) if loads is None else [bool(x) for x in loads]
    if len(loads) != len(tiles):
        raise ValueError(f"loads must say for each tile ({len(tiles)}) whether it loads weights, not {len(loads)}")
    global_columns = [False] * len(tiles) if global_columns is None else [bool(x) for x in global_columns]
    if len(global_columns) != len(tiles):
        raise ValueError(f"global_columns must say for each tile ({len(tiles)}) whether it takes the global lane, "
                         f"not {len(global_columns)}")
    if any(g and kind == "dense" for g, kind in zip(global_columns, kinds)):
        raise ValueError("the global column is for diagonal and stationary tiles, not dense ones")
    if reset_from_sliding and (not full["sliding"] or set(kinds) != {"dense"}):
        raise ValueError("reset_from_sliding takes a sliding build and dense tiles")
    cfg = dict(full, seed=check_seed(seed), tiles=tiles, idle=check_probability("idle", idle),
               stall=check_probability("stall", stall), reset_mid=bool(reset_mid), operands=operands,
               kinds=kinds, loads=loads, global_columns=global_columns, reset_from_sliding=bool(reset_from_sliding))
    models = unit("array").simulation_models(full)
    report = run_cocotb(sources=[path, *models], toplevel=unit("array").top, test_module=unit("array").testbench,
                        sim=sim, config=cfg)
    report.update(latency=component.latency, tiles=tiles, sim=sim,
                  model_cycles=component.run_cycles(tiles, [kind == "stationary" for kind in kinds]))
    return report


def simulate_softmax(params: dict, *, sim: str = "icarus", seed: int = 1, groups=None, scale_mult: int | None = None,
                     scale_shift: int | None = None, idle: float = 0.0, stall: float = 0.0,
                     reset_mid: bool = False, serial: bool = False) -> dict:
    """Run query blocks (``groups``, see ``tb/test_softmax.py``) through the softmax unit (with ``serial``
    the one-row :class:`~attn_rtl.hdl.serial_softmax.SerialSoftmax`, whose groups have one row).

    The default scale maps the score range onto about 16 octaves of logits.
    The report holds ``passed``, ``elements`` compared, ``beats``, and
    ``cycles`` from the first beat accepted to the last.
    """
    from attn_rtl.sim.runner import run_cocotb

    name = "serial_softmax" if serial else "softmax"
    path, component = cached_verilog(name, params)
    full = dict(component.params, slots=1) if serial else component.params
    nm = component.numerics
    if groups is None:
        groups = [dict(rows=full["slots"], keys=4 * full["lanes"])]
    if scale_mult is None:
        scale_mult = (1 << nm.mult_width) - 1
    if scale_shift is None:
        scale_shift = min(nm.max_shift, max(0, full["score_width"] - 1 + nm.mult_width - nm.logit_frac_bits - 4))
    for g in groups:
        positive_int("rows", g["rows"], at_most=full["slots"])
        positive_int("keys", g["keys"], at_most=full["max_seq_len"])
    cfg = dict(full, seed=check_seed(seed), groups=list(groups), scale_mult=int(scale_mult), scale_shift=int(scale_shift),
               idle=check_probability("idle", idle), stall=check_probability("stall", stall),
               reset_mid=bool(reset_mid),
               recurrence=component.row_end_cycles if serial else component.slot_recurrence)
    block = unit(name)
    models = block.simulation_models(component.params)
    report = run_cocotb(sources=[path, *models], toplevel=block.top, test_module=block.testbench, sim=sim,
                        config=cfg)
    report.update(latency=component.latency, sim=sim,
                  **({"tile_cycles": component.tile_cycles, "row_end_cycles": component.row_end_cycles} if serial
                     else {"sum_latency": component.sum_latency}))
    return report


def simulate_accumulator(params: dict, *, sim: str = "icarus", seed: int = 1, blocks=None, idle: float = 0.0,
                         stall: float = 0.0, recip_idle: float | None = None, reset_mid: bool = False) -> dict:
    """Run query blocks (``blocks``, see ``tb/test_output_accumulator.py``: dicts of ``tiles``,
    ``chunks`` and optionally ``rows_valid``, ``lanes_valid``, ``order``, ``partials``) through the
    output accumulator and compare every output lane with the golden model.  ``idle`` is the
    sources' probability of an idle cycle, ``recip_idle`` the reciprocals' (default ``idle``),
    ``stall`` the output's backpressure.

    The report holds ``passed``, ``elements`` compared, ``beats``, ``outputs`` and ``cycles`` from
    the first partial accepted to the last.
    """
    from attn_rtl.sim.runner import run_cocotb

    u = unit("accumulator")
    path, component = cached_verilog("accumulator", params)
    full = u.validate(**params)   # the component keeps no parameter dict of its own
    if blocks is None:
        blocks = [dict(tiles=3, chunks=full["chunks"])]
    if not blocks:
        raise ValueError("blocks must list at least one block")
    for block in blocks:
        positive_int("tiles", block["tiles"])
        positive_int("chunks", block["chunks"], at_most=full["chunks"])
        positive_int("rows_valid", block.get("rows_valid", full["rows"]), at_most=full["rows"])
        positive_int("lanes_valid", block.get("lanes_valid", full["lanes"]), at_most=full["lanes"])
        if block.get("order", "engine") not in ("engine", "rows"):
            raise ValueError(f"order must be engine or rows, not {block['order']!r}")

    def fields(port):
        return [(name, field.width) for name, field in port.payload.shape()]

    cfg = dict(full, seed=check_seed(seed), blocks=list(blocks), idle=check_probability("idle", idle),
               recip_idle=check_probability("recip_idle", idle if recip_idle is None else recip_idle),
               stall=check_probability("stall", stall), reset_mid=bool(reset_mid),
               acc_width=component.acc_width, sum_width=component.sum_width, recurrence=component.recurrence,
               partial_fields=fields(component.partials), recip_fields=fields(component.recips),
               out_fields=fields(component.out))
    report = run_cocotb(sources=[path, *u.simulation_models(full)], toplevel=u.top, test_module=u.testbench,
                        sim=sim, config=cfg)
    report.update(latency=component.latency, recurrence=component.recurrence, sim=sim)
    return report


def simulate_scheduler(params: dict, runs, *, sim: str = "icarus", seed: int = 1, stall: float = 0.0,
                       reset_mid: bool = False) -> dict:
    """Run the sparse scheduler on ``runs`` (dicts of ``pattern`` (``SparsePattern.to_dict()``),
    ``seq_len``, ``heads`` and, for decoder runs, ``query_len`` and ``group``; see
    ``tb/test_sparse_scheduler.py``) and compare every tile with the golden schedule.  The report holds
    ``cycles_per_run`` from ``start`` to the last tile."""
    from attn_rtl.sim.runner import run_cocotb

    path, component = cached_verilog("scheduler", params)
    full = component.params
    for r in runs:
        if not r.get("expect_error"):
            positive_int("seq_len", r["seq_len"], at_most=full["max_seq_len"])
            positive_int("heads", r["heads"], at_most=full["max_heads"])
            positive_int("group", r.get("group", 1), at_most=full["max_heads"])
            check_queries(pattern_from_dict(r["pattern"]), r["seq_len"], r.get("query_len"), r.get("group", 1))
    cfg = dict(full, seed=check_seed(seed), runs=list(runs), stall=check_probability("stall", stall),
               reset_mid=bool(reset_mid))
    report = run_cocotb(sources=[path], toplevel=unit("scheduler").top, test_module=unit("scheduler").testbench,
                        sim=sim, config=cfg)
    report.update(sim=sim, setup_cycles=component.setup_cycles)
    return report


def simulate_diagonal_scheduler(params: dict, runs, *, sim: str = "icarus", seed: int = 1, stall: float = 0.0,
                                reset_mid: bool = False) -> dict:
    """Run the diagonal-tile scheduler on ``runs`` (dicts of ``pattern`` (``SparsePattern.to_dict()``),
    ``seq_len`` and ``heads``; see ``tb/test_diagonal_scheduler.py``) and compare every tile with
    ``attn_rtl.sim.sliding.diagonal_tiles``.  The report holds ``cycles_per_run`` from ``start`` to
    the last tile."""
    from attn_rtl.sim.runner import run_cocotb

    path, component = cached_verilog("diagonal_scheduler", params)
    full = component.params
    for r in runs:
        if not r.get("expect_error"):
            positive_int("seq_len", r["seq_len"], at_most=full["max_seq_len"])
            positive_int("heads", r["heads"], at_most=full["max_heads"])
            check_queries(pattern_from_dict(r["pattern"]), r["seq_len"])
    cfg = dict(full, seed=check_seed(seed), runs=list(runs), stall=check_probability("stall", stall),
               reset_mid=bool(reset_mid))
    block = unit("diagonal_scheduler")
    report = run_cocotb(sources=[path], toplevel=block.top, test_module=block.testbench, sim=sim, config=cfg)
    report.update(sim=sim, setup_cycles=component.setup_cycles)
    return report


def simulate_global_row(params: dict, runs, *, sim: str = "icarus", seed: int = 1, idle: float = 0.0,
                        stall: float = 0.0, reset_mid: bool = False) -> dict:
    """Run the global row on ``runs`` (dicts of ``pattern`` (``SparsePattern.to_dict()``, one global token),
    ``seq_len``, ``heads``, ``head_dim``, ``scale_mult``, ``scale_shift`` and optionally ``operands``; see
    ``tb/test_global_row.py``) as a diagonal run's steps and compare every O lane with the global row of
    ``attn_rtl.sim.sliding.sliding_output``.  ``idle`` is the probability of a cycle without a step or Q
    beat, ``stall`` the O stream's backpressure."""
    from attn_rtl.sim.runner import run_cocotb
    from attn_rtl.sim.sliding import uses_global_row

    block = unit("global_row")
    path, component = cached_verilog("global_row", params)
    full = component.params
    if not runs:
        raise ValueError("runs must list at least one run")
    for r in runs:
        pattern = pattern_from_dict(r["pattern"])
        positive_int("seq_len", r["seq_len"], at_most=full["max_seq_len"])
        positive_int("heads", r["heads"])
        positive_int("head_dim", r["head_dim"], at_most=full["max_head_dim"])
        if not uses_global_row(pattern, r["seq_len"], 1):
            raise ValueError(f"a global row run needs one global token and a plain query, not {pattern}")

    def fields(layout):
        return [(name, field.width) for name, field in layout]

    cfg = dict(full, seed=check_seed(seed), runs=list(runs), idle=check_probability("idle", idle),
               stall=check_probability("stall", stall), reset_mid=bool(reset_mid),
               step_fields=fields(component.step_layout), o_fields=fields(component.o.payload.shape()))
    report = run_cocotb(sources=[path, *block.simulation_models(full)], toplevel=block.top,
                        test_module=block.testbench, sim=sim, config=cfg)
    report.update(sim=sim)
    return report


def simulate_topk(params: dict, problems, *, sim: str = "icarus", seed: int = 1, idle: float = 0.0,
                  stall: float = 0.0, reset_mid: bool = False, measure: bool = False,
                  out_of_range: bool = False) -> dict:
    """Run ``problems`` (dicts of ``n``, ``k``, value ``kind``, optional ``keep``; see ``tb/test_topk.py``)
    through the top-k engine and compare every answer with ``attn_rtl.sim.topk.topk``.

    With ``measure`` the problems go one at a time and the report's
    ``cycles_per_problem`` counts from a problem's first input beat accepted
    to its last output beat taken.  ``out_of_range`` lets ``n`` exceed ``max_n`` and ``k`` leave
    1 … ``max_k``, to check the engine's ``overflow`` and ``k_error`` flags and its cut and clamp.
    """
    from attn_rtl.sim.runner import run_cocotb

    path, component = cached_verilog("topk", params)
    full = component.params
    problems = [dict(p) for p in problems]
    if not problems:
        raise ValueError("problems must list at least one problem")
    for p in problems:
        positive_int("n", p["n"], at_most=None if out_of_range else full["max_n"])
        if not out_of_range:
            positive_int("k", p["k"], at_most=full["max_k"])
    cfg = dict(full, seed=check_seed(seed), problems=problems, idle=check_probability("idle", idle),
               stall=check_probability("stall", stall), reset_mid=bool(reset_mid), measure=bool(measure))
    report = run_cocotb(sources=[path], toplevel=unit("topk").top, test_module=unit("topk").testbench,
                        sim=sim, config=cfg)
    report.update(sim=sim, levels=component.levels)
    return report


def _engine_runs(params: dict, runs) -> list[dict]:
    """Copies of ``runs`` with ``heads`` filled in, each size checked against the engine's maxima;
    ``ValueError`` for a shape or pattern the build cannot run."""
    runs = [dict(r) for r in runs]
    if not runs:
        raise ValueError("runs must list at least one run")
    for r in runs:
        positive_int("seq_len", r["seq_len"], at_most=params["max_seq_len"])
        positive_int("head_dim", r["head_dim"], at_most=params["max_head_dim"])
        positive_int("heads", r.setdefault("heads", 1), at_most=params["max_heads"])
        pattern = r.get("pattern", {"pattern": "dense"})
        pattern = pattern if isinstance(pattern, SparsePattern) else pattern_from_dict(pattern)
        if "kv_heads" in r:
            kv_heads = positive_int("kv_heads", r["kv_heads"], at_most=r["heads"])
            if r["heads"] % kv_heads:
                raise ValueError(f"heads ({r['heads']}) must be a multiple of kv_heads, not {kv_heads}")
        group = r["heads"] // r.get("kv_heads", r["heads"])
        if params["row_flags"] and group != 1:
            raise ValueError("an engine built with row_flags = true takes kv_heads = heads only, "
                             f"not {r['kv_heads']} of {r['heads']}")
        if r.get("importance") and group != 1:
            raise ValueError(f"an importance run takes kv_heads = heads only, not {r['kv_heads']} of {r['heads']}")
        check_queries(pattern, r["seq_len"], r.get("query_len"), group)
        if pattern.is_dense and not params["sparse"]:
            pattern = SparsePattern()    # global tokens add nothing to dense attention
        if not params["sparse"] and not pattern.is_dense:
            raise ValueError(f"the {pattern.kind} pattern needs an engine built with sparse = true")
        if pattern.dilation > params["max_dilation"]:
            raise ValueError(f"dilation must be at most max_dilation = {params['max_dilation']}, "
                             f"not {pattern.dilation}")
        if len(pattern.global_tokens) > params["max_globals"]:
            raise ValueError(f"at most max_globals = {params['max_globals']} global tokens, "
                             f"not {len(pattern.global_tokens)}")
        r["pattern"] = pattern.to_dict()
        r["diagonal"] = boolean("diagonal", r.get("diagonal", False))
        if r["diagonal"]:
            if not params.get("sliding"):
                raise ValueError("a diagonal run needs an engine built with sliding = true")
            if pattern.kind not in ("window", "dilated", "grid"):
                raise ValueError(f"a diagonal run takes the window, dilated or grid pattern, not {pattern.kind}")
        r["importance"] = boolean("importance", r.get("importance", False))
        if r["importance"] and not params["importance"]:
            raise ValueError("an importance run needs an engine built with importance = true")
        if "threshold" in r:
            if not params["row_flags"]:
                raise ValueError("threshold needs an engine built with row_flags = true")
            prob_width = Numerics(**params["numerics"]).prob_width
            int_in_range("threshold", r.setdefault("threshold", 0), 0, (1 << prob_width) - 1)
    return runs


def _default_scale(component, head_dim: int) -> tuple[int, int]:
    """``M, s`` for ``1/sqrt(d)`` on int8-like operands of scale 1/16 (a few octaves of logits)."""
    import math

    from attn_rtl.sim.golden import score_multiplier

    return score_multiplier(1.0 / (math.sqrt(head_dim) * 127 * 127 / 16), component.nm)


def measure_engine(params: dict, runs, *, sim: str = "verilator", seed: int = 1, stall: float = 0.0) -> dict:
    """Cycles of the engine at full rate (streams never stall), each output checked against the golden model.

    Runs the DMA-model harness ``tb/engine_bench.v`` under its own driver
    ``tb/engine_bench_main.v``: a standalone simulation with no Python per
    cycle (no cocotb), so long sequences take seconds.  ``runs`` as for
    :func:`simulate_engine` (random operands, seeded), each optionally with its own ``scale_mult`` and
    ``scale_shift``.  With ``stall`` (a probability) every stream waits at random instead (each source's
    valid and each sink's ready held low in a cycle with that chance; the cycle counts then measure the
    harness, not the engine).  The report's ``runs``
    hold ``cycles`` (first input beat accepted to last output beat),
    ``ideal_cycles``, ``useful_macs``, ``mac_utilization``, ``mismatched_beats``
    and ``counter`` (the core's own ``ctrl_cycles``).

    Raises
    ------
    SimulationFailure
        When an output beat differs from the golden model, one is missing, or a run does not finish.
    """
    from attn_rtl.sim.decoder import stack_queries
    from attn_rtl.sim.engine_stream import engine_beats, engine_output, output_beats, useful_macs
    from attn_rtl.sim.runner import SimulationFailure, run_free
    from attn_rtl.sim.sliding import diagonal_tiles, sliding_beats, sliding_output
    from attn_rtl.tb.harness import operand_matrix

    path, component = cached_verilog("engine", params)
    full = component.params
    for feature in ("importance", "row_flags"):
        if full[feature]:
            raise ValueError(f"the full-rate harness drives plain and sparse engines only, not {feature} = true "
                             f"(use simulate_engine)")
    runs = _engine_runs(full, runs)
    nm = component.nm
    rows, cols, w = full["rows"], full["cols"], nm.data_width
    # Memories for the largest run the engine takes: one build per parameter set.
    heads, seq_len, d = full["max_heads"], full["max_seq_len"], full["max_head_dim"]
    most = heads * -(-seq_len // min(rows, cols)) * d
    words = heads * seq_len * -(-d // cols)
    e = component.engine
    sparse = full["sparse"]
    # The sparse harness gathers K element by element: one word per element of K.
    # Q of grouped heads is stacked per K/V head: a partial block per K/V head more at most.
    parameters = dict(R=rows, C=cols, W=w, Q_WORDS=most + heads * d, K_WORDS=heads * seq_len * d if sparse else most,
                      V_WORDS=words, O_WORDS=words,
                      SEQ_BITS=len(e.seq_len), HEAD_BITS=len(e.heads), DIM_BITS=len(e.head_dim),
                      MULT_BITS=len(e.scale_mult))
    sliding = full["sliding"]
    if sliding:
        # V by element too; a diagonal run's blocks may hold one query each (a wide dilation), and its
        # global queries have blocks of their own.
        lanes = rows + cols
        blocks_most = heads * (seq_len + full["max_globals"])
        parameters.update(U=lanes, V_WORDS=heads * seq_len * d, Q_WORDS=blocks_most * d, O_WORDS=blocks_most * words)
    if sparse:
        parameters.update(KEY_BITS=len(e.kv_index.payload.keys.as_value()) // (lanes if sliding else cols),
                          WINDOW_BITS=len(e.window),
                          DIL_BITS=len(e.dilation), GCOUNT_BITS=len(e.global_count),
                          GLOBALS_BITS=len(e.global_tokens.as_value()))
    default_scale = _default_scale(component, runs[0]["head_dim"])
    rng = np.random.default_rng(check_seed(seed))
    stall_draw = round(check_probability("stall", stall) * 1024)
    # A run waits about 1/(1 - stall) times longer per stream; twice that leaves room for chains of waits.
    slowdown = 1 if not stall_draw else 2 * (-(-1024 // (1024 - stall_draw))) ** 2
    sources = [path, *unit("engine").simulation_models(full), ENGINE_BENCH, ENGINE_BENCH_MAIN]
    results = []
    for index, run in enumerate(runs):
        heads, seq_len, d = run["heads"], run["seq_len"], run["head_dim"]
        kv_heads, query_len = run.get("kv_heads", heads), run.get("query_len", seq_len)
        mult = int_in_range("scale_mult", run.get("scale_mult", default_scale[0]), 0, (1 << nm.mult_width) - 1)
        shift = int_in_range("scale_shift", run.get("scale_shift", default_scale[1]), 0, nm.max_shift)
        shape = dict(query_len=query_len, group=heads // kv_heads)
        pattern = pattern_from_dict(run["pattern"])
        mask = None if pattern.is_dense else allowed_mask(pattern, seq_len, **shape)
        schedule = scheduled_tiles(pattern, seq_len, rows, cols, **shape)
        q = stack_queries(operand_matrix(rng, (heads, query_len, d), w, True, "random"), kv_heads)
        k, v = (operand_matrix(rng, (kv_heads, seq_len, d), w, True, "random") for _ in range(2))
        # Q beats (and, dense, the K and V beats one block replays); the sparse harness gathers K and V itself.
        if run["diagonal"]:
            tiling = diagonal_tiles(pattern, seq_len, rows, cols, global_row=int(full["global_row"]))
            beats = sliding_beats(q, k, v, sliding_output(q, k, v, mult, shift, nm, tiling), tiling)
            blocks = len(np.unique(tiling.block))   # blocks with tiles, per head
            data, last = beats.o, beats.o_last
            array_tiles = len(tiling)
        else:
            beats = engine_beats(q, k, v, rows, cols, schedule if sparse else None)
            blocks = -(-q.shape[1] // rows)   # per K/V head
            data, last = output_beats(engine_output(q, k, v, mult, shift, nm, cols, mask, schedule=schedule,
                                                    rows=rows), rows, cols)
            array_tiles = len(schedule)
        k_per = 0 if sparse else len(beats.k) // (kv_heads * blocks)
        v_per = 0 if sparse else len(beats.v) // (kv_heads * blocks)
        macs = useful_macs(kv_heads, seq_len, d, q.shape[1] * seq_len if mask is None else int(mask.sum()))
        plusargs = dict(seq_len=seq_len, heads=heads, kv_heads=kv_heads, query_len=query_len, head_dim=d,
                        scale_mult=mult, scale_shift=shift,
                        blocks=blocks, k_per_head=k_per, v_per_head=v_per, q_total=len(beats.q),
                        o_total=len(data),
                        # Four times the array's busy cycles: a score and its value tiles per key tile, each
                        # as long as the array is tall at least (a one-row decode block fills one row).
                        budget=(4 * kv_heads * array_tiles * (max(d, rows) + -(-d // cols) * max(cols, rows))
                                + 10_000) * slowdown,
                        stall=stall_draw, stall_seed=int(rng.integers(1, 1 << 31)))
        if sparse:
            registers = register_values(pattern, full["max_globals"],
                                        len(e.global_tokens.as_value()) // full["max_globals"])
            plusargs.update(registers, global_tokens=f"{registers['global_tokens']:x}", chunks=-(-d // cols))
        if sliding:
            plusargs["diagonal"] = int(run["diagonal"])
        with tempfile.TemporaryDirectory(prefix="engine-bench-") as run_dir:
            if sliding:   # K and V by element (tb/engine_bench.v)
                k_words, v_words = k.reshape(-1, 1), v.reshape(-1, 1)
            elif sparse:   # K by element, V by row chunk
                chunks = -(-d // cols)
                vp = np.zeros((kv_heads, seq_len, chunks * cols), np.int64)
                vp[:, :, :d] = v
                k_words, v_words = k.reshape(-1, 1), vp.reshape(-1, cols)
            else:        # the harness replays each head's K and V beats for every query block
                k_words = beats.k.reshape(kv_heads, blocks, k_per, cols)[:, 0].reshape(-1, cols)
                v_words = beats.v.reshape(kv_heads, blocks, v_per, cols)[:, 0].reshape(-1, cols)
            files = {"q.hex": _hex_words(beats.q, w), "k.hex": _hex_words(k_words, w),
                     "v.hex": _hex_words(v_words, w), "o.hex": _hex_words(data, w, top=last)}
            for name, text in files.items():
                Path(run_dir, name).write_text(text)
            out = run_free(sources=sources, toplevel="engine_bench_main", sim=sim, parameters=parameters,
                           defines=["SPARSE"] * sparse + ["SLIDING"] * sliding, run_dir=Path(run_dir),
                           plusargs=plusargs)
        found = _result_line(out, f"engine_bench_main on {sim}")
        problems = []
        if found["done"] != 1:
            problems.append(f"not done after {found['waited']} cycles")
        if found["o_seen"] != len(data):
            problems.append(f"{found['o_seen']} output beats, expected {len(data)}")
        if found["mismatches"]:
            problems.append(f"{found['mismatches']} output beats differ from the golden model")
        if problems:
            raise SimulationFailure(f"engine run {index} {run} (seed {seed}) on {sim}: " + "; ".join(problems))
        cycles = found["last_out"] - found["first_in"] + 1
        results.append(dict(run, cycles=cycles, useful_macs=macs, ideal_cycles=-(-macs // (rows * cols)),
                            mac_utilization=macs / (rows * cols * cycles), mismatched_beats=found["mismatches"],
                            counter=found["cycles"]))
    return dict(passed=True, seed=seed, sim=sim, cycles=results[-1]["cycles"], runs=results,
                memory_bits=component.memory_bits)


def _hex_words(lanes: np.ndarray, width: int, top=None) -> str:
    """One ``$readmemh`` word per row: lane 0 in the low bits, ``top`` (bits) above the lanes."""
    if width % 4:
        raise ValueError("the harness packs lanes of a multiple of 4 bits")
    lanes = np.asarray(lanes, np.int64) & ((1 << width) - 1)
    digits = width // 4
    rows = ["".join(f"{x:0{digits}x}" for x in row[::-1]) for row in lanes.tolist()]
    if top is not None:
        rows = [f"{int(t):x}{r}" for t, r in zip(top, rows)]
    return "\n".join(rows) + "\n"


def _result_line(output: str, who: str) -> dict:
    for line in output.splitlines():
        if line.startswith("RESULT "):
            return {k: int(v) for k, v in (field.split("=") for field in line.split()[1:])}
    from attn_rtl.sim.runner import SimulationFailure

    raise SimulationFailure(f"{who} printed no RESULT line:\n{output[-2000:]}")


def simulate_engine(params: dict, runs, *, sim: str = "icarus", seed: int = 1, scale_mult: int | None = None,
                    scale_shift: int | None = None, idle: float = 0.0, stall: float = 0.0,
                    reset_mid: bool = False, operands=None) -> dict:
    """Run ``runs`` (dicts of ``heads``, ``seq_len``, ``head_dim``, optional ``operands``) through the engine.

    ``operands``, if given, lists per run the integer ``(q, k, v)`` of shape
    ``(heads, seq_len, head_dim)`` (decoder runs, with ``kv_heads`` and ``query_len``: q of
    ``(heads, query_len, head_dim)``, k and v of ``(kv_heads, seq_len, head_dim)``); then the
    report's ``outputs`` holds the O each run produced (integers, q's shape).  Otherwise operands are random
    (``operands`` of a run: ``random``, ``min``, ``max`` or ``mixed``).

    The report's ``runs`` holds, per run, ``cycles`` (first input beat accepted
    to last output beat sent), ``ideal_cycles``, ``useful_macs`` and
    ``mac_utilization``.  The default score scale is ``1/sqrt(d)`` of int8
    operands of unit scale (``M``, ``s`` from :func:`attn_rtl.sim.golden.score_multiplier`).
    """
    from attn_rtl.sim.runner import run_cocotb

    path, component = cached_verilog("engine", params)
    full = component.params
    runs = _engine_runs(full, runs)
    if scale_mult is None or scale_shift is None:
        mult, shift = _default_scale(component, runs[0]["head_dim"])
        scale_mult = mult if scale_mult is None else scale_mult
        scale_shift = shift if scale_shift is None else scale_shift
    cfg = dict(full, seed=check_seed(seed), runs=runs, scale_mult=int(scale_mult), scale_shift=int(scale_shift),
               idle=check_probability("idle", idle), stall=check_probability("stall", stall),
               reset_mid=bool(reset_mid), start_latency=component.engine.start_latency,
               reset_latency=component.engine.reset_latency)
    if full["importance"]:
        cfg["token_importance_width"] = component.engine.token_importance_unit.width
    models = unit("engine").simulation_models(full)
    with tempfile.TemporaryDirectory(prefix="attn-engine-") as tmp:
        if operands is not None:
            if len(operands) != len(runs):
                raise ValueError(f"operands must list one (q, k, v) per run: {len(runs)}, not {len(operands)}")
            for index, (run, qkv) in enumerate(zip(runs, operands)):
                shape = (run.get("kv_heads", run["heads"]), run["seq_len"], run["head_dim"])
                q_shape = (run["heads"], run.get("query_len", run["seq_len"]), run["head_dim"])
                arrays = {name: np.asarray(x, np.int64).reshape(q_shape if name == "q" else shape)
                          for name, x in zip("qkv", qkv)}
                run["operands_file"] = str(Path(tmp, f"operands{index}.npz"))
                np.savez(run["operands_file"], **arrays)
            cfg["capture"] = str(Path(tmp, "outputs.npz"))
        report = run_cocotb(sources=[path, *models], toplevel=unit("engine").top,
                            test_module=unit("engine").testbench, sim=sim, config=cfg)
        if operands is not None:
            with np.load(cfg["capture"]) as f:
                report["outputs"] = [f[f"o{i}"] for i in range(len(runs)) if f"o{i}" in f.files]
                report["importance"] = [{"tokens": f[f"tokens{i}"], "heads": f[f"heads{i}"]}
                                         if f"tokens{i}" in f.files else None for i in range(len(runs))]
                report["row_flags"] = [f[f"flags{i}"] if f"flags{i}" in f.files else None for i in range(len(runs))]
    report.update(sim=sim, memory_bits=component.memory_bits)
    return report


def selection_topk_params(engine_params: dict, width: int) -> dict:
    """The top-k engine that ranks an engine's importances: unsigned ``width``-bit values, up to
    ``max_seq_len`` of them, any k."""
    n = max(engine_params["max_seq_len"], engine_params["max_heads"])
    return dict(lanes=4, value_width=width, signed=False, max_n=n, max_k=n)


def simulate_layer(params: dict, q_int, k_int, v_int, *, scale_mult: int, scale_shift: int, tokens=None,
                   heads=None, token_keep=None, head_keep=None, sim: str = "icarus", seed: int = 1,
                   idle: float = 0.0, stall: float = 0.0):
    """One pruned layer in RTL: the engine over the gathered tokens and heads, then the top-k engine
    selecting the next layer's lists from the importances (``attn_rtl.sim.pruning.pruned_layer`` is the golden
    model of all of it).

    Returns ``(layer, reports)``: a :class:`attn_rtl.sim.pruning.Layer` built from what the hardware sent,
    and the simulation reports (``engine``, and ``token_topk`` / ``head_topk`` when selecting).
    Raises :class:`attn_rtl.sim.runner.SimulationFailure` when any of them disagrees with its golden model.
    """
    from attn_rtl.sim.pruning import Layer, check_layer, fetched, gather

    q_int, k_int, v_int = (np.asarray(x, np.int64) for x in (q_int, k_int, v_int))
    if q_int.ndim != 3:
        raise ValueError(f"q, k and v must be (H, L, d) integer arrays, not shape {q_int.shape}")
    tokens, heads = check_layer(q_int, tokens, heads, token_keep, head_keep)
    ranked = token_keep is not None or head_keep is not None or bool(params.get("importance"))
    params = dict(params, importance=True) if ranked else params
    q, k, v = (gather(x, tokens, heads) for x in (q_int, k_int, v_int))
    run = dict(heads=len(heads), seq_len=len(tokens), head_dim=q.shape[-1], importance=ranked)
    report = simulate_engine(params, [run], sim=sim, seed=seed, scale_mult=scale_mult, scale_shift=scale_shift,
                             idle=idle, stall=stall, operands=[(q, k, v)])
    reports = {"engine": report}   # a mismatch has raised SimulationFailure already
    _, component = cached_verilog("engine", params)
    token_imp = head_imp = kept_tokens = kept_heads = None
    if ranked:
        token_imp = np.asarray(report["importance"][0]["tokens"], np.int64)
        head_imp = np.asarray(report["importance"][0]["heads"], np.int64)

    def hardware_select(name, values, keep, original, width):
        found = simulate_topk(selection_topk_params(component.params, width),
                              [dict(n=len(values), k=keep, values=[int(x) for x in values])], sim=sim, seed=seed)
        reports[name] = found
        chosen = np.sort(np.asarray(found["answers"][0]["indices"], np.int64))
        return np.asarray(original, np.int64)[chosen]

    # One top-k build ranks both (the wider of the two widths).
    width = max(component.token_importance_unit.width, component.head_importance_unit.width)
    if token_keep is not None:
        kept_tokens = hardware_select("token_topk", token_imp, token_keep, tokens, width)
    if head_keep is not None:
        kept_heads = hardware_select("head_topk", head_imp, head_keep, heads, width)
    layer = Layer(o=report["outputs"][0], tokens=tokens, heads=heads, importance=token_imp, head_importance=head_imp,
                  kept_tokens=kept_tokens, kept_heads=kept_heads,
                  fetched=fetched(len(heads), len(tokens), q.shape[-1], params["rows"],
                                  component.params["numerics"]["data_width"], importance=ranked))
    return layer, reports


def simulate_progressive(params: dict, q_int, k_int, v_int, *, scale_mult: int, scale_shift: int, msb_bits: int,
                         threshold: int, sim: str = "icarus", seed: int = 1, idle: float = 0.0, stall: float = 0.0):
    """A progressive layer in RTL (``attn_rtl.sim.progressive.progressive_layer`` is its golden model): the engine
    over K's ``msb_bits`` most significant bits, its row flags, then one run per head recomputing the
    flagged rows with the full K.

    Returns ``(layer, reports)``: a :class:`attn_rtl.sim.progressive.ProgressiveLayer` from what the hardware sent
    (its flags choose the rows recomputed) and the two simulation reports (``first``, ``recompute``).
    """
    from attn_rtl.sim.progressive import ProgressiveLayer, check_progressive, k_bytes, msb_only

    if not params.get("row_flags"):
        params = dict(params, row_flags=True)
    _, component = cached_verilog("engine", params)
    nm = Numerics(**component.params["numerics"])
    check_progressive(msb_bits, threshold, nm)
    q, k, v = (np.asarray(x, np.int64) for x in (q_int, k_int, v_int))
    if q.ndim != 3:
        raise ValueError(f"q, k and v must be (H, L, d) integer arrays, not shape {q.shape}")
    heads, seq_len, d = k.shape
    rows = component.params["rows"]
    k_msb = msb_only(k, msb_bits, nm.data_width)
    common = dict(sim=sim, seed=seed, scale_mult=scale_mult, scale_shift=scale_shift, idle=idle, stall=stall)
    first = simulate_engine(params, [dict(heads=heads, seq_len=seq_len, head_dim=d, threshold=threshold)],
                            operands=[(q, k_msb, v)], **common)
    words = np.asarray(first["row_flags"][0], np.int64).reshape(heads, -1)
    flags = ((words[:, :, None] >> np.arange(rows)) & 1).astype(bool).reshape(heads, -1)[:, :seq_len]
    o = np.array(first["outputs"][0])
    runs, operands, which = [], [], []
    for h in range(heads):
        again = np.flatnonzero(flags[h])
        if again.size:
            runs.append(dict(heads=1, seq_len=seq_len, query_len=int(again.size), head_dim=d))
            operands.append((q[h:h + 1, again], k[h:h + 1], v[h:h + 1]))
            which.append((h, again))
    reports = {"first": first}
    fetched = k_bytes(heads, seq_len, seq_len, d, rows, msb_bits)
    if runs:
        again_report = simulate_engine(params, runs, operands=operands, **common)
        reports["recompute"] = again_report
        for (h, again), out in zip(which, again_report["outputs"]):
            o[h, again] = out[0]
            fetched += k_bytes(1, again.size, seq_len, d, rows, nm.data_width)
    layer = ProgressiveLayer(o=o, flags=flags, k_bytes_fetched=fetched,
                             k_bytes_full=k_bytes(heads, seq_len, seq_len, d, rows, nm.data_width))
    return layer, reports


def simulate_engine_axil(params: dict, runs, *, sim: str = "icarus", seed: int = 1, idle: float = 0.0,
                         stall: float = 0.0, fuzz: int = 0) -> dict:
    """The AXI4-Lite top (``<top>_axil``) under ``tb/test_engine_axil.py``: register file checks, then
    ``runs`` (dense; ``heads``, ``seq_len``, ``head_dim``) started through the registers, every O beat
    compared with the golden model.  ``fuzz`` random transactions first, starts with out-of-range
    values, and random writes and STARTs during every run (see the testbench)."""
    from attn_rtl.sim.runner import run_cocotb

    path, component = cached_verilog("engine_axil", params)
    full = component.params
    runs = _engine_runs(full, runs)
    mult, shift = _default_scale(component, runs[0]["head_dim"])
    cfg = dict(full, seed=check_seed(seed), runs=runs, scale_mult=int(mult), scale_shift=int(shift),
               idle=check_probability("idle", idle), stall=check_probability("stall", stall),
               fuzz=int_in_range("fuzz", fuzz, 0, 1 << 20))
    u = unit("engine_axil")
    report = run_cocotb(sources=[path, *u.simulation_models(full)], toplevel=u.top, test_module=u.testbench,
                        sim=sim, config=cfg)
    report.update(sim=sim)
    return report


def simulate_engine_mm(params: dict, runs, *, sim: str = "icarus", seed: int = 1, pause: float = 0.0,
                       reset_mid: bool = False, memory_bytes: int = 1 << 18, fuzz: int = 0) -> dict:
    """The memory-mapped top (``attention_engine_mm``) under ``tb/test_engine_mm.py``: each of ``runs``
    (``heads``, ``kv_heads``, ``seq_len``, ``query_len``, ``head_dim``, ``layout`` of
    :data:`attn_rtl.sim.memory_image.LAYOUTS`, ``gap``, ``base``, ``operands``; ``override``: registers
    written instead of the layout's, to show the checks catch it) through an AXI4 memory with random
    ``pause`` on its channels; O, the rest of memory, every burst and the byte counters checked.
    ``reset_mid`` cuts the first run with ``aresetn`` once reads are in flight.  ``fuzz`` random
    AXI4-Lite transactions first (the register map, the DMA's registers included, and off it), and
    STARTs while busy (tb/test_engine_mm.py)."""
    from attn_rtl.sim.memory_image import LAYOUTS, MSB_PLANE_BITS, bytes_moved
    from attn_rtl.sim.runner import run_cocotb

    path, component = cached_verilog("engine_mm", params)
    full = component.params
    checked = []
    for r in runs:
        r = dict(r)
        r.setdefault("heads", 1)
        r.setdefault("kv_heads", r["heads"])
        r.setdefault("query_len", r["seq_len"])
        r.setdefault("layout", "heads")
        r.setdefault("gap", 0)
        r.setdefault("base", 0x100)
        if r["layout"] not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {r['layout']!r}")
        lists = _mm_lists(full, r)
        shape = {k: r[k] for k in ("heads", "kv_heads", "seq_len", "query_len", "head_dim")}
        if lists:   # the run computes the listed rows and heads
            shape.update(lists["computed"])
        side = {k: r[k] for k in ("importance", "threshold") if k in r}
        if full["row_flags"]:
            side.setdefault("threshold", _default_threshold(Numerics(**full["numerics"])))
        checked_run = _engine_runs(full, [dict(shape, pattern=r.get("pattern", {"pattern": "dense"}), **side)])[0]
        r.update({k: checked_run[k] for k in ("importance", "threshold") if k in checked_run})
        r["pattern_registers"], gathered = _mm_pattern(component, r)
        if not full["sparse"]:
            r.pop("pattern", None)
        msb_bits = r.setdefault("k_msb_bits", 8)
        if msb_bits != 8 and not full["row_flags"]:
            raise ValueError("K's MSB plane (k_msb_bits) needs the memory-mapped top built with row_flags = true")
        if msb_bits not in MSB_PLANE_BITS:
            raise ValueError(f"k_msb_bits must be one of {', '.join(map(str, MSB_PLANE_BITS))}, not {msb_bits!r}")
        if r.get("recompute") and (msb_bits == 8 or lists or r["importance"]):
            raise ValueError("recompute follows a run of K's MSB plane (k_msb_bits 1, 2 or 4) without lists "
                             "or importance")
        r["bytes_read"], r["bytes_written"] = bytes_moved(
            heads=shape["heads"], kv_heads=shape["kv_heads"], q_len=shape["query_len"], kv_len=shape["seq_len"],
            head_dim=r["head_dim"], rows=full["rows"], cols=full["cols"], kv_slots=component.dma.slots,
            gathered_keys=gathered, importance_bytes=component.dma.importance_bytes if r["importance"] else None,
            row_flags=full["row_flags"], k_msb_bits=msb_bits, list_entries=lists.get("entries", 0))
        checked.append(r)
    mult, shift = _default_scale(component, checked[0]["head_dim"])
    longest = max(r["heads"] * r["seq_len"] * r["head_dim"] * -(-r["query_len"] // full["rows"]) for r in checked)
    cfg = dict(full, seed=check_seed(seed), runs=checked, scale_mult=int(mult), scale_shift=int(shift),
               importance_bytes=component.dma.importance_bytes, kv_slots=component.dma.slots,
               pause=check_probability("pause", pause), reset_mid=bool(reset_mid), memory_bytes=int(memory_bytes),
               registers={r.name: r.offset for r in component.registers},
               register_map=[(r.name, r.offset, r.access, r.bits) for r in component.registers],
               register_addr_width=component.addr_width, fuzz=int_in_range("fuzz", fuzz, 0, 1 << 20),
               timeout_cycles=int(50 * longest + 20_000))
    u = unit("engine_mm")
    report = run_cocotb(sources=[path, *u.simulation_models(full)], toplevel=u.top, test_module=u.testbench,
                        sim=sim, config=cfg)
    report.update(sim=sim)
    return report


def _default_threshold(nm: Numerics) -> int:
    """A row-flag build's threshold when a run names none: a largest probability of 1/4."""
    return 1 << (nm.prob_width - 2)


def _mm_lists(params: dict, run: dict) -> dict:
    """A run's lists (pruned layers, a progressive recomputation): ``tokens`` (Q, K, V and O rows),
    ``queries`` (Q and O rows only), ``head_list``; sets ``run["lists"]`` (the LISTS bits) and
    ``run["token_list"]``, and returns the sizes the run computes and the entries read ({} without lists)."""
    from attn_rtl.sim.pruning import check_index_list

    given = [k for k in ("tokens", "queries", "head_list") if k in run]
    if not given:
        return {}
    if not (params["importance"] or params["row_flags"]):
        raise ValueError("token and head lists need the memory-mapped top built with importance or row_flags")
    if "tokens" in run and "queries" in run:
        raise ValueError("a run takes tokens (Q, K and V rows) or queries (Q rows only), not both")
    if run["kv_heads"] != run["heads"]:
        raise ValueError(f"lists take kv_heads = heads, not {run['kv_heads']} of {run['heads']}")
    bits, computed = 0, {}
    if "tokens" in run:
        if run["query_len"] != run["seq_len"]:
            raise ValueError("a token list takes query_len = seq_len (every token a query and a key)")
        run["token_list"] = check_index_list("tokens", run.pop("tokens"), run["seq_len"], "token").tolist()
        bits |= 3
        computed.update(seq_len=len(run["token_list"]), query_len=len(run["token_list"]))
    elif "queries" in run:
        run["token_list"] = check_index_list("queries", run.pop("queries"), run["query_len"], "query").tolist()
        bits |= 1
        computed["query_len"] = len(run["token_list"])
    if "head_list" in run:
        run["head_list"] = check_index_list("head_list", run["head_list"], run["heads"], "head").tolist()
        bits |= 4
        computed.update(heads=len(run["head_list"]), kv_heads=len(run["head_list"]))
    entries = len(run.get("token_list", [])) + len(run.get("head_list", []))
    run["lists"] = bits
    return {"computed": computed, "entries": entries}


def _mm_pattern(component, run: dict) -> tuple[dict, int | None]:
    """A sparse memory-mapped build's pattern registers for ``run`` (name -> value, global tokens one per
    register) and the keys its tiles gather per K/V head; ``({}, None)`` for a dense build."""
    full = component.params
    if not full["sparse"]:
        if run.get("pattern", {"pattern": "dense"}) != {"pattern": "dense"}:
            raise ValueError("a sparse pattern needs the memory-mapped top built with sparse = true")
        return {}, None
    pattern = pattern_from_dict(run.setdefault("pattern", {"pattern": "dense"}))
    tiles = scheduled_tiles(pattern, run["seq_len"], full["rows"], full["cols"], query_len=run["query_len"],
                            group=run["heads"] // run["kv_heads"])
    token_bits = len(component.engine.global_tokens.as_value()) // full["max_globals"]
    fields = register_values(pattern, full["max_globals"], token_bits)
    registers = {name.upper(): int(fields[name]) for name in fields if name != "global_tokens"}
    for g in range(full["max_globals"]):
        registers[f"GLOBAL_TOKEN_{g}"] = (fields["global_tokens"] >> (g * token_bits)) & ((1 << token_bits) - 1)
    return registers, int(tiles.count.sum())


def measure_engine_mm(params: dict, runs, *, latency: int = 100, bytes_per_cycle: int | None = None,
                      sim: str = "verilator", seed: int = 1) -> dict:
    """Cycles of the memory-mapped top against ``tb/axi_memory.v`` (every read ``latency`` cycles late,
    ``bytes_per_cycle`` bytes a cycle, default the bus width), from the START write to ``irq``, each
    run's O and the rest of memory checked against the golden model and the placement.

    ``runs`` as :func:`simulate_engine_mm` (layout ``heads`` by default).  Returns per run ``cycles``,
    ``mac_utilization`` (useful MACs over ``rows·cols·cycles``), ``bytes_read``, ``bytes_written`` (the
    top's counters) and the host model's ``expected_bytes``.
    """
    import tempfile

    from attn_rtl.sim import memory_image as mem
    from attn_rtl.sim.engine_stream import useful_macs
    from attn_rtl.sim.runner import SimulationFailure, run_free
    from attn_rtl.tb.harness import operand_matrix

    path, component = cached_verilog("engine_mm", params)
    full = component.params
    nm = component.nm
    rows, cols = full["rows"], full["cols"]
    bus_bytes = full["bus_width"] // 8
    bytes_per_cycle = bus_bytes if bytes_per_cycle is None else positive_int("bytes_per_cycle", bytes_per_cycle)
    positive_int("latency", latency, at_most=1 << 20)
    rng = np.random.default_rng(check_seed(seed))
    regs = {r.name: r.offset for r in component.registers}
    results = []
    for index, run in enumerate(runs):
        run = dict(run)
        heads = run.setdefault("heads", 1)
        kv_heads = run.setdefault("kv_heads", heads)
        q_len = run.setdefault("query_len", run["seq_len"])
        seq_len, d = run["seq_len"], run["head_dim"]
        ranked, msb_bits = bool(run.get("importance")), run.get("k_msb_bits", 8)
        lists = _mm_lists(full, run)
        token_list, head_list = run.get("token_list"), run.get("head_list")
        bits = run.get("lists", 0)
        rows_of = mem.listed_rows(bits, token_list, head_list, heads=heads, q_len=q_len, kv_len=seq_len)
        shape = dict(heads=heads, kv_heads=kv_heads, seq_len=seq_len, query_len=q_len)
        shape.update(lists.get("computed", {}))
        side = {"importance": ranked} if full["importance"] else {}
        if full["row_flags"]:
            side["threshold"] = run.setdefault("threshold", _default_threshold(nm))
        _engine_runs(full, [dict(shape, head_dim=d, **side)])
        layout = mem.place(heads=heads, kv_heads=kv_heads, q_len=q_len, kv_len=seq_len, head_dim=d,
                       layout=run.get("layout", "heads"), base=0x1000, gap=run.get("gap", 0),
                       importance_bytes=component.dma.importance_bytes if ranked else None,
                       row_flags=full["row_flags"], k_msb_bits=msb_bits,
                       lists=(rows_of.token_entries, rows_of.head_entries),
                       computed=(shape["heads"], shape["query_len"], shape["seq_len"]))
        size = 1 << (layout.end + 4096).bit_length()
        image = rng.integers(0, 256, size, dtype=np.uint8)
        q = operand_matrix(rng, (heads, q_len, d), nm.data_width, True, "random")
        k, v = (operand_matrix(rng, (kv_heads, seq_len, d), nm.data_width, True, "random") for _ in range(2))
        mem.write_tensors(image, layout, q, k, v)
        mem.write_lists(image, layout, token_list, head_list)
        if bits:
            q, k, v = rows_of.gather(q, k, v)
        mult, shift = _default_scale(component, d)
        pattern_registers, gathered = _mm_pattern(component, run)
        writes = dict(SEQ_LEN=shape["seq_len"], HEADS=shape["heads"], KV_HEADS=shape["kv_heads"],
                      QUERY_LEN=shape["query_len"], HEAD_DIM=d, SCALE_MULT=int(mult), SCALE_SHIFT=int(shift),
                      **layout.registers(), **pattern_registers)
        if full["importance"] or full["row_flags"]:
            writes.update(LISTS=bits, **({"IMPORTANCE": int(ranked)} if full["importance"] else {}),
                          **({"THRESHOLD": run["threshold"]} if full["row_flags"] else {}))
        pattern = pattern_from_dict(run.get("pattern", {"pattern": "dense"}))
        group = shape["heads"] // shape["kv_heads"]
        mask = None if pattern.is_dense else allowed_mask(pattern, shape["seq_len"], query_len=shape["query_len"],
                                                          group=group)
        pairs = shape["query_len"] * shape["seq_len"] if mask is None else int(mask.sum()) // group
        macs = useful_macs(shape["heads"], shape["seq_len"], d, pairs)
        budget = 50 * -(-macs // (rows * cols)) * (2 if ranked else 1) + 50 * latency + 100_000
        with tempfile.TemporaryDirectory(prefix="mm-bench-") as run_dir:
            Path(run_dir, "mem.hex").write_text("\n".join(f"{b:02x}" for b in image.tolist()) + "\n")
            Path(run_dir, "regs.hex").write_text("".join(f"{regs[n]:08x}{v & 0xFFFFFFFF:08x}\n"
                                                         for n, v in writes.items()))
            parameters = dict(ADDR_WIDTH=full["addr_width"], DATA_WIDTH=full["bus_width"], ID_WIDTH=full["id_width"],
                              AXIL_WIDTH=component.addr_width, MEM_BYTES=size, LATENCY=latency,
                              BYTES_PER_CYCLE=bytes_per_cycle)
            out = run_free(sources=[path, *unit("engine_mm").simulation_models(full), MM_BENCH_MEMORY, MM_BENCH_MAIN],
                           toplevel="mm_bench_main", sim=sim, parameters=parameters, run_dir=Path(run_dir),
                           plusargs=dict(regs=len(writes), ctrl=regs["CTRL"], bytes_read=regs["BYTES_READ"],
                                         bytes_written=regs["BYTES_WRITTEN"], budget=budget))
            found = _result_line(out, f"mm_bench_main on {sim}")
            # $writememh may add "// 0x…" address comments.
            memory = np.array([int(t, 16) for line in Path(run_dir, "out.hex").read_text().splitlines()
                               if not line.startswith("//") for t in line.split("//")[0].split()], np.uint8)
        expected_o, expected_side = mem.run_expected(
            q, k, v, mult=mult, shift=shift, nm=nm, rows=rows, cols=cols, kv_heads=shape["kv_heads"],
            msb_bits=msb_bits, ranked=ranked, threshold=run.get("threshold") if full["row_flags"] else None,
            pattern=pattern if full["sparse"] else None)
        if memory.size != size:
            raise SimulationFailure(f"mm_bench_main on {sim} dumped {memory.size} bytes of memory, not {size}")
        problems = []
        if found["done"] != 1:
            problems.append(f"no irq after {found['cycles']} cycles")
        computed_rows = np.ix_(rows_of.heads, rows_of.queries)
        got = mem.read_output(memory, layout)[computed_rows]
        if not np.array_equal(got, expected_o):
            problems.append(f"{int((got != expected_o).sum())} elements of O differ from the golden model")
        image[layout.o.byte_addresses()[computed_rows]] = (expected_o & 0xFF).astype(np.uint8)
        for name, values in expected_side.items():
            placement = getattr(layout, name)
            if not np.array_equal(mem.read_side(memory, placement), np.reshape(values, (placement.heads, placement.rows))):
                problems.append(f"{name} differs from the golden model")
            image[placement.byte_addresses()] = mem.side_bytes(values, placement)
        if not np.array_equal(memory, image):
            problems.append(f"{int((memory != image).sum())} bytes of memory outside O changed")
        if problems:
            raise SimulationFailure(f"memory-mapped run {index} {run} (seed {seed}) on {sim}: " + "; ".join(problems))
        expected_bytes = mem.bytes_moved(
            heads=shape["heads"], kv_heads=shape["kv_heads"], q_len=shape["query_len"], kv_len=shape["seq_len"],
            head_dim=d, rows=rows, cols=cols, kv_slots=component.dma.slots, gathered_keys=gathered,
            importance_bytes=component.dma.importance_bytes if ranked else None, row_flags=full["row_flags"],
            k_msb_bits=msb_bits, list_entries=lists.get("entries", 0))
        cycles = found["cycles"]
        results.append(dict(run, cycles=cycles, useful_macs=macs, mac_utilization=macs / (rows * cols * cycles),
                            bytes_read=found["bytes_read"], bytes_written=found["bytes_written"],
                            expected_bytes=list(expected_bytes), kv_fits=component.dma.fits(shape["seq_len"])))
    return dict(passed=True, seed=seed, sim=sim, latency=latency, bytes_per_cycle=bytes_per_cycle,
                bus_width=full["bus_width"], runs=results)
