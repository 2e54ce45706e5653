"""The fused attention engine in RTL simulation (cocotb, Icarus and Verilator) against the golden model."""

import numpy as np
import pytest

from attn_rtl.gen.simulate import simulate_engine
from attn_rtl.hdl.engine import AttentionEngine, engine_params
from attn_rtl.sim.engine_stream import engine_beats, engine_output, output_beats, useful_macs
from attn_rtl.sim.golden import Numerics, attention, logits, scores
from attn_rtl.sim.sparse import allowed_mask, parse_pattern, pattern_from_dict, scheduled_tiles

# Odd shapes everywhere: L not a multiple of the tile, d below and not a multiple of the array
# width, several heads back to back, a single token.
RUNS = [dict(heads=2, seq_len=11, head_dim=5), dict(heads=1, seq_len=1, head_dim=1),
        dict(heads=1, seq_len=9, head_dim=9, operands="mixed")]


@pytest.mark.parametrize("rows, cols", [(1, 1), (2, 3), (3, 2), (4, 4)])
def test_bit_exact_with_idle_and_backpressure_icarus(rows, cols):
    report = simulate_engine(dict(rows=rows, cols=cols, max_seq_len=64, max_head_dim=16, max_heads=2), RUNS,
                             sim="icarus", seed=rows * 10 + cols, idle=0.3, stall=0.3)
    assert report["passed"] and report["elements"] >= sum(r["heads"] * r["seq_len"] * r["head_dim"] for r in RUNS)


# One Verilator build per shape (a minute each), shared by the tests below.
VERILATOR_PARAMS = {(3, 2): dict(rows=3, cols=2, max_seq_len=64, max_head_dim=32, max_heads=2),
                    (8, 8): dict(rows=8, cols=8, max_seq_len=64, max_head_dim=64, max_heads=2)}


# The 8x8 build takes most of a minute: behind -m slow (the soak and the benchmarks run it too).
@pytest.mark.parametrize("rows, cols", [(3, 2), pytest.param(8, 8, marks=pytest.mark.slow)])
def test_bit_exact_with_idle_and_backpressure_verilator(rows, cols):
    runs = RUNS + [dict(heads=2, seq_len=37, head_dim=19)]
    report = simulate_engine(VERILATOR_PARAMS[rows, cols], runs, sim="verilator", seed=rows * 10 + cols, idle=0.2, stall=0.2)
    assert report["passed"]


@pytest.mark.parametrize("rows, cols", [(1, 1), (2, 3)])
def test_one_beat_queries_back_to_back_at_full_rate(rows, cols):
    """head_dim 1 and 2 at full rate: one- and two-step score tiles back to back across Q bank
    switches, Q read a cycle ahead of its step (a bank counts as full a cycle after its last beat
    is written, so such a read never meets the write of the beat it needs)."""
    report = simulate_engine(dict(rows=rows, cols=cols, max_seq_len=64, max_head_dim=16, max_heads=2),
                             [dict(heads=2, seq_len=13, head_dim=1), dict(heads=2, seq_len=6, head_dim=2)],
                             sim="icarus", seed=3 + rows)
    assert report["passed"]


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_reset_in_the_middle_then_clean_runs(sim):
    params = VERILATOR_PARAMS[3, 2] if sim == "verilator" else dict(rows=3, cols=2, max_seq_len=64, max_head_dim=16,
                                                                     max_heads=2)
    report = simulate_engine(params,
                             [dict(heads=2, seq_len=13, head_dim=6), dict(heads=1, seq_len=5, head_dim=3)],
                             sim=sim, seed=5, idle=0.2, stall=0.2, reset_mid=True)
    assert report["passed"]


@pytest.mark.parametrize("max_seq_len, reset_mid", [(256, False), (256, True), (4096, False)],
                         ids=["two_pieces", "two_pieces_reset_mid", "three_pieces"])
def test_ecp5_primitives_bit_exact(max_seq_len, reset_mid):
    """The Fmax build: MULT18X18D multipliers (the accumulator's 32- and 36-bit operands split over two
    and three) and DP16KD FIFOs, with the longer pipelines they bring, against the same golden model."""
    report = simulate_engine(dict(rows=3, cols=2, max_seq_len=max_seq_len, max_head_dim=16, max_heads=2,
                                  multiplier="ecp5", fifo_memory="ecp5"),
                             RUNS + [dict(heads=2, seq_len=13, head_dim=6)], sim="icarus", seed=23, idle=0.2,
                             stall=0.2, reset_mid=reset_mid)
    assert report["passed"]


@pytest.mark.parametrize("operands", ["min", "max", "mixed"])
def test_extreme_operands(operands):
    # All -128 (or all 127): every score equals, every row the same; mixed: scores at both ends.
    report = simulate_engine(dict(rows=2, cols=3, max_seq_len=64, max_head_dim=16, max_heads=1),
                             [dict(seq_len=10, head_dim=16, operands=operands)], sim="icarus", seed=7,
                             scale_mult=(1 << 16) - 1, scale_shift=8)
    assert report["passed"]


@pytest.mark.slow   # the 8x8 Verilator build (most of a minute); ./dev.sh bench engine measures the same
def test_mac_utilization_without_stalls():
    """8x8, L = 64, d = 64, streams never stall: the array is busy nearly every cycle."""
    report = simulate_engine(VERILATOR_PARAMS[8, 8], [dict(seq_len=64, head_dim=64)], sim="verilator", seed=11)
    run = report["runs"][0]
    assert report["passed"]
    assert run["useful_macs"] == 2 * 64 * 64 * 64
    assert run["mac_utilization"] >= 0.95, run
    assert run["counter"] >= run["cycles"] - 2   # the core's own cycle counter agrees


# --- the stream order and the model, without a simulator ------------------------------------

def test_beats_follow_the_documented_order():
    rng = np.random.default_rng(1)
    rows, cols, heads, L, d = 3, 2, 2, 7, 5
    q, k, v = (rng.integers(-128, 128, size=(heads, L, d)) for _ in range(3))
    beats = engine_beats(q, k, v, rows, cols)
    blocks, tiles, chunks = -(-L // rows), -(-L // cols), -(-d // cols)
    qi = ki = vi = 0
    for h in range(heads):
        for qb in range(0, L, rows):
            for kk in range(d):
                want = [q[h, qb + r, kk] if qb + r < L else 0 for r in range(rows)]
                assert list(beats.q[qi]) == want
                qi += 1
            for kt in range(0, L, cols):
                for kk in range(d):
                    assert list(beats.k[ki]) == [k[h, kt + c, kk] if kt + c < L else 0 for c in range(cols)]
                    ki += 1
                for cc in range(0, d, cols):
                    for j in range(kt, min(kt + cols, L)):
                        assert list(beats.v[vi]) == [v[h, j, cc + c] if cc + c < d else 0 for c in range(cols)]
                        vi += 1
    assert (qi, ki, vi) == (len(beats.q), len(beats.k), len(beats.v))
    assert len(beats.k) == heads * blocks * tiles * d and blocks * tiles * chunks > 0

    o = rng.integers(-128, 128, size=(heads, L, d))
    data, last = output_beats(o, rows, cols)
    oi = 0
    for h in range(heads):
        for qb in range(0, L, rows):
            for cc in range(0, d, cols):
                for r in range(qb, min(qb + rows, L)):
                    assert list(data[oi]) == [o[h, r, cc + c] if cc + c < d else 0 for c in range(cols)]
                    assert last[oi] == (cc + cols >= d and r == min(qb + rows, L) - 1)
                    oi += 1
    assert oi == len(data)


def test_engine_output_is_the_contract_with_key_tiles_of_cols():
    rng = np.random.default_rng(2)
    nm = Numerics()
    q, k, v = (rng.normal(size=(2, 19, 8)) for _ in range(3))
    res = attention(q, k, v, nm=nm, key_tile=4)
    got = engine_output(res.q_int, res.k_int, res.v_int, res.multiplier, res.shift, nm, cols=4)
    assert np.array_equal(got, res.o_int)
    t = logits(scores(res.q_int, res.k_int), res.multiplier, res.shift, nm)
    assert t.shape == (2, 19, 19) and useful_macs(2, 19, 8) == 2 * 2 * 19 * 19 * 8


# --- parameters and memory -------------------------------------------------------------------

def test_on_chip_memory_does_not_grow_with_the_sequence():
    """max_seq_len 1024 -> 65536: every buffer keeps its depth; only counters, indices and the
    accumulators' log2(L) headroom bits widen (docs/numerics.md, section 7)."""
    short, long = (AttentionEngine(max_seq_len=n) for n in (1024, 1 << 16))
    for e in (short, long):
        e._MustUse__silence = True
    assert short.max_chunks == long.max_chunks and short.params["prob_tiles"] == long.params["prob_tiles"]
    extra_bits = long.output_acc_width - short.output_acc_width
    assert extra_bits == 6
    words = short.rows * short.max_chunks * short.cols
    assert long.memory_bits - short.memory_bits == words * extra_bits
    assert len(long.seq_len) > len(short.seq_len)


@pytest.mark.parametrize("params, message", [
    (dict(rows=0), "rows must be a positive integer"),
    (dict(cols=65), "cols must be"),
    (dict(max_head_dim=0), "max_head_dim must be a positive integer"),
    (dict(prob_tiles=0), "prob_tiles must be a positive integer"),
    (dict(multiplier="dsp"), "multiplier must be one of"),
    (dict(fifo_memory="ecp5", max_head_dim=513), "with fifo_memory 'ecp5' max_head_dim must be at most 512, not 513"),
    (dict(bogus=1), "bogus"),
])
def test_bad_parameters_are_rejected(params, message):
    with pytest.raises(ValueError, match=message):
        engine_params(**params)


def test_bad_runs_are_rejected_before_simulation():
    with pytest.raises(ValueError, match="head_dim must be"):
        simulate_engine(dict(rows=2, cols=2, max_head_dim=4), [dict(seq_len=3, head_dim=5)])


def test_full_rate_harness_measures_and_checks():
    """The DMA-model harness (tb/engine_bench.v) behind `attn-rtl bench engine`: two runs back to back,
    every output beat checked in Verilog against the golden model."""
    from attn_rtl.gen.simulate import measure_engine

    report = measure_engine(dict(rows=3, cols=2, max_seq_len=16, max_head_dim=8, max_heads=2),
                            [dict(heads=2, seq_len=11, head_dim=5), dict(seq_len=16, head_dim=8)], sim="icarus")
    assert report["passed"]
    for run in report["runs"]:
        assert run["mismatched_beats"] == 0 and run["cycles"] >= run["ideal_cycles"]
        assert run["mac_utilization"] == pytest.approx(run["useful_macs"] / (6 * run["cycles"]))


def _sparse_runs():
    """Every pattern; windows wider than L; dilation with globals; globals at the start, middle and
    end; L and grids not multiples of the tile; several heads."""
    P = lambda *a, **k: parse_pattern(*a, **k).to_dict()  # noqa: E731
    return [
        dict(pattern=P("window", window=5), seq_len=23, head_dim=5),
        dict(pattern=P("window", window=64), seq_len=13, head_dim=3, heads=2),
        dict(pattern=P("dilated", window=4, dilation=3, global_tokens="0,11,22"), seq_len=23, head_dim=4),
        dict(pattern=P("grid", grid="5x7", window2d="3x3", global_tokens="17"), seq_len=35, head_dim=6),
        dict(pattern=P("dense"), seq_len=7, head_dim=3),
    ]


@pytest.mark.parametrize("sim, rows, cols", [("icarus", 4, 3), ("icarus", 2, 5),
                                             pytest.param("verilator", 3, 4, marks=pytest.mark.slow)])
def test_sparse_patterns_bit_exact_with_stalls_and_reset(sim, rows, cols):
    _check_pattern_runs(dict(rows=rows, cols=cols, max_seq_len=64, max_heads=2, max_head_dim=8, sparse=True),
                        _sparse_runs(), sim, seed=rows * 10 + cols)


def _check_pattern_runs(params, runs, sim, seed):
    """``runs`` with idle cycles, backpressure and a reset cutting the first: bit-exact, and the useful MACs
    those of the allowed pairs only."""
    report = simulate_engine(params, runs, sim=sim, seed=seed, idle=0.2, stall=0.2, reset_mid=True)
    assert report["passed"]
    for run in report["runs"]:
        mask = allowed_mask(pattern_from_dict(run["pattern"]), run["seq_len"])
        assert run["useful_macs"] == 2 * run["heads"] * int(mask.sum()) * run["head_dim"]


def test_sparse_engine_skips_the_tiles_outside_the_window():
    """A narrow window computes a few tiles per block: the cycles shrink with the work (the full-rate
    harness, every output checked)."""
    from attn_rtl.gen.simulate import measure_engine

    params = dict(rows=4, cols=4, max_seq_len=64, max_head_dim=8, sparse=True)
    runs = [dict(seq_len=40, head_dim=8, pattern=p)
            for p in (parse_pattern("dense").to_dict(), parse_pattern("window", window=8).to_dict())]
    dense, window = measure_engine(params, runs, sim="icarus")["runs"]
    assert dense["mismatched_beats"] == window["mismatched_beats"] == 0
    schedule = scheduled_tiles(parse_pattern("window", window=8), 40, 4, 4)
    assert len(schedule) == 10 * 3 - 2   # 4 queries reach 12 keys: 3 tiles, 2 at both ends of the sequence
    print(f"dense {dense['cycles']} cycles, window {window['cycles']}")
    assert window["cycles"] * 3 < dense["cycles"]   # 28 tiles against 100


def test_patterns_need_a_sparse_engine():
    with pytest.raises(ValueError, match="window pattern needs an engine built with sparse = true"):
        simulate_engine(dict(rows=2, cols=2), [dict(seq_len=8, head_dim=4,
                                                     pattern=parse_pattern("window", window=3).to_dict())])
    with pytest.raises(ValueError, match="at most max_globals = 1 global tokens, not 2"):
        simulate_engine(dict(rows=2, cols=2, sparse=True, max_globals=1),
                        [dict(seq_len=8, head_dim=4, pattern=parse_pattern("window", window=3,
                                                                           global_tokens="1,2").to_dict())])


def test_full_rate_harness_follows_the_index_stream():
    """The sparse DMA model (tb/engine_bench.v with SPARSE) fetches the tiles m_axis_kv_index names."""
    from attn_rtl.gen.simulate import measure_engine

    P = lambda *a, **k: parse_pattern(*a, **k).to_dict()  # noqa: E731
    runs = [dict(pattern=P("window", window=5, global_tokens="3"), seq_len=23, head_dim=5, heads=2),
            dict(pattern=P("grid", grid="5x6", window2d="3x3", global_tokens="0,29"), seq_len=30, head_dim=6)]
    report = measure_engine(dict(rows=4, cols=3, max_seq_len=32, max_heads=2, max_head_dim=8, sparse=True), runs,
                            sim="icarus")
    for run in report["runs"]:
        mask = allowed_mask(pattern_from_dict(run["pattern"]), run["seq_len"])
        assert run["mismatched_beats"] == 0
        assert run["useful_macs"] == 2 * run["heads"] * int(mask.sum()) * run["head_dim"]


def _diagonal_runs():
    """Diagonal runs of every pattern the mode takes (odd sizes, global tokens, padded head-dimension
    chunks, several heads), with a gathered run and a dense one on the same build between them."""
    P = lambda *a, **k: parse_pattern(*a, **k).to_dict()  # noqa: E731
    return [
        dict(pattern=P("window", window=5, global_tokens="3"), seq_len=23, head_dim=7, heads=2, diagonal=True),
        dict(pattern=P("dilated", window=4, dilation=3, global_tokens="0,11,22"), seq_len=23, head_dim=4,
             diagonal=True),
        dict(pattern=P("grid", grid="5x7", window2d="3x3", global_tokens="17"), seq_len=35, head_dim=9, diagonal=True),
        dict(pattern=P("window", window=3), seq_len=13, head_dim=3, heads=2),
        dict(pattern=P("window", window=64), seq_len=13, head_dim=3, heads=2, diagonal=True),
        dict(pattern=P("dense"), seq_len=7, head_dim=3),
        dict(pattern=P("window", window=1), seq_len=1, head_dim=1, diagonal=True),
    ]


# One row, and Verilator, behind -m slow (the suite's time; 3x4 and 5x2 on Icarus stay).
@pytest.mark.parametrize("sim, rows, cols", [("icarus", 3, 4), ("icarus", 5, 2),
                                             pytest.param("icarus", 1, 3, marks=pytest.mark.slow),
                                             pytest.param("verilator", 3, 4, marks=pytest.mark.slow),
                                             pytest.param("verilator", 8, 8, marks=pytest.mark.slow)])
def test_diagonal_runs_bit_exact_with_stalls_and_reset(sim, rows, cols):
    """A sliding build's diagonal runs (SALO's dataflow, docs/sparse.md) against attn_rtl.sim.sliding,
    beat for beat: O, the K and V lanes' keys and keep bits and the blocks' queries on kv_index; a reset
    cuts the first run (a reset that also turns the array's sliding mode off: a stale drain load once
    sent a row then)."""
    params = dict(rows=rows, cols=cols, max_seq_len=64, max_heads=2, max_head_dim=16, sparse=True, sliding=True)
    _check_pattern_runs(params, _diagonal_runs(), sim, seed=rows * 10 + cols)


@pytest.mark.slow   # 30 s
@pytest.mark.parametrize("prob_tiles", [1, 2])
def test_diagonal_runs_with_few_probability_buffers(prob_tiles):
    """One buffer: a value tile frees it as the next tile's probabilities land, and must not take the old
    weights for the new ones; two: the loader one buffer ahead at most."""
    _check_pattern_runs(dict(rows=3, cols=4, max_seq_len=64, max_heads=2, max_head_dim=16, sparse=True, sliding=True,
                             prob_tiles=prob_tiles), _diagonal_runs(), "icarus", seed=prob_tiles)


@pytest.mark.slow   # 11 s; the plain engine's ECP5 test stays in the default suite
def test_diagonal_runs_on_ecp5_primitives():
    """The sliding build with ECP5 multipliers and block-RAM FIFOs (their simulation models)."""
    params = dict(rows=4, cols=3, max_seq_len=64, max_heads=2, max_head_dim=16, sparse=True, sliding=True,
                  multiplier="ecp5", fifo_memory="ecp5")
    report = simulate_engine(params, _diagonal_runs()[:3], sim="icarus", seed=43, idle=0.1, stall=0.1)
    assert report["passed"]


def test_diagonal_runs_need_a_sliding_build():
    window = parse_pattern("window", window=3).to_dict()
    with pytest.raises(ValueError, match="sliding needs a sparse engine"):
        AttentionEngine(rows=2, cols=2, sliding=True)
    with pytest.raises(ValueError, match="a diagonal run needs an engine built with sliding = true"):
        simulate_engine(dict(rows=2, cols=2, sparse=True), [dict(seq_len=8, head_dim=4, pattern=window,
                                                                  diagonal=True)])
    sliding = dict(rows=2, cols=2, sparse=True, sliding=True)
    with pytest.raises(ValueError, match="a diagonal run takes the window, dilated or grid pattern, not causal"):
        simulate_engine(sliding, [dict(seq_len=8, head_dim=4, pattern={"pattern": "causal"}, diagonal=True)])
    with pytest.raises(ValueError, match="the window pattern takes one query per key and no grouped heads"):
        simulate_engine(sliding, [dict(seq_len=8, head_dim=4, heads=2, kv_heads=1, pattern=window, diagonal=True)])


def test_full_rate_harness_runs_diagonal_tiles():
    """The sliding harness (tb/engine_bench.v with SLIDING) gathers K and V by the tiles' lanes, every
    output checked; at full rate the cycles are the cost model's (inside its domain) and the utilization
    stays under the tiling's bound."""
    from attn_rtl.gen.cost.model import predict_cycles
    from attn_rtl.gen.cost.workloads import Workload
    from attn_rtl.gen.simulate import measure_engine
    from attn_rtl.sim.sliding import sliding_bound

    pattern = parse_pattern("grid", grid="5x6", window2d="3x3", global_tokens="0,17")
    runs = [dict(pattern=pattern.to_dict(), seq_len=30, head_dim=32, diagonal=True),
            dict(pattern=parse_pattern("dilated", window=6, dilation=2).to_dict(), seq_len=40, head_dim=5,
                 diagonal=True)]
    report = measure_engine(dict(rows=2, cols=2, max_seq_len=64, max_heads=1, max_head_dim=32, sparse=True,
                                 sliding=True), runs, sim="icarus")
    grid = report["runs"][0]
    assert all(run["mismatched_beats"] == 0 for run in report["runs"])
    bound = sliding_bound(pattern, 30, 2, 2)["bound"]
    predicted = predict_cycles(Workload("grid", 30, 32, 1, pattern=pattern), 2, 2, 3, sliding=True).total[0]
    print(f"grid 5x6: {grid['cycles']} cycles (predicted {predicted:.0f}), {grid['mac_utilization']:.3f} of a "
          f"bound of {bound:.3f}")
    assert grid["cycles"] == pytest.approx(predicted, rel=0.03)
    assert grid["mac_utilization"] <= bound


def _global_row_runs():
    """Runs of a global-row build: one global token anywhere (the row's: at the start, in the middle, the
    last block's only query), runs that keep their global blocks (two globals; a sequence of globals only),
    one without globals, a gathered and a dense run between them."""
    P = lambda *a, **k: parse_pattern(*a, **k).to_dict()  # noqa: E731
    return [
        dict(pattern=P("window", window=5, global_tokens="3"), seq_len=23, head_dim=7, heads=2, diagonal=True),
        dict(pattern=P("dilated", window=4, dilation=3, global_tokens="22"), seq_len=23, head_dim=4, diagonal=True),
        dict(pattern=P("grid", grid="5x7", window2d="3x3", global_tokens="0"), seq_len=35, head_dim=9, heads=2,
             diagonal=True),
        dict(pattern=P("window", window=3, global_tokens="1,5"), seq_len=13, head_dim=3, diagonal=True),
        dict(pattern=P("window", window=3, global_tokens="2"), seq_len=13, head_dim=3, heads=2),
        dict(pattern=P("window", window=64, global_tokens="12"), seq_len=13, head_dim=1, heads=2, diagonal=True),
        dict(pattern=P("window", window=1, global_tokens="0"), seq_len=1, head_dim=2, diagonal=True),
        dict(pattern=P("dense"), seq_len=7, head_dim=3),
        dict(pattern=P("window", window=9), seq_len=20, head_dim=5, diagonal=True),
    ]


@pytest.mark.parametrize("sim, rows, cols", [("icarus", 3, 4),
                                             pytest.param("icarus", 1, 2, marks=pytest.mark.slow),
                                             pytest.param("verilator", 3, 4, marks=pytest.mark.slow),
                                             pytest.param("verilator", 8, 8, marks=pytest.mark.slow)])
def test_global_row_runs_bit_exact_with_stalls_and_reset(sim, rows, cols):
    """A global-row build (SALO's global PE row beside the array, docs/sparse.md): the global query's O from
    the row after each head's blocks, every other run as on a sliding build; idle cycles, backpressure and
    a reset cutting the first run."""
    params = dict(rows=rows, cols=cols, max_seq_len=64, max_heads=2, max_head_dim=16, sparse=True, sliding=True,
                  global_row=True)
    _check_pattern_runs(params, _global_row_runs(), sim, seed=rows * 10 + cols + 500)


@pytest.mark.slow   # 15 s
def test_global_row_runs_on_ecp5_primitives():
    params = dict(rows=4, cols=3, max_seq_len=64, max_heads=2, max_head_dim=16, sparse=True, sliding=True,
                  global_row=True, multiplier="ecp5", fifo_memory="ecp5", prob_tiles=2)
    report = simulate_engine(params, _global_row_runs()[:3], sim="icarus", seed=47, idle=0.1, stall=0.1)
    assert report["passed"]


def test_a_global_row_needs_a_sliding_build():
    with pytest.raises(ValueError, match="global_row needs a sliding engine"):
        AttentionEngine(rows=2, cols=2, sparse=True, global_row=True)
    with pytest.raises(ValueError, match="global_row must be"):
        AttentionEngine(rows=2, cols=2, sparse=True, sliding=True, global_row="yes")


def test_full_rate_harness_runs_a_global_row():
    """At full rate a global-row build spends the cycles of the tiles less the global query's blocks (the cost
    model's, ``global_row=True``), every output checked, under the tiling's bound with the row."""
    from attn_rtl.gen.cost.model import predict_cycles
    from attn_rtl.gen.cost.workloads import Workload
    from attn_rtl.gen.simulate import measure_engine
    from attn_rtl.sim.sliding import sliding_bound

    pattern = parse_pattern("grid", grid="5x6", window2d="3x3", global_tokens="17")
    runs = [dict(pattern=pattern.to_dict(), seq_len=30, head_dim=32, diagonal=True)]
    params = dict(rows=2, cols=2, max_seq_len=64, max_heads=1, max_head_dim=32, sparse=True, sliding=True)
    with_row, = measure_engine(dict(params, global_row=True), runs, sim="icarus")["runs"]
    without, = measure_engine(params, runs, sim="icarus")["runs"]
    assert with_row["mismatched_beats"] == without["mismatched_beats"] == 0
    predicted = predict_cycles(Workload("grid", 30, 32, 1, pattern=pattern), 2, 2, 3, sliding=True,
                               global_row=True).total[0]
    bound = sliding_bound(pattern, 30, 2, 2)
    print(f"grid 5x6 with the row: {with_row['cycles']} cycles (predicted {predicted:.0f}, without the row "
          f"{without['cycles']}), {with_row['mac_utilization']:.3f} of a bound of {bound['global_row_bound']:.3f}")
    assert with_row["cycles"] == pytest.approx(predicted, rel=0.03)
    assert with_row["mac_utilization"] <= bound["global_row_bound"] and with_row["cycles"] < without["cycles"]
