"""The one-row serial softmax (the global row's) in RTL simulation against the softmax's bit-exact model."""

import pytest

from attn_rtl.gen.simulate import simulate_softmax
from attn_rtl.hdl.serial_softmax import SerialSoftmax, serial_softmax_params

# One row a group (the unit keeps one row's state): every score kind with every mask kind and tile order,
# rows of one tile, fully masked rows (mask "rows" with one row: 40% of the groups' rows), saturating scores.
CASES = [
    dict(keys=29, scores="random", mask="none", order="ascending"),
    dict(keys=29, scores="random", mask="random", order="random"),
    dict(keys=16, scores="equal", mask="none", order="descending"),
    dict(keys=21, scores="dominant", mask="tiles", order="random"),
    dict(keys=11, scores="extreme", mask="rows", order="descending"),
    dict(keys=3, scores="random", mask="rows", order="ascending"),
    dict(keys=1, scores="ladder", mask="none"),
]


def _groups(lanes, repeats=2):
    return [dict(c, rows=1, keys=c["keys"] * max(1, lanes // 4)) for c in CASES] * repeats


def _unit(**params) -> SerialSoftmax:
    unit = SerialSoftmax(**params)
    unit._MustUse__silence = True
    return unit


@pytest.mark.parametrize("sim, lanes", [("icarus", 1), ("icarus", 4), ("icarus", 9),
                                        pytest.param("verilator", 9, marks=pytest.mark.slow)])
def test_every_case_bit_exact_with_idle_and_backpressure(sim, lanes):
    report = simulate_softmax(dict(lanes=lanes), sim=sim, seed=30 + lanes, groups=_groups(lanes), idle=0.3,
                              stall=0.4, serial=True)
    assert report["passed"] and report["row_ends"] == 2 * len(CASES) and report["rescales"] > 0
    assert report["masked_rows"] > 0


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_reset_in_the_middle_then_a_clean_stream(sim):
    report = simulate_softmax(dict(lanes=3), sim=sim, seed=9, reset_mid=True, serial=True,
                              groups=_groups(3, repeats=1), idle=0.2, stall=0.3)
    assert report["passed"]


@pytest.mark.parametrize("lanes", [1, 9])
def test_a_tile_every_tile_cycles_and_latency_as_reported(lanes):
    """No stalls: a row's tiles are taken tile_cycles apart, rows of one tile row_end_cycles apart, and the
    first probabilities come latency cycles after the first tile."""
    unit = _unit(lanes=lanes)
    tiles = 6
    one_row = simulate_softmax(dict(lanes=lanes), sim="icarus", seed=6, serial=True,
                               groups=[dict(rows=1, keys=lanes * tiles, mask="random")])
    assert one_row["passed"]
    assert one_row["cycles"] == (tiles - 1) * unit.tile_cycles + 1
    assert one_row["probs_delay"] == unit.latency
    rows = simulate_softmax(dict(lanes=lanes), sim="icarus", seed=7, serial=True,
                            groups=[dict(rows=1, keys=lanes)] * tiles)
    assert rows["passed"] and rows["cycles"] == (tiles - 1) * unit.row_end_cycles + 1


def test_other_number_formats_are_bit_exact_too():
    numerics = dict(logit_frac_bits=8, logit_width=24, exp_segments_log2=3, prob_frac_bits=12, mult_width=12,
                    max_shift=40, recip_bits=13)
    report = simulate_softmax(dict(lanes=3, score_width=18, max_seq_len=300, numerics=numerics), sim="icarus",
                              seed=21, groups=_groups(3, repeats=1), idle=0.2, stall=0.2, serial=True)
    assert report["passed"]


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_ecp5_primitives_are_bit_exact(sim):
    """multiplier="ecp5": the 23-bit scores and the row sums each take two MULT18X18D."""
    params = dict(lanes=9, multiplier="ecp5")
    report = simulate_softmax(params, sim=sim, seed=2, groups=_groups(9, repeats=1), idle=0.3, stall=0.3,
                              serial=True)
    assert report["passed"]
    clean = simulate_softmax(params, sim=sim, seed=3, serial=True, groups=[dict(rows=1, keys=9 * 4)])
    assert clean["passed"] and clean["cycles"] == 3 * _unit(**params).tile_cycles + 1


@pytest.mark.parametrize("params, message", [
    (dict(lanes=0), "lanes must be a positive integer, not 0"),
    (dict(slots=2), "slots"),
    (dict(fifo_memory="ecp5"), "fifo_memory"),
    (dict(score_width=1), "score_width must be at least 2, not 1"),
    (dict(multiplier="ecp5", score_width=36), "score_width must be at most 35 for the ecp5 multiplier, not 36"),
    (dict(numerics=7), "numerics must be a table of number formats, not 7"),
])
def test_bad_parameters_are_rejected_with_the_value(params, message):
    with pytest.raises(ValueError, match=message):
        serial_softmax_params(**params)
