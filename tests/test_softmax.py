"""The streaming softmax unit in RTL simulation (cocotb, Icarus and Verilator) against its bit-exact model."""

import numpy as np
import pytest

from attn_rtl.gen.simulate import simulate_softmax
from attn_rtl.hdl.exp2 import exp2_points
from attn_rtl.hdl.softmax import SoftmaxUnit, softmax_params
from attn_rtl.sim import golden
from attn_rtl.sim.golden import Numerics
from attn_rtl.sim.softmax_stream import beats_from_logits, softmax_stream

NM = Numerics()

# Every score kind with every mask kind, rows across many tiles in every tile order, both beat
# orders an engine produces (tile by tile over the block's rows, or row by row).
CASES = [
    dict(rows=5, keys=29, scores="random", mask="none", order="ascending"),
    dict(rows=5, keys=29, scores="random", mask="random", order="random", interleave=False),
    dict(rows=3, keys=16, scores="equal", mask="none", order="descending"),
    dict(rows=4, keys=21, scores="dominant", mask="tiles", order="random"),
    dict(rows=5, keys=11, scores="extreme", mask="rows", order="descending", interleave=False),
    dict(rows=2, keys=3, scores="random", mask="rows", order="ascending"),
]

SHAPES = [  # (lanes, slots): one lane, odd counts, the default and a wide one
    (1, 1), (3, 5), (8, 8), (16, 4),
]


def _groups(lanes, slots):
    return [dict(c, rows=min(c["rows"], slots), keys=c["keys"] * max(1, lanes // 4)) for c in CASES]


def _shape_cases():
    # Verilator builds take half a minute each: two shapes there (-m slow; the tests below run Verilator by
    # default), all of them on Icarus.
    cases = [pytest.param("icarus", lanes, slots, id=f"icarus-{lanes}lanes-{slots}slots") for lanes, slots in SHAPES]
    return cases + [pytest.param("verilator", lanes, slots, id=f"verilator-{lanes}lanes-{slots}slots",
                                 marks=pytest.mark.slow)
                    for lanes, slots in [(3, 5), (8, 8)]]


@pytest.mark.parametrize("sim, lanes, slots", _shape_cases())
def test_every_case_bit_exact_with_idle_and_backpressure(sim, lanes, slots):
    report = simulate_softmax(dict(lanes=lanes, slots=slots), sim=sim, seed=lanes * 10 + slots,
                              groups=_groups(lanes, slots), idle=0.3, stall=0.3)
    assert report["passed"] and report["row_ends"] > 0 and report["masked_rows"] > 0


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])   # a build of its own
def test_saturated_logits_at_both_ends_of_the_score_range(sim):
    # shift 0 and the largest multiplier push S*M past the 32-bit logit both ways: every logit
    # saturates, so equal maxima, zero distances and extreme rescales all occur.
    report = simulate_softmax(dict(lanes=3, slots=5), sim=sim, seed=3, scale_shift=0,
                              groups=[dict(rows=4, keys=17, scores="extreme", mask="random", order="random"),
                                      dict(rows=4, keys=9, scores="dominant")], idle=0.2, stall=0.2)
    assert report["passed"]


def test_every_exponent_distance_once():
    """With the identity scale, one row of 17,408 keys covers every distance u below the maximum
    from 0 to (P + 2) * 2^F: all mantissa segments, all shift counts and the cut to zero."""
    keys = (NM.prob_frac_bits + 2) << NM.logit_frac_bits
    report = simulate_softmax(dict(lanes=16, slots=1, max_seq_len=1 << 15), sim="icarus", seed=4,
                              scale_mult=1, scale_shift=0, groups=[dict(rows=1, keys=keys, scores="ladder")])
    assert report["passed"] and report["elements"] >= keys


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_reset_in_the_middle_then_a_clean_stream(sim):
    report = simulate_softmax(dict(lanes=3, slots=5), sim=sim, seed=9, reset_mid=True,
                              groups=[dict(rows=4, keys=14, mask="random", order="random")], idle=0.2, stall=0.3)
    assert report["passed"]


@pytest.mark.parametrize("lanes, slots", [(8, 8), (3, 6), (1, 6)])
def test_one_beat_per_cycle_and_latencies_as_reported(lanes, slots):
    """No stalls, rows interleaved at least slot_recurrence deep: the input never waits, and the
    first outputs come exactly ``latency`` and ``sum_latency`` cycles after the first beat."""
    unit = SoftmaxUnit(lanes=lanes, slots=slots)
    unit._MustUse__silence = True
    assert slots >= unit.slot_recurrence
    # The first row ends in its first beat, so its reciprocal is the first sums beat.
    groups = [dict(rows=slots, keys=lanes), dict(rows=slots, keys=6 * lanes, mask="random", order="random")]
    report = simulate_softmax(dict(lanes=lanes, slots=slots), sim="icarus", seed=6, groups=groups)
    assert report["passed"]
    assert report["cycles"] == report["beats"]
    assert report["probs_delay"] == unit.latency
    assert report["sums_delay"] == unit.sum_latency


def test_one_slot_continued_back_to_back_waits_for_its_state():
    """A row sent tile after tile in one slot: each continuing beat waits slot_recurrence cycles."""
    unit = SoftmaxUnit(lanes=4, slots=2)
    unit._MustUse__silence = True
    tiles = 7
    report = simulate_softmax(dict(lanes=4, slots=2), sim="icarus", seed=7,
                              groups=[dict(rows=1, keys=4 * tiles)])
    assert report["passed"]
    assert report["cycles"] == (tiles - 1) * unit.slot_recurrence + 1


# --- the model of the unit against the contract ---------------------------------------------

@pytest.mark.parametrize("order", ["ascending", "descending", "random"])
@pytest.mark.parametrize("interleave", [True, False])
def test_stream_outputs_rebuild_the_contracts_attention(order, interleave):
    """Rescaling the output accumulators by each beat's factor, adding that beat's p·V and
    normalizing with the row's reciprocal gives exactly online_softmax_attention."""
    rng = np.random.default_rng(12)
    rows, keys, lanes, d = 6, 45, 8, 5
    s = rng.integers(-(1 << 20), 1 << 20, size=(rows, keys))
    allowed = rng.random((rows, keys)) > 0.25
    allowed[2] = False                                  # a fully masked row
    v = rng.integers(-128, 128, size=(keys, d))
    mult, shift = 40000, 24
    n_tiles = -(-keys // lanes)
    tile_order = {"ascending": None, "descending": list(range(n_tiles))[::-1],
                  "random": list(rng.permutation(n_tiles))}[order]
    row, tile, first, last = beats_from_logits(rows, keys, lanes, tile_order, interleave=interleave)
    cols = tile[:, None] * lanes + np.arange(lanes)[None, :]
    pad = np.zeros((rows, n_tiles * lanes), np.int64)
    pad_mask = np.zeros_like(pad, bool)
    pad[:, :keys], pad_mask[:, :keys] = s, allowed
    v_pad = np.zeros((n_tiles * lanes, d), np.int64)
    v_pad[:keys] = v
    out = softmax_stream(pad[row[:, None], cols], pad_mask[row[:, None], cols], row, first, last,
                         mult=mult, shift=shift, nm=NM, max_seq_len=1024)

    acc = np.zeros((rows, d), object)
    for b in range(len(row)):
        factor_shift = NM.prob_frac_bits + int(out.scale_exp[b])
        acc[row[b]] = [(int(a) * int(out.scale_mant[b])) >> factor_shift for a in acc[row[b]]]
        acc[row[b]] += out.probs[b].astype(object) @ v_pad[cols[b]].astype(object)
    o = golden.normalize(acc, out.recip.astype(object)[np.argsort(out.sum_slot)],
                         out.recip_exp[np.argsort(out.sum_slot)], NM, NM.data_width)

    t = golden.logits(s, mult, shift, NM)
    expected, state = golden.online_softmax_attention(t, v, NM, mask=allowed, key_tile=lanes, tile_order=tile_order)
    assert np.array_equal(o, expected)
    assert np.array_equal(out.row_sum[np.argsort(out.sum_slot)], state.row_sum.astype(np.int64))
    assert np.all(o[2] == 0) and state.row_sum[2] == 0


def test_table_of_the_hardware_is_the_contracts():
    for S in (0, 3, 5):
        nm = Numerics(exp_segments_log2=S)
        assert exp2_points(nm.logit_frac_bits, S, nm.prob_frac_bits) == golden.exp2_table(nm).tolist()


@pytest.mark.parametrize("params, message", [
    (dict(lanes=0), "lanes must be a positive integer, not 0"),
    (dict(slots=-2), "slots must be a positive integer, not -2"),
    (dict(score_width=1), "score_width must be at least 2, not 1"),
    (dict(max_seq_len=True), "max_seq_len must be a positive integer, not True"),
    (dict(numerics={"prob_frac_bits": 40}), "prob_frac_bits must be an integer from 4 to 24, not 40"),
    (dict(numerics={"frac": 3}), "frac"),
    (dict(numerics=7), "numerics must be a table of number formats, not 7"),
    (dict(lane=3), "lane"),
    (dict(multiplier="dsp48"), "multiplier must be one of generic, ecp5, not 'dsp48'"),
    (dict(multiplier="ecp5", score_width=36), "score_width must be at most 35 for the ecp5 multiplier, not 36"),
    (dict(multiplier="ecp5", max_seq_len=1 << 20), "max_seq_len must be at most 262144 for the ecp5 multiplier"),
])
def test_bad_parameters_are_rejected_with_the_value(params, message):
    with pytest.raises(ValueError, match=message):
        softmax_params(**params)


def test_stream_model_rejects_a_row_longer_than_max_seq_len():
    # 12 keys of probability 1.0 need 19 bits; max_seq_len = 4 gives the row sum 18.
    s = np.zeros((3, 4), np.int64)
    with pytest.raises(ValueError, match="max_seq_len = 4"):
        softmax_stream(s, np.ones((3, 4), bool), [0, 0, 0], [1, 0, 0], [0, 0, 1], mult=1, shift=0, nm=NM,
                       max_seq_len=4)


def test_other_number_formats_are_bit_exact_too():
    """Narrower logits, fewer segments, fewer probability and reciprocal bits: every width of the
    datapath follows the numerics, not just the defaults."""
    numerics = dict(logit_frac_bits=8, logit_width=24, exp_segments_log2=3, prob_frac_bits=12, mult_width=12,
                    max_shift=40, recip_bits=13)
    report = simulate_softmax(dict(lanes=3, slots=5, score_width=18, max_seq_len=300, numerics=numerics),
                              sim="icarus", seed=21, groups=_groups(3, 5), idle=0.2, stall=0.2)
    assert report["passed"]


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_ecp5_primitives_are_bit_exact(sim):
    """multiplier="ecp5": 22-bit scores and 26-bit row sums each take two MULT18X18D, joined by a
    fabric adder; fifo_memory="ecp5": both output FIFOs in DP16KD block RAM (simulation models of
    hdl/models).  Latencies and full rate hold as reported."""
    params = dict(lanes=3, slots=8, multiplier="ecp5", fifo_memory="ecp5")
    report = simulate_softmax(params, sim=sim, seed=2, groups=_groups(3, 8), idle=0.3, stall=0.3)
    assert report["passed"]
    unit = SoftmaxUnit(**params)
    unit._MustUse__silence = True
    clean = simulate_softmax(params, sim=sim, seed=3, groups=[dict(rows=8, keys=3), dict(rows=8, keys=20)])
    assert clean["passed"] and clean["cycles"] == clean["beats"]
    assert (clean["probs_delay"], clean["sums_delay"]) == (unit.latency, unit.sum_latency)
