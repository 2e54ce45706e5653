"""Properties of the golden attention model promised by docs/numerics.md, section 8."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attn_rtl.sim import fixed, golden
from attn_rtl.sim.golden import Numerics

NM = Numerics()


def _gaussian(seed, heads, length, dim):
    rng = np.random.default_rng(seed)
    shape = (length, dim) if heads == 0 else (heads, length, dim)
    return tuple(rng.standard_normal(shape) for _ in range(3))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 512), dim=st.sampled_from([16, 32, 64, 128]),
       heads=st.sampled_from([0, 2]))
def test_int8_output_within_one_lsb_of_float_on_quantized_inputs(seed, length, dim, heads):
    q, k, v = _gaussian(seed, heads, length, dim)
    r = golden.attention(q, k, v)
    s = r.scales
    ref = golden.attention_float(r.q_int * s["q"], r.k_int * s["k"], r.v_int * s["v"]) / s["o"]
    err = np.abs(r.o_int - ref)
    assert (err <= 1.0).mean() >= 0.99, f"seed {seed}: only {(err <= 1).mean():.4f} within 1 LSB, max {err.max()}"
    assert r.o_int.dtype == np.int64 and r.o.shape == q.shape


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 512), spread=st.sampled_from([1.0, 4.0, 30.0]))
def test_probability_rows_sum_to_one_within_stated_lsb(seed, length, spread):
    rng = np.random.default_rng(seed)
    t = np.round(rng.standard_normal((4, length)) * spread * (1 << NM.logit_frac_bits)).astype(np.int64)
    prob = golden.softmax_probabilities(t, NM)
    bound = math.ceil(length / 2) + 1
    dev = np.abs(prob.sum(axis=-1) - (1 << NM.prob_frac_bits))
    assert dev.max() <= bound, f"seed {seed}: row sum off by {dev.max()} LSB > {bound}"
    assert prob.min() >= 0 and prob.max() <= 1 << NM.prob_frac_bits


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(2, 300), dim=st.sampled_from([16, 64]),
       tile_a=st.integers(1, 64), tile_b=st.integers(1, 300), sharp=st.sampled_from([1.0, 3.0]))
def test_key_tilings_stay_within_the_stated_bound(seed, length, dim, tile_a, tile_b, sharp):
    q, k, v = _gaussian(seed, 0, length, dim)
    q = q * sharp
    rng = np.random.default_rng(seed + 1)
    order_b = rng.permutation(-(-length // tile_b))
    a = golden.attention(q, k, v, key_tile=tile_a)
    b = golden.attention(q, k, v, key_tile=tile_b, tile_order=order_b)
    t = golden.logits(golden.scores(a.q_int, a.k_int), a.multiplier, a.shift, NM)
    bound_a = golden.online_error_bound(t, a.v_int, a.state.rescales, NM)
    bound_b = golden.online_error_bound(t, b.v_int, b.state.rescales, NM)
    diff = np.abs(a.o_int - b.o_int)
    assert np.all(diff <= np.ceil(bound_a + bound_b)[:, None]), f"seed {seed}: tilings differ by {diff.max()}"
    # Each result is within its bound (+ the final rounding) of the exact softmax of the integer logits.
    w = 2.0 ** ((t - t.max(axis=-1, keepdims=True)) / (1 << NM.logit_frac_bits))
    exact = (w @ a.v_int) / w.sum(axis=-1, keepdims=True)
    for res, bound in ((a, bound_a), (b, bound_b)):
        assert np.all(np.abs(res.o_int - exact) <= bound[:, None] + 0.5 + 1e-9), f"seed {seed}"


def test_tilings_of_random_data_differ_by_at_most_one_lsb():
    """The measured figure numerics.md quotes."""
    for seed in range(6):
        q, k, v = _gaussian(seed, 2, 256, 64)
        ref = golden.attention(q, k, v).o_int
        for tile in (1, 7, 64):
            order = np.random.default_rng(seed).permutation(-(-256 // tile))
            got = golden.attention(q, k, v, key_tile=tile, tile_order=order).o_int
            assert np.abs(got - ref).max() <= 1, f"seed {seed} tile {tile}"


# --- saturating paths equal clip of the exact value -------------------------------------

@settings(max_examples=50, deadline=None)
@given(x=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20), scale=st.floats(1e-3, 10.0),
       width=st.integers(2, 16))
def test_quantize_is_clip_of_round_half_even(x, scale, width):
    got = fixed.quantize(np.array(x), scale, width)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    want = [min(hi, max(lo, round(Fraction(xi) / Fraction(scale)))) for xi in x]  # round(): ties to even
    # float division may differ from exact rational division by one ulp; compare with the float quotient
    want_float = [min(hi, max(lo, int(np.rint(xi / scale)))) for xi in x]
    assert got.tolist() == want_float
    assert all(abs(g - w) <= 1 for g, w in zip(got.tolist(), want))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), logit_width=st.integers(12, 32), shift=st.integers(0, 30))
def test_logit_saturation_is_clip_of_exact_floor(seed, logit_width, shift):
    nm = Numerics(logit_width=logit_width)
    rng = np.random.default_rng(seed)
    s = rng.integers(-(1 << 22), 1 << 22, size=64)
    mult = int(rng.integers(1, 1 << 16))
    got = golden.logits(s, mult, shift, nm)
    lo, hi = -(1 << (logit_width - 1)), (1 << (logit_width - 1)) - 1
    want = [min(hi, max(lo, (int(x) * mult) >> shift)) for x in s]
    assert got.tolist() == want


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), out_width=st.integers(2, 12))
def test_output_saturation_is_clip_of_exact_round_half_even(seed, out_width):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(1 << 40), 1 << 40, size=(5, 7))
    row_sum = rng.integers(1 << NM.prob_frac_bits, 1 << 30, size=5)
    # Two elements far outside every output width tried (|acc / row_sum| = 2^13), so that both
    # saturation paths are taken whatever the draw (random ones alone may all fit 12 bits).
    acc[0, 0], acc[1, 0] = int(row_sum[0]) << 13, -(int(row_sum[1]) << 13)
    r, e = golden.reciprocal(row_sum, NM)
    got = golden.normalize(acc, r, e, NM, out_width)
    lo, hi = -(1 << (out_width - 1)), (1 << (out_width - 1)) - 1
    for i in range(5):
        for j in range(7):
            exact = Fraction(int(acc[i, j]) * int(r[i]), 1 << (NM.recip_bits + int(e[i])))
            assert got[i, j] == min(hi, max(lo, round(exact))), f"seed {seed} [{i},{j}]"  # round(): ties to even
    assert got[0, 0] == hi and got[1, 0] == lo


# --- exponent and reciprocal ------------------------------------------------------------

def test_exponent_mantissa_shape_and_error():
    f = np.arange(1 << NM.logit_frac_bits)
    mant = golden.exp2_frac(f, NM)
    assert mant[0] == 1 << NM.prob_frac_bits  # rescaling by delta = 0 is the identity
    assert np.all(np.diff(mant) <= 0)
    assert mant.min() >= 1 << (NM.prob_frac_bits - 1)
    err = golden.exp2_error(NM)
    assert err["abs"] <= 1e-4 and err["frac_rel"] <= 1.3e-4 and err["prob_abs_lsb"] <= 3.1  # numerics.md, section 4


def test_reciprocal_is_exact_floor_and_zero_sum_is_defined():
    row_sum = np.array([0, 1 << 15, (1 << 15) + 1, 3 << 20, (1 << 31) - 1])
    r, e = golden.reciprocal(row_sum, NM)
    assert r[0] == 0 and e[0] == 0
    for x, ri, ei in zip(row_sum[1:], r[1:], e[1:]):
        assert ei == int(x).bit_length() - 1
        assert ri == (1 << (NM.recip_bits + int(ei))) // int(x)
        assert (1 << (NM.recip_bits - 1)) <= ri <= (1 << NM.recip_bits)


def test_fully_masked_row_gives_zeros_and_partial_masks_ignore_masked_keys():
    rng = np.random.default_rng(3)
    t = rng.integers(-5000, 5000, size=(3, 10))
    v = rng.integers(-128, 127, size=(10, 4))
    mask = np.ones((3, 10), bool)
    mask[0] = False          # fully masked
    mask[1, 5:] = False      # second half masked
    o, state = golden.online_softmax_attention(t, v, NM, mask=mask, key_tile=3)
    assert np.all(o[0] == 0) and state.row_sum[0] == 0
    o_short, _ = golden.online_softmax_attention(t[1:2, :5], v[:5], NM, key_tile=3)
    np.testing.assert_array_equal(o[1], o_short[0])


def test_wide_formats_switch_to_exact_python_integers():
    nm = Numerics(data_width=16, prob_frac_bits=24, recip_bits=30)
    rng = np.random.default_rng(0)
    t = rng.integers(-3000, 3000, size=(2, 40))
    v = rng.integers(-(1 << 15), 1 << 15, size=(40, 3))
    o, state = golden.online_softmax_attention(t, v, nm, key_tile=7)
    assert state.acc.dtype == object
    w = 2.0 ** ((t - t.max(axis=-1, keepdims=True)) / (1 << nm.logit_frac_bits))
    exact = (w @ v) / w.sum(axis=-1, keepdims=True)
    assert np.abs(o - exact).max() <= 2.0


# --- score multiplier -------------------------------------------------------------------

@pytest.mark.parametrize("factor", [1e-6, 3e-4, 0.01, 0.7, 20.0])
def test_score_multiplier_is_the_closest_fit(factor):
    mult, shift = golden.score_multiplier(factor, NM)
    c = factor * golden.LOG2E * (1 << NM.logit_frac_bits)
    assert 0 < mult < 1 << NM.mult_width
    assert shift == 0 or mult >= 1 << (NM.mult_width - 1)
    assert abs(mult / 2.0 ** shift - c) <= 0.5 / 2.0 ** shift


@pytest.mark.parametrize("factor, message", [(0.0, "positive finite"), (float("nan"), "positive finite"),
                                             (1e9, "too large"), (1e-40, "too small")])
def test_score_multiplier_rejects_unusable_scales(factor, message):
    with pytest.raises(ValueError, match=message):
        golden.score_multiplier(factor, NM)


@pytest.mark.parametrize("field, value", [("data_width", 1), ("data_width", 17), ("prob_frac_bits", 3),
                                          ("exp_segments_log2", 11), ("recip_bits", 0), ("logit_width", 5)])
def test_numerics_rejects_out_of_range_formats(field, value):
    with pytest.raises(ValueError, match=f"{field} must be an integer from .* not {value}"):
        Numerics(**{field: value})


def test_numerics_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown numerics parameter 'frac'"):
        Numerics.from_dict({"frac": 3})
