"""The decoder-attention golden model (docs/numerics.md, section 10) against the transformers library's
semantics: causal masks at the cache's positions, sliding windows, repeat_kv's head groups."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attn_rtl.sim import decoder, golden


def _loop_mask(q_len, kv_len, window):
    """The rule written out pair by pair: query i at kv_len - q_len + i."""
    mask = np.zeros((q_len, kv_len), bool)
    for i in range(q_len):
        position = kv_len - q_len + i
        for j in range(kv_len):
            mask[i, j] = j <= position and (window is None or position - j < window)
    return mask


@pytest.mark.parametrize("q_len, kv_len, window", [
    (1, 1, None), (1, 9, None), (3, 9, None), (9, 9, None), (7, 7, 3), (2, 13, 4), (1, 4096, 4096),
    (1, 5, 1), (5, 5, 100)])
def test_causal_masks_follow_the_cache_positions(q_len, kv_len, window):
    mask = decoder.causal_mask(q_len, kv_len, window=window)
    assert mask.shape == (q_len, kv_len)
    assert np.array_equal(mask, _loop_mask(q_len, kv_len, window))
    assert mask[np.arange(q_len), kv_len - q_len + np.arange(q_len)].all()   # never an empty row
    if window is not None:
        assert (mask.sum(axis=1) <= window).all()


def test_prefill_is_the_lower_triangle_and_decode_sees_the_whole_cache():
    assert np.array_equal(decoder.causal_mask(6, 6), np.tril(np.ones((6, 6), bool)))
    assert decoder.causal_mask(1, 6).all()
    assert np.array_equal(decoder.causal_mask(1, 6, window=2), [[False] * 4 + [True] * 2])


@pytest.mark.parametrize("heads, kv_heads, expected", [
    (32, 8, np.repeat(np.arange(8), 4)),      # LLaMA-3-8B, Mistral-7B
    (64, 8, np.repeat(np.arange(8), 8)),      # LLaMA-3-70B
    (8, 1, np.zeros(8, int)),                 # multi-query
    (4, 4, np.arange(4)),                     # plain multi-head
])
def test_query_heads_read_their_groups_kv_head(heads, kv_heads, expected):
    assert np.array_equal(decoder.kv_head_of(heads, kv_heads), expected)


@pytest.mark.parametrize("call, message", [
    (lambda: decoder.kv_head_of(6, 4), "heads (6) must be a multiple of kv_heads, not 4"),
    (lambda: decoder.kv_head_of(4, 0), "kv_heads must be a positive integer, not 0"),
    (lambda: decoder.causal_mask(5, 4), "q_len must be at most kv_len (4), not 5"),
    (lambda: decoder.causal_mask(0, 4), "q_len must be a positive integer, not 0"),
    (lambda: decoder.causal_mask(2, 4, window=0), "window must be a positive integer, not 0"),
    (lambda: decoder.check_decoder_shapes(np.zeros((4, 1, 8)), np.zeros((2, 3, 8)), np.zeros((2, 3, 4))),
     "k and v must have the same shape, not (2, 3, 8) and (2, 3, 4)"),
    (lambda: decoder.check_decoder_shapes(np.zeros((4, 1, 8)), np.zeros((2, 3, 6)), np.zeros((2, 3, 6))),
     "q and k must have the same head dimension, not 8 and 6"),
    (lambda: decoder.check_decoder_shapes(np.zeros((3, 1, 8)), np.zeros((2, 3, 8)), np.zeros((2, 3, 8))),
     "heads (3) must be a multiple of kv_heads, not 2"),
    (lambda: decoder.check_decoder_shapes(np.zeros((1, 8)), np.zeros((1, 3, 8)), np.zeros((1, 3, 8))),
     "q must have shape (heads, length, d), not (1, 8)"),
])
def test_bad_decoder_inputs_are_refused(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kv_len=st.integers(1, 300), q_len=st.integers(1, 9),
       dim=st.sampled_from([8, 64, 128]), groups=st.sampled_from([(1, 1), (4, 1), (4, 2), (8, 2)]),
       window=st.one_of(st.none(), st.integers(1, 64)))
def test_golden_is_the_float_reference_within_the_int8_floor(seed, kv_len, q_len, dim, groups, window):
    """Integer model against transformers' semantics in float64 on the same quantized inputs: within
    1 LSB for 99% of outputs, as the dense model (docs/numerics.md, section 8)."""
    q_len = min(q_len, kv_len)
    heads, kv_heads = groups
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((heads, q_len, dim))
    k, v = rng.standard_normal((2, kv_heads, kv_len, dim))
    r = decoder.decoder_attention(q, k, v, window=window)
    s = r.scales
    ref = decoder.decoder_attention_float(r.q_int * s["q"], r.k_int[::heads // kv_heads] * s["k"],
                                          r.v_int[::heads // kv_heads] * s["v"], window=window) / s["o"]
    err = np.abs(r.o_int - ref)
    assert r.o_int.shape == (heads, q_len, dim)
    assert (err <= 1.0).mean() >= 0.99, f"seed {seed}: only {(err <= 1).mean():.4f} within 1 LSB, max {err.max()}"


def test_a_decode_step_is_the_last_row_of_its_prefill():
    """The cache's positions: one new query against kv_len keys is row kv_len - 1 of the prefill
    (same quantization scales, so bit-exact), and a window cuts the same keys in both."""
    rng = np.random.default_rng(7)
    q, k, v = rng.standard_normal((3, 2, 40, 16))
    for window in (None, 9):
        prefill = decoder.decoder_attention(q, k, v, window=window)
        step = decoder.decoder_attention(q[:, -1:], k, v, window=window)
        # The decode step's q has its own scale: compare with the prefill's quantized values fed as integers.
        exact = golden.online_softmax_attention(
            golden.logits(golden.scores(prefill.q_int[:, -1:], prefill.k_int), prefill.multiplier, prefill.shift,
                          golden.Numerics()),
            prefill.v_int, golden.Numerics(), mask=decoder.causal_mask(1, 40, window=window))[0]
        assert np.array_equal(exact, prefill.o_int[:, -1:])
        assert step.o_int.shape == (2, 1, 16)


def test_grouped_heads_equal_the_same_run_with_kv_repeated():
    """kv_heads = 2 for 6 query heads is bit-exact to a plain multi-head run with K and V repeated per
    group (what K/V sharing must not change), and differs from the wrong grouping h % kv_heads."""
    rng = np.random.default_rng(3)
    q = rng.standard_normal((6, 5, 32))
    k, v = rng.standard_normal((2, 2, 11, 32))
    grouped = decoder.decoder_attention(q, k, v)
    repeated = decoder.decoder_attention(q, np.repeat(k, 3, axis=0), np.repeat(v, 3, axis=0))
    wrong = decoder.decoder_attention(q, np.tile(k, (3, 1, 1)), np.tile(v, (3, 1, 1)))
    assert np.array_equal(grouped.o_int, repeated.o_int)
    assert not np.array_equal(grouped.o_int, wrong.o_int)
