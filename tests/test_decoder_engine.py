"""Decoder attention on the engine (cocotb, Icarus and Verilator): causal and causal-window masks at
the cache's positions, grouped-query and multi-query heads, KV-cache decode (docs/numerics.md,
section 10), bit-exact against the golden model with stalls and a reset in the middle."""

import numpy as np
import pytest

from attn_rtl.gen.simulate import simulate_engine
from attn_rtl.sim.decoder import decoder_attention, stack_queries, unstack_queries
from attn_rtl.sim.engine_stream import engine_output
from attn_rtl.sim.golden import Numerics
from attn_rtl.sim.sparse import allowed_mask, parse_pattern, pattern_from_dict, scheduled_tiles

P = lambda *a, **k: parse_pattern(*a, **k).to_dict()  # noqa: E731

#: Every decoder mode: prefill, grouped decode, speculative decoding (q_len > 1) in a window, multi-query
#: attention with one cached key, a full cache (kv_len = max_seq_len), and a dense grouped decode step.
DECODER_RUNS = [
    dict(pattern=P("causal"), seq_len=23, head_dim=5, heads=2),
    dict(pattern=P("causal"), seq_len=37, query_len=1, head_dim=6, heads=6, kv_heads=2),
    dict(pattern=P("causal-window", window=7), seq_len=30, query_len=3, head_dim=4, heads=4, kv_heads=2),
    dict(pattern=P("causal"), seq_len=1, query_len=1, head_dim=3, heads=2, kv_heads=1),
    dict(pattern=P("causal-window", window=9), seq_len=64, query_len=5, head_dim=7, heads=3, kv_heads=1,
         operands="mixed"),
    dict(pattern=P("dense"), seq_len=17, query_len=2, head_dim=5, heads=4, kv_heads=1),
]


def _params(rows, cols):
    return dict(rows=rows, cols=cols, max_seq_len=64, max_heads=6, max_head_dim=8, sparse=True)


@pytest.mark.parametrize("sim, rows, cols", [
    ("icarus", 4, 3), ("icarus", 3, 5),
    pytest.param("icarus", 1, 1, marks=pytest.mark.slow), pytest.param("verilator", 8, 8, marks=pytest.mark.slow)])
def test_decoder_modes_bit_exact_with_stalls_and_reset(sim, rows, cols):
    report = simulate_engine(_params(rows, cols), DECODER_RUNS, sim=sim, seed=rows * 10 + cols, idle=0.2,
                             stall=0.2, reset_mid=True)
    assert report["passed"]
    for run in report["runs"]:
        kv_heads = run.get("kv_heads", run["heads"])
        mask = allowed_mask(pattern_from_dict(run["pattern"]), run["seq_len"], query_len=run.get("query_len"),
                            group=run["heads"] // kv_heads)
        # Utilization counts allowed pairs of every query head: the grouped heads' stacked rows.
        assert run["useful_macs"] == 2 * kv_heads * int(mask.sum()) * run["head_dim"]


@pytest.mark.parametrize("rows, cols", [(4, 3), (8, 8), (3, 5)])
def test_causal_runs_are_the_contract_with_key_tiles_of_cols(rows, cols):
    """With the causal pattern every block's tiles start at key 0: the engine's stacked, tile-skipping
    computation is the per-head contract (keys in tiles of cols, K/V repeated per group) exactly."""
    rng = np.random.default_rng(rows * cols)
    nm = Numerics()
    for heads, kv_heads, q_len, kv_len in ((6, 2, 1, 37), (4, 4, 19, 19), (3, 1, 5, 22)):
        q = rng.integers(-128, 128, size=(heads, q_len, 6))
        k, v = (rng.integers(-128, 128, size=(kv_heads, kv_len, 6)) for _ in range(2))
        pattern, group = parse_pattern("causal"), heads // kv_heads
        shape = dict(query_len=q_len, group=group)
        stacked = engine_output(stack_queries(q, kv_heads), k, v, 30000, 20, nm, cols,
                                allowed_mask(pattern, kv_len, **shape),
                                schedule=scheduled_tiles(pattern, kv_len, rows, cols, **shape), rows=rows)
        per_head = engine_output(q, k[np.arange(heads) // group], v[np.arange(heads) // group], 30000, 20, nm, cols,
                                 allowed_mask(pattern, kv_len, query_len=q_len))
        np.testing.assert_array_equal(unstack_queries(stacked, heads), per_head)


def test_grouped_operands_come_back_per_query_head():
    """simulate_engine takes q (heads, q_len, d) and k, v (kv_heads, kv_len, d) and returns O per query
    head: here against the float contract of the decoder golden model."""
    rng = np.random.default_rng(7)
    heads, kv_heads, q_len, kv_len, d = 4, 2, 2, 13, 5
    q = rng.normal(size=(heads, q_len, d))
    k, v = (rng.normal(size=(kv_heads, kv_len, d)) for _ in range(2))
    golden = decoder_attention(q, k, v, window=6, key_tile=3)
    run = dict(pattern=P("causal-window", window=6), seq_len=kv_len, query_len=q_len, head_dim=d, heads=heads,
               kv_heads=kv_heads)
    group = heads // kv_heads   # the golden model repeats K and V per group: take each K/V head once
    operands = (golden.q_int, golden.k_int[::group], golden.v_int[::group])
    report = simulate_engine(_params(4, 3), [run], operands=[operands], scale_mult=golden.multiplier,
                             scale_shift=golden.shift, sim="icarus")
    assert report["outputs"][0].shape == (heads, q_len, d)
    # Tiles of 3 from each block's lowest key are those of the contract here: the window starts at
    # kv_len - q_len - 5 = 6, a multiple of 3, and both queries of a group share a block.
    np.testing.assert_array_equal(report["outputs"][0], golden.o_int)


@pytest.mark.slow
def test_causal_prefill_skips_the_tiles_above_the_diagonal():
    params = dict(rows=4, cols=4, max_seq_len=64, max_head_dim=16, sparse=True)
    dense, causal = (simulate_engine(params, [dict(seq_len=64, head_dim=16, pattern=P(p))], sim="icarus")["runs"][0]
                     for p in ("dense", "causal"))
    assert len(scheduled_tiles(parse_pattern("causal"), 64, 4, 4)) == 16 * 17 // 2   # 136 of 256 tiles
    assert causal["cycles"] < 0.6 * dense["cycles"]


@pytest.mark.parametrize("params, run, message", [
    (dict(), dict(pattern=P("causal")), "causal pattern needs an engine built with sparse = true"),
    (dict(row_flags=True), dict(heads=2, kv_heads=1), "row_flags = true takes kv_heads = heads only"),
    (dict(importance=True), dict(heads=2, kv_heads=1, importance=True), "importance run takes kv_heads = heads"),
    (dict(sparse=True), dict(heads=3, kv_heads=2), r"heads \(3\) must be a multiple of kv_heads, not 2"),
    (dict(sparse=True), dict(query_len=9), "query_len must be at most seq_len"),
    (dict(sparse=True), dict(pattern=P("window", window=3), query_len=2), "takes one query per key"),
])
def test_decoder_shapes_a_build_cannot_run_are_refused(params, run, message):
    with pytest.raises(ValueError, match=message):
        simulate_engine(dict(rows=2, cols=2, max_heads=4, **params), [dict(dict(seq_len=8, head_dim=4), **run)])


@pytest.mark.parametrize("sparse", [True, False])
def test_full_rate_harness_runs_grouped_decoder_shapes(sparse):
    """The DMA model behind `attn-rtl bench engine` (tb/engine_bench.v) streams a K/V head per group of
    stacked queries: every output beat checked against the golden model, utilization counted over the
    allowed pairs of every query head."""
    from attn_rtl.gen.simulate import measure_engine

    pattern = P("causal") if sparse else P("dense")
    runs = [dict(pattern=pattern, seq_len=29, query_len=1, head_dim=6, heads=6, kv_heads=2),
            dict(pattern=pattern, seq_len=17, query_len=3, head_dim=5, heads=2, kv_heads=1)]
    if sparse:
        runs.append(dict(pattern=P("causal-window", window=5), seq_len=32, head_dim=4, heads=3, kv_heads=3))
    report = measure_engine(dict(rows=4, cols=3, max_seq_len=32, max_heads=6, max_head_dim=8, sparse=sparse), runs,
                            sim="icarus")
    for run in report["runs"]:
        kv_heads = run["kv_heads"]
        mask = allowed_mask(pattern_from_dict(run["pattern"]), run["seq_len"], query_len=run.get("query_len"),
                            group=run["heads"] // kv_heads)
        assert run["mismatched_beats"] == 0
        assert run["useful_macs"] == 2 * kv_heads * int(mask.sum()) * run["head_dim"]
