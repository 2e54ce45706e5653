"""Importance runs (SpAtten): token and head importance from the engine, bit-exact on both simulators."""

import numpy as np
import pytest

from attn_rtl.gen.simulate import measure_engine, simulate_engine
from attn_rtl.hdl.engine import engine_params
from attn_rtl.sim.engine_stream import engine_output, importance_beats, ranked_output
from attn_rtl.sim.golden import Numerics, logits, ranked_attention, score_multiplier, scores

NM = Numerics()

# Importance runs between plain runs (the engine must return to online rescaling), odd shapes,
# one token, several heads, extreme operands.
RANKED_RUNS = [dict(seq_len=17, head_dim=11, heads=3, importance=True, operands="max"),
               dict(seq_len=13, head_dim=7, heads=2),
               dict(seq_len=29, head_dim=2, heads=1, importance=True, operands="min"),
               dict(seq_len=1, head_dim=1, heads=1, importance=True),
               dict(seq_len=12, head_dim=5, heads=2, importance=True, operands="mixed")]
# The build of tests/test_pruning.py too (one Verilator model for both files).
ODD = dict(rows=3, cols=5, max_seq_len=40, max_head_dim=12, max_heads=3, importance=True, row_flags=True)


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_importance_runs_bit_exact_with_stalls_and_reset(sim):
    report = simulate_engine(ODD, RANKED_RUNS, sim=sim, seed=21, idle=0.3, stall=0.3, reset_mid=True)
    token_values = sum(-(-r["seq_len"] // ODD["cols"]) * ODD["cols"] for r in RANKED_RUNS if r.get("importance"))
    assert report["passed"] and report["elements"] >= token_values


def test_single_lane_array_back_to_back_tiles():
    # rows = cols = 1: every probability beat ends a tile, tile sums hit the memory every cycle.
    report = simulate_engine(dict(rows=1, cols=1, max_seq_len=16, max_head_dim=8, max_heads=2, importance=True),
                             [dict(seq_len=5, head_dim=3, heads=2, importance=True),
                              dict(seq_len=1, head_dim=1, heads=1, importance=True)],
                             sim="icarus", seed=22, idle=0.2, stall=0.2)
    assert report["passed"]


def test_importance_outputs_are_returned_for_given_operands():
    rng = np.random.default_rng(23)
    q, k, v = (rng.integers(-128, 128, (2, 9, 4)) for _ in range(3))
    mult, shift = score_multiplier(0.5, NM)
    report = simulate_engine(dict(ODD, cols=4), [dict(seq_len=9, head_dim=4, heads=2, importance=True)],
                             operands=[(q, k, v)], scale_mult=mult, scale_shift=shift, seed=23)
    golden = ranked_output(q, k, v, mult, shift, NM, 4)
    np.testing.assert_array_equal(report["outputs"][0], golden.o)
    np.testing.assert_array_equal(report["importance"][0]["tokens"], golden.tokens)
    np.testing.assert_array_equal(report["importance"][0]["heads"], golden.heads)


def _float_probabilities(t):
    x = t.astype(np.float64) / (1 << NM.logit_frac_bits)
    p = np.exp2(x - x.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_importance_is_the_column_sum_of_the_probabilities(seed):
    rng = np.random.default_rng(seed)
    print("seed", seed)
    q, k, v = (rng.integers(-128, 128, (3, 50, 16)) for _ in range(3))
    mult, shift = score_multiplier(1 / 16, NM)
    t = logits(scores(q, k), mult, shift, NM)
    o_int, per_head = ranked_attention(t, v, NM, key_tile=8)
    expected = _float_probabilities(t).sum(axis=-2) * (1 << NM.prob_frac_bits)
    # Summed over 50 rows, a key's importance stays within 4 LSB of the real column sum
    # (measured: below 1), and all of them add up to H·L within one LSB per row.
    assert np.abs(per_head - expected).max() <= 4
    assert abs(int(per_head.sum()) - 3 * 50 * (1 << NM.prob_frac_bits)) <= 3 * 50
    # O of an importance run is the plain run's within one LSB (no rescale rounding, same sum).
    assert np.abs(o_int - engine_output(q, k, v, mult, shift, NM, 8)).max() <= 1


def test_importance_beats_pad_the_last_word():
    words = importance_beats(np.arange(1, 8), 3)
    assert words.tolist() == [[1, 2, 3], [4, 5, 6], [7, 0, 0]]


def test_importance_needs_a_dense_engine_and_an_importance_build():
    with pytest.raises(ValueError, match="importance needs a dense engine"):
        engine_params(importance=True, sparse=True)
    with pytest.raises(ValueError, match="importance must be"):
        engine_params(importance=2)
    with pytest.raises(ValueError, match="needs an engine built with importance = true"):
        simulate_engine(dict(rows=2, cols=2, max_seq_len=8, max_head_dim=4), [dict(seq_len=3, head_dim=2,
                                                                                      importance=True)])


def test_full_rate_harness_names_what_it_does_not_drive():
    with pytest.raises(ValueError, match="not importance = true"):
        measure_engine(dict(rows=2, cols=2, max_seq_len=8, max_head_dim=4, importance=True),
                       [dict(seq_len=3, head_dim=2)])
