"""Bit-exact numpy model of the attention arithmetic of docs/numerics.md.

Everything here is integers in, integers out, vectorized over heads, query
rows and head dimension; the only Python loop is over key tiles, because the
online softmax *is* sequential over tiles and the contract depends on their
size and order.  Section numbers in comments refer to docs/numerics.md.

The model imports no simulator: hardware testbenches import it, never the
other way round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from attn_rtl.numerics import RESCALE_EXP_MAX, Numerics, clog2
from attn_rtl.params import int_in_range as _check_int

from .fixed import (
    bit_length,
    dequantize,
    quantize,
    saturate,
    shift_floor,
    shift_round_half_even,
    signed_range,
    symmetric_scale,
    wide,
)

__all__ = [
    "Numerics", "AttentionResult", "score_multiplier", "logits", "exp2_table", "exp2_frac",
    "exp2_neg", "rescale_factor", "rescale", "reciprocal", "normalize", "scores", "online_step", "online_softmax_attention",
    "softmax_probabilities", "ranked_attention", "largest_probability", "attention", "attention_float", "exp2_error", "online_error_bound",
]

LOG2E = 1.0 / math.log(2.0)


# --- section 3: scores and logits -------------------------------------------------------

def score_multiplier(real_factor: float, nm: Numerics) -> tuple[int, int]:
    """Fold ``s_q * s_k * scale`` into the integer pair ``(M, s)`` of section 3.

    ``M / 2**s`` approximates ``real_factor * log2(e) * 2**F`` with the largest
    ``s <= max_shift`` for which ``M`` still fits ``mult_width`` unsigned bits.
    """
    if not (isinstance(real_factor, (int, float)) and math.isfinite(real_factor) and real_factor > 0):
        raise ValueError(f"score scale must be a positive finite number, not {real_factor!r}")
    c = real_factor * LOG2E * (1 << nm.logit_frac_bits)
    limit = 1 << nm.mult_width
    if round(c) >= limit:
        raise ValueError(f"score scale {real_factor!r} is too large: its multiplier {c:.4g} "
                         f"does not fit mult_width={nm.mult_width} bits")
    shift = nm.max_shift
    while shift > 0 and np.rint(c * 2.0 ** shift) >= limit:
        shift -= 1
    mult = int(np.rint(c * 2.0 ** shift))
    if mult == 0:
        raise ValueError(f"score scale {real_factor!r} is too small: its multiplier rounds to 0 "
                         f"even at max_shift={nm.max_shift}")
    return mult, shift


def scores(q_int: np.ndarray, k_int: np.ndarray) -> np.ndarray:
    """Exact integer ``Q·Kᵀ`` over the last axis (section 2); never overflows int64 for d <= 2**20."""
    return np.matmul(np.asarray(q_int, np.int64), np.swapaxes(np.asarray(k_int, np.int64), -1, -2))


def logits(score: np.ndarray, mult: int, shift: int, nm: Numerics) -> np.ndarray:
    """``t = saturate_T(floor(S * M / 2**s))`` (section 3)."""
    score = np.asarray(score, np.int64)
    bits = int(np.abs(score).max(initial=0)).bit_length() + int(mult).bit_length() + 1
    product = wide(score, bits) * mult
    return saturate(shift_floor(product, shift), nm.logit_width).astype(np.int64)


# --- section 4: base-2 exponent ---------------------------------------------------------

def exp2_table(nm: Numerics) -> np.ndarray:
    """``E[i] = round_half_even(2**P * 2**(-i / 2**S))`` for ``i = 0 .. 2**S``."""
    i = np.arange((1 << nm.exp_segments_log2) + 1, dtype=np.float64)
    return np.rint(2.0 ** (nm.prob_frac_bits - i / (1 << nm.exp_segments_log2))).astype(np.int64)


def exp2_frac(f: np.ndarray, nm: Numerics) -> np.ndarray:
    """``2**P * 2**(-f / 2**F)`` for ``0 <= f < 2**F`` by linear interpolation of :func:`exp2_table`.

    ``E[i] - floor((E[i] - E[i+1]) * r / 2**(F-S))`` with ``i = f >> (F-S)``
    and ``r`` the low ``F-S`` bits of ``f``; the result lies in ``[2**(P-1), 2**P]``.
    """
    table = exp2_table(nm)
    low = nm.logit_frac_bits - nm.exp_segments_log2
    f = np.asarray(f, np.int64)
    i = f >> low
    r = f & ((1 << low) - 1)
    return table[i] - shift_floor((table[i] - table[i + 1]) * r, low)


def exp2_neg(u: np.ndarray, nm: Numerics) -> np.ndarray:
    """Unnormalized probability ``p = floor(exp2_frac(u mod 2**F) / 2**min(n, P+1))``, ``n = u >> F``.

    ``u >= 0`` is the distance of a logit below the running maximum.
    """
    u = np.asarray(u, np.int64)
    n = np.minimum(u >> nm.logit_frac_bits, nm.prob_frac_bits + 1)
    return shift_floor(exp2_frac(u & ((1 << nm.logit_frac_bits) - 1), nm), n)


def rescale_factor(delta: np.ndarray, nm: Numerics) -> tuple[np.ndarray, np.ndarray]:
    """The rescale factor of a maximum that grew by ``delta`` steps, in floating form (section 5).

    ``(mant, exp)`` with ``mant = exp2_frac(delta mod 2**F)`` in ``[2**(P-1), 2**P]``
    and ``exp = min(delta >> F, RESCALE_EXP_MAX)``; the factor is ``mant / 2**(P + exp)``.
    ``delta = 0`` gives ``(2**P, 0)``, the identity.
    """
    delta = np.asarray(delta, np.int64)
    mant = exp2_frac(delta & ((1 << nm.logit_frac_bits) - 1), nm)
    return mant, np.minimum(delta >> nm.logit_frac_bits, RESCALE_EXP_MAX)


def rescale(x: np.ndarray, delta: np.ndarray, nm: Numerics) -> np.ndarray:
    """``floor(x * exp2_frac(delta mod 2**F) / 2**(P + n))``, ``n = delta >> F`` (section 5).

    The factor is applied in floating form (mantissa, exponent) so that its
    relative error stays below ``2**-P`` however large ``delta`` is.  A shift
    past the product's width yields ``0`` or ``-1`` (floor), so the count is
    saturated at 62 without changing the result of in-range operands.
    """
    x = np.asarray(x)
    mant, exp = rescale_factor(delta, nm)
    total = np.minimum(nm.prob_frac_bits + exp, 62).astype(x.dtype)
    return shift_floor(x * mant.astype(x.dtype), total)


# --- section 6: reciprocal and normalization --------------------------------------------

def reciprocal(row_sum: np.ndarray, nm: Numerics) -> tuple[np.ndarray, np.ndarray]:
    """``(r, e)`` with ``e = bit_length(l) - 1`` and ``r = floor(2**(R+e) / l)``; ``(0, 0)`` for ``l == 0``."""
    row_sum = np.asarray(row_sum)
    e = np.maximum(bit_length(row_sum) - 1, 0)
    num = np.asarray(1, dtype=row_sum.dtype) << (nm.recip_bits + e).astype(row_sum.dtype)
    r = np.where(row_sum > 0, num // np.where(row_sum > 0, row_sum, 1), 0)
    return r.astype(row_sum.dtype), e


def normalize(acc: np.ndarray, r: np.ndarray, e: np.ndarray, nm: Numerics, out_width: int) -> np.ndarray:
    """``saturate_w(round_half_even(acc * r / 2**(R + e)))`` per row (section 6)."""
    prod = acc * r[..., None]
    shift = (nm.recip_bits + e)[..., None].astype(prod.dtype)
    return saturate(shift_round_half_even(prod, shift), out_width).astype(np.int64)


# --- section 5: the online softmax and P·V ----------------------------------------------

@dataclass
class OnlineState:
    """Per-row state at the end of the keys, for tests and later units."""
    row_max: np.ndarray
    row_sum: np.ndarray
    acc: np.ndarray
    rescales: np.ndarray
    reciprocal: np.ndarray
    exponent: np.ndarray


def _tile_order(n_keys: int, key_tile: int | None, tile_order) -> tuple[int, list[int]]:
    key_tile = n_keys if key_tile is None else _check_int("key_tile", int(key_tile), 1, 1 << 30)
    n_tiles = -(-n_keys // key_tile)
    order = list(range(n_tiles)) if tile_order is None else [int(i) for i in tile_order]
    if sorted(order) != list(range(n_tiles)):
        raise ValueError(f"tile_order must be a permutation of range({n_tiles}), not {order!r}")
    return key_tile, order


def online_step(row_max: np.ndarray, seen: np.ndarray, tt: np.ndarray, ok: np.ndarray,
                nm: Numerics) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps 1 and 3 of section 5 for one key tile of every row.

    ``row_max`` and ``seen`` are the rows' state (``seen``: an unmasked key
    took part already); ``tt`` and ``ok`` the tile's logits and mask
    (``(..., keys)``).  Returns ``(new_max, new_seen, delta, p)``: ``delta``
    is the growth of the maximum that step 2 rescales by (0 for rows not
    seen yet, which hold zero sums, and for a maximum that did not grow:
    ``exp2_frac(0) == 2**P`` makes that an identity), ``p`` the tile's
    unnormalized probabilities (0 where masked).
    """
    lo = signed_range(nm.logit_width)[0]
    tile_seen = ok.any(axis=-1)
    tile_max = np.where(ok, tt, lo).max(axis=-1)
    new_max = np.where(tile_seen, np.where(seen, np.maximum(row_max, tile_max), tile_max), row_max)
    delta = np.where(seen, new_max - row_max, 0)
    p = np.where(ok, exp2_neg(np.maximum(new_max[..., None] - tt, 0), nm), 0)
    return new_max, seen | tile_seen, delta, p


def online_softmax_attention(t: np.ndarray, v_int: np.ndarray, nm: Numerics, *, out_width: int | None = None,
                             mask: np.ndarray | None = None, key_tile: int | None = None,
                             tile_order=None) -> tuple[np.ndarray, OnlineState]:
    """Section 5: online softmax over key tiles fused with ``P·V``, then section 6.

    Parameters
    ----------
    t : int array (..., Lq, Lk)
        Logits from :func:`logits`.
    v_int : int array (..., Lk, dv)
    mask : bool array broadcastable to ``t``, optional
        ``True`` where a score takes part; masked scores contribute nothing.
    key_tile, tile_order :
        Keys are consumed ``key_tile`` at a time (default: all at once) in
        ``tile_order`` (default: ascending).

    Returns
    -------
    (o_int, state): the output integers and the final per-row state.
    """
    t = np.asarray(t, np.int64)
    v_int = np.asarray(v_int, np.int64)
    n_keys = t.shape[-1]
    if v_int.shape[-2] != n_keys:
        raise ValueError(f"v has {v_int.shape[-2]} rows but there are {n_keys} keys")
    out_width = nm.data_width if out_width is None else out_width
    key_tile, order = _tile_order(n_keys, key_tile, tile_order)
    allowed = np.ones(t.shape, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), t.shape)

    v_bits = int(max(np.abs(v_int).max(initial=0), 1)).bit_length() + 1
    acc_bits = nm.prob_width + v_bits + clog2(n_keys) + nm.prob_frac_bits + 1
    wide_bits = max(acc_bits, nm.prob_width + clog2(n_keys) + nm.recip_bits + 2,
                    nm.prob_width + v_bits + clog2(n_keys) + nm.recip_bits + 2)
    row_shape = t.shape[:-1]
    lo = signed_range(nm.logit_width)[0]
    row_max = np.full(row_shape, lo, np.int64)
    seen = np.zeros(row_shape, bool)
    row_sum = wide(np.zeros(row_shape, np.int64), wide_bits)
    acc = wide(np.zeros(row_shape + (v_int.shape[-1],), np.int64), wide_bits)
    rescales = np.zeros(row_shape, np.int64)

    for tile in order:
        cols = slice(tile * key_tile, min((tile + 1) * key_tile, n_keys))
        new_max, new_seen, delta, p = online_step(row_max, seen, t[..., cols], allowed[..., cols], nm)
        rescales += delta > 0
        row_sum = rescale(row_sum, delta, nm)
        acc = rescale(acc, delta[..., None], nm)
        row_sum = row_sum + wide(p.sum(axis=-1), wide_bits)
        acc = acc + wide(np.matmul(wide(p, wide_bits), wide(v_int[..., cols, :], wide_bits)), wide_bits)
        row_max, seen = new_max, new_seen

    r, e = reciprocal(row_sum, nm)
    o_int = normalize(acc, r, e, nm, out_width)
    state = OnlineState(row_max=np.where(seen, row_max, lo), row_sum=row_sum, acc=acc,
                        rescales=rescales, reciprocal=r, exponent=e)
    return o_int, state


def softmax_probabilities(t: np.ndarray, nm: Numerics, mask: np.ndarray | None = None) -> np.ndarray:
    """Normalized probabilities with ``P`` fraction bits, keys in one tile (section 6).

    ``round_half_even(p * r / 2**(R + e - P))``; the row sums to ``2**P``
    within ``ceil(Lk / 2) + 1`` LSB (numerics.md, section 8).
    """
    t = np.asarray(t, np.int64)
    allowed = np.ones(t.shape, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), t.shape)
    lo = signed_range(nm.logit_width)[0]
    row_max = np.where(allowed, t, lo).max(axis=-1, keepdims=True)
    p = np.where(allowed, exp2_neg(np.maximum(row_max - t, 0), nm), 0)
    r, e = reciprocal(p.sum(axis=-1), nm)
    # e >= P whenever a key takes part, so the shift is >= R >= 2; fully masked rows are all zero.
    shift = np.maximum(nm.recip_bits + e - nm.prob_frac_bits, 1)[..., None]
    return shift_round_half_even(p * r[..., None], shift)


def ranked_attention(t: np.ndarray, v_int: np.ndarray, nm: Numerics, *, key_tile: int,
                     out_width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An importance run (section 6, *Importance*): ``(o_int, importance)``.

    A scan pass of the online softmax over key tiles of ``key_tile`` finds
    every row's final maximum ``m`` and online row sum ``ℓ`` (hence ``r, e``);
    the computing pass takes ``p_j = exp2_neg(m − t_j)`` against that final
    maximum, so ``O = normalize(Σ_j p_j·V_j, r, e)`` with no rescale, and the
    row's normalized probabilities ``rne(p_j · r, max(R + e − P, 1))``.
    ``importance`` (``(..., Lk)``) sums those over the query rows.
    """
    t = np.asarray(t, np.int64)
    v_int = np.asarray(v_int, np.int64)
    out_width = nm.data_width if out_width is None else out_width
    _, state = online_softmax_attention(t, v_int, nm, out_width=out_width, key_tile=key_tile)
    p = exp2_neg(np.maximum(state.row_max[..., None] - t, 0), nm)
    n_keys = t.shape[-1]
    v_bits = int(max(np.abs(v_int).max(initial=0), 1)).bit_length() + 1
    bits = nm.prob_width + v_bits + clog2(n_keys) + nm.recip_bits + 2
    acc = np.matmul(wide(p, bits), wide(v_int, bits))
    o_int = normalize(acc, state.reciprocal, state.exponent, nm, out_width)
    shift = np.maximum(nm.recip_bits + state.exponent - nm.prob_frac_bits, 1)[..., None]
    normalized = shift_round_half_even(p * state.reciprocal[..., None], shift)
    return o_int, normalized.sum(axis=-2)


def largest_probability(r: np.ndarray, e: np.ndarray, nm: Numerics) -> np.ndarray:
    """A row's largest normalized probability, ``rne(2^P · r, max(R + e − P, 1))`` (section 6).

    The maximum key's unnormalized probability is exactly ``exp2_neg(0) = 2^P``;
    ``(r, e)`` is the row's reciprocal.  ``P`` fraction bits; 0 for a fully masked row.
    """
    r = np.asarray(r, np.int64)
    shift = np.maximum(nm.recip_bits + np.asarray(e, np.int64) - nm.prob_frac_bits, 1)
    return shift_round_half_even(r << nm.prob_frac_bits, shift)


# --- the whole contract -----------------------------------------------------------------

@dataclass
class AttentionResult:
    """What :func:`attention` computed, in both domains."""
    o_int: np.ndarray
    o: np.ndarray
    q_int: np.ndarray
    k_int: np.ndarray
    v_int: np.ndarray
    scales: dict
    multiplier: int
    shift: int
    state: OnlineState = field(repr=False)


def _as_heads(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (L, d) or (H, L, d), not {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, not dtype {x.dtype}")
    if x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ValueError(f"{name} must have at least one row and one column, not shape {x.shape}")
    return x


def check_qkv_shapes(q, k, v) -> None:
    """Raise ``ValueError`` naming the first inconsistent shape among q, k, v."""
    q, k, v = (_as_heads(n, x) for n, x in (("q", q), ("k", k), ("v", v)))
    if not q.ndim == k.ndim == v.ndim:
        raise ValueError(f"q, k and v must all be (L, d) or all (H, L, d), not {q.shape}, {k.shape}, {v.shape}")
    if q.shape[:-2] != k.shape[:-2] or q.shape[:-2] != v.shape[:-2]:
        raise ValueError(f"q, k and v must have the same number of heads, not {q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same head dimension, not {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same sequence length, not {k.shape[-2]} and {v.shape[-2]}")


def attention(q, k, v, *, scale: float | None = None, nm: Numerics = Numerics(), mask=None,
              key_tile: int | None = None, tile_order=None) -> AttentionResult:
    """Quantize float ``q, k, v`` and run the integer contract end to end.

    ``q, k, v`` are float arrays of shape ``(L, d)`` or ``(H, L, d)``; the
    default ``scale`` is ``1/sqrt(d)``.  Scales are per tensor (section 1).
    """
    check_qkv_shapes(q, k, v)
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} holds a non-finite value (inf or nan)")
    d = q.shape[-1]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    w = nm.data_width
    s = {name: symmetric_scale(np.asarray(x, np.float64), w) for name, x in (("q", q), ("k", k), ("v", v))}
    q_int, k_int, v_int = (quantize(x, s[n], w) for n, x in (("q", q), ("k", k), ("v", v)))
    mult, shift = score_multiplier(float(s["q"] * s["k"] * scale), nm)
    t = logits(scores(q_int, k_int), mult, shift, nm)
    o_int, state = online_softmax_attention(t, v_int, nm, mask=mask, key_tile=key_tile, tile_order=tile_order)
    s["o"] = s["v"]
    return AttentionResult(o_int=o_int, o=dequantize(o_int, s["o"]), q_int=q_int, k_int=k_int, v_int=v_int,
                           scales=s, multiplier=mult, shift=shift, state=state)


def attention_float(q, k, v, scale: float | None = None, mask=None) -> np.ndarray:
    """Float64 reference ``softmax(q kᵀ scale) v``; fully masked rows give 0."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m)
    z = e.sum(axis=-1, keepdims=True)
    return np.matmul(e / np.where(z > 0, z, 1.0), v)


# --- section 8: error figures -----------------------------------------------------------

def exp2_error(nm: Numerics) -> dict:
    """Exhaustive errors of :func:`exp2_frac` and :func:`exp2_neg` against exact ``2**-x``.

    ``frac_rel``: max relative error of the mantissa used by :func:`rescale`;
    ``prob_abs_lsb``: max absolute error of :func:`exp2_neg` in units of ``2**-P``;
    ``abs``: max absolute error of ``exp2_frac / 2**P`` as a real number.
    """
    f_bits, p_bits = nm.logit_frac_bits, nm.prob_frac_bits
    f = np.arange(1 << f_bits)
    exact = 2.0 ** (p_bits - f / (1 << f_bits))
    approx = exp2_frac(f, nm).astype(np.float64)
    u = np.arange((p_bits + 2) << f_bits)
    prob_err = np.abs(exp2_neg(u, nm) - 2.0 ** (p_bits - u / (1 << f_bits))).max()
    return {"frac_rel": float((np.abs(approx - exact) / exact).max()),
            "abs": float(np.abs(approx - exact).max() / 2.0 ** p_bits),
            "prob_abs_lsb": float(prob_err)}


def online_error_bound(t: np.ndarray, v_int: np.ndarray, rescales: np.ndarray, nm: Numerics,
                       mask=None) -> np.ndarray:
    """Per-row bound (in output LSB) on ``|x - o*|`` before the final rounding (section 8).

    ``x`` is the online result for any key tiling with ``rescales`` maximum
    increases and ``o*`` the exact softmax of the integer logits ``t``
    applied to ``v``.  Two tilings' outputs differ by at most
    ``ceil(bound_a + bound_b)`` LSB.
    """
    t = np.asarray(t, np.float64)
    allowed = np.ones(t.shape, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), t.shape)
    n_keys = allowed.sum(axis=-1)
    row_max = np.where(allowed, t, -np.inf).max(axis=-1, keepdims=True)
    w_sum = np.where(allowed, 2.0 ** ((t - row_max) / (1 << nm.logit_frac_bits)), 0.0).sum(axis=-1)
    vmax = np.abs(np.asarray(v_int, np.float64)).max(axis=(-1, -2))[..., None]
    err = exp2_error(nm)
    gamma = (1.0 + err["frac_rel"]) ** rescales - 1.0
    one = 2.0 ** nm.prob_frac_bits
    e_sum = (1.0 + gamma) * (n_keys * err["prob_abs_lsb"] + rescales) + gamma * one * w_sum
    e_acc = (1.0 + gamma) * (n_keys * err["prob_abs_lsb"] * vmax + rescales) + gamma * one * vmax * w_sum
    denom = np.maximum(one, one * w_sum - e_sum)
    online = (e_acc + vmax * e_sum) / denom
    # r = floor(2**(R+e) / l) is low by less than a factor 2**(1-R): at most (|o*| + online) * 2**(1-R).
    return np.where(n_keys > 0, online + (vmax + online) * 2.0 ** (1 - nm.recip_bits), 0.0)
