"""The vectorized golden model against a second, scalar transcription of docs/numerics.md.

``scalar_attention`` below is written from the document with Python integers
and one loop per element, deliberately unlike ``attn_rtl.sim.golden``: a bug in the
numpy broadcasting, masking or tiling shows up as a disagreement.
"""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attn_rtl.sim import golden
from attn_rtl.sim.golden import Numerics


def _floor_shift(x: int, s: int) -> int:
    return x >> s  # Python: floor for any sign and any s >= 0


def _rne(x: int, s: int) -> int:
    q = Fraction(x, 1 << s)
    fl = q.numerator // q.denominator
    rem = q - fl
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2 == 1):
        return fl + 1
    return fl


def _sat(x: int, w: int) -> int:
    return max(-(1 << (w - 1)), min((1 << (w - 1)) - 1, x))


def _table(nm):
    # section 4: Tab[i] = rne(2^P * 2^(-i/2^S)), via exact float then ties-to-even
    return [int(np.rint(2.0 ** (nm.prob_frac_bits - i / 2 ** nm.exp_segments_log2)))
            for i in range(2 ** nm.exp_segments_log2 + 1)]


def _mantissa(f: int, nm, tab) -> int:
    low = nm.logit_frac_bits - nm.exp_segments_log2
    i, r = f >> low, f & ((1 << low) - 1)
    return tab[i] - _floor_shift((tab[i] - tab[i + 1]) * r, low)


def _p(u: int, nm, tab) -> int:
    n, f = u >> nm.logit_frac_bits, u & ((1 << nm.logit_frac_bits) - 1)
    return _floor_shift(_mantissa(f, nm, tab), min(n, nm.prob_frac_bits + 1))


def scalar_attention(t, v, nm, mask, key_tile, order):
    """Sections 5 and 6, one row and one element at a time."""
    tab = _table(nm)
    lq, lk = len(t), len(t[0])
    dv = len(v[0])
    out = []
    for i in range(lq):
        m = None
        ell = 0
        acc = [0] * dv
        for tile in order:
            keys = [j for j in range(tile * key_tile, min((tile + 1) * key_tile, lk)) if mask[i][j]]
            if not keys:
                continue
            m_tile = max(t[i][j] for j in keys)
            m_new = m_tile if m is None else max(m, m_tile)
            if m is not None and m_new > m:
                delta = m_new - m
                n, f = delta >> nm.logit_frac_bits, delta & ((1 << nm.logit_frac_bits) - 1)
                e_f = _mantissa(f, nm, tab)
                ell = _floor_shift(ell * e_f, nm.prob_frac_bits + n)
                acc = [_floor_shift(a * e_f, nm.prob_frac_bits + n) for a in acc]
            m = m_new
            for j in keys:
                p = _p(m - t[i][j], nm, tab)
                ell += p
                for c in range(dv):
                    acc[c] += p * v[j][c]
        if ell == 0:
            out.append([0] * dv)
            continue
        e = ell.bit_length() - 1
        r = (1 << (nm.recip_bits + e)) // ell
        out.append([_sat(_rne(a * r, nm.recip_bits + e), nm.data_width) for a in acc])
    return np.array(out, dtype=np.int64)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lq=st.integers(1, 6), lk=st.integers(1, 19), dv=st.integers(1, 4),
       key_tile=st.integers(1, 20), spread=st.sampled_from([3, 300, 3000, 40000]),
       mask_density=st.sampled_from([1.0, 0.7, 0.2]), fmt=st.sampled_from(["default", "narrow"]))
def test_vectorized_model_equals_scalar_transcription(seed, lq, lk, dv, key_tile, spread, mask_density, fmt):
    nm = Numerics() if fmt == "default" else Numerics(data_width=6, logit_frac_bits=6, exp_segments_log2=2,
                                                      prob_frac_bits=9, recip_bits=10)
    rng = np.random.default_rng(seed)
    t = rng.integers(-spread, spread, size=(lq, lk))
    lo, hi = -(1 << (nm.data_width - 1)), (1 << (nm.data_width - 1)) - 1
    v = rng.integers(lo, hi, size=(lk, dv), endpoint=True)
    mask = rng.random((lq, lk)) < mask_density
    n_tiles = -(-lk // key_tile)
    order = list(rng.permutation(n_tiles))
    got, _ = golden.online_softmax_attention(t, v, nm, mask=mask, key_tile=key_tile, tile_order=order)
    want = scalar_attention(t.tolist(), v.tolist(), nm, mask.tolist(), key_tile, order)
    np.testing.assert_array_equal(got, want, err_msg=f"seed {seed}")


def test_scalar_rounding_helpers_follow_their_definitions():
    assert [_rne(x, 1) for x in (1, 3, 5, -1, -3)] == [0, 2, 2, 0, -2]
    assert [_floor_shift(x, 2) for x in (7, -7, -1)] == [1, -2, -1]


@pytest.mark.parametrize("heads", [1, 3])
def test_many_heads_equal_one_head_at_a_time(heads):
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((heads, 9, 5)) for _ in range(3))
    whole = golden.attention(q, k, v, key_tile=4)
    for h in range(heads):
        # same per-tensor scales, so quantize with them: run the integer path per head
        t = golden.logits(golden.scores(whole.q_int[h], whole.k_int[h]), whole.multiplier, whole.shift, Numerics())
        o_h, _ = golden.online_softmax_attention(t, whole.v_int[h], Numerics(), key_tile=4)
        np.testing.assert_array_equal(whole.o_int[h], o_h)
