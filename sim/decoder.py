"""Decoder-LLM attention (docs/numerics.md, section 10): causal masks at the KV cache's positions and
grouped-query heads, in the integer contract.

Query ``i`` of ``q_len`` new queries sits at position ``p_i = kv_len - q_len + i`` of a cache of
``kv_len`` keys (prefill: ``q_len == kv_len``; decode: ``q_len == 1``; speculative decoding: a few).

``causal``
    key ``j`` takes part iff ``j <= p_i``.
``causal-window`` of ``W`` keys (Mistral's ``sliding_window``)
    iff ``p_i - W < j <= p_i``: the query and the ``W - 1`` keys before it.

Query head ``h`` of ``heads`` reads K/V head ``h // (heads // kv_heads)`` (grouped-query attention;
one K/V head is multi-query attention).  No row is ever empty: ``j = p_i`` always takes part.

:func:`decoder_attention` is the bit-exact model; :func:`decoder_attention_float` a float64 reference
written after the transformers library's semantics (``causal_mask_function``, ``sliding_window_overlay``,
``repeat_kv``), kept independent of it on purpose.  Nothing here imports a simulator.
"""

from __future__ import annotations

import math

import numpy as np

from attn_rtl.numerics import Numerics
from attn_rtl.params import positive_int

from .golden import AttentionResult, attention

__all__ = ["DECODER_PATTERNS", "query_positions", "causal_mask", "kv_head_of", "check_decoder_shapes",
           "stack_queries", "unstack_queries", "decoder_attention", "decoder_attention_float"]

DECODER_PATTERNS = ("causal", "causal-window")


def query_positions(q_len: int, kv_len: int) -> np.ndarray:
    """Positions ``kv_len - q_len + i`` of the ``q_len`` newest queries in a cache of ``kv_len`` keys."""
    positive_int("q_len", q_len)
    positive_int("kv_len", kv_len)
    if q_len > kv_len:
        raise ValueError(f"q_len must be at most kv_len ({kv_len}), not {q_len}: the cache holds every query's key")
    return np.arange(kv_len - q_len, kv_len)


def causal_mask(q_len: int, kv_len: int, *, window: int | None = None) -> np.ndarray:
    """``(q_len, kv_len)`` bool: ``True`` where query ``i`` attends key ``j`` (``causal``, or
    ``causal-window`` of ``window`` keys)."""
    p = query_positions(q_len, kv_len)[:, None]
    j = np.arange(kv_len)[None, :]
    mask = j <= p
    if window is not None:
        mask &= j > p - positive_int("window", window)
    return mask


def kv_head_of(heads: int, kv_heads: int) -> np.ndarray:
    """The K/V head each of ``heads`` query heads reads: ``h // (heads // kv_heads)``."""
    positive_int("heads", heads)
    positive_int("kv_heads", kv_heads)
    if heads % kv_heads:
        raise ValueError(f"heads ({heads}) must be a multiple of kv_heads, not {kv_heads}")
    return np.arange(heads) // (heads // kv_heads)


def stack_queries(q, kv_heads: int) -> np.ndarray:
    """``q (heads, q_len, …)`` as the engine takes it: per K/V head, its group's ``q_len·group`` rows
    position-major (row ``x`` is head ``x % group`` of the group at query ``x // group``), so a block
    of rows holds the group's heads at the same positions."""
    q = np.asarray(q)
    heads, q_len = q.shape[:2]
    group = heads // kv_heads
    kv_head_of(heads, kv_heads)
    return q.reshape(kv_heads, group, q_len, *q.shape[2:]).swapaxes(1, 2).reshape(kv_heads, q_len * group,
                                                                                   *q.shape[2:])


def unstack_queries(x, heads: int) -> np.ndarray:
    """Inverse of :func:`stack_queries`: ``(kv_heads, q_len·group, …)`` back to ``(heads, q_len, …)``."""
    x = np.asarray(x)
    kv_heads, rows = x.shape[:2]
    kv_head_of(heads, kv_heads)
    group = heads // kv_heads
    return x.reshape(kv_heads, rows // group, group, *x.shape[2:]).swapaxes(1, 2).reshape(heads, rows // group,
                                                                                         *x.shape[2:])


def _tensor(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"{name} must have shape (heads, length, d), not {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, not dtype {x.dtype}")
    if min(x.shape) < 1:
        raise ValueError(f"{name} must have at least one head, row and column, not shape {x.shape}")
    return x


def check_decoder_shapes(q, k, v) -> tuple[int, int, int, int]:
    """``(heads, kv_heads, q_len, kv_len)`` of ``q (heads, q_len, d)``, ``k, v (kv_heads, kv_len, d)``;
    ``ValueError`` naming the first inconsistency."""
    q, k, v = _tensor("q", q), _tensor("k", k), _tensor("v", v)
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, not {k.shape} and {v.shape}")
    if q.shape[2] != k.shape[2]:
        raise ValueError(f"q and k must have the same head dimension, not {q.shape[2]} and {k.shape[2]}")
    heads, q_len, kv_heads, kv_len = q.shape[0], q.shape[1], k.shape[0], k.shape[1]
    kv_head_of(heads, kv_heads)
    query_positions(q_len, kv_len)
    return heads, kv_heads, q_len, kv_len


def decoder_attention(q, k, v, *, window: int | None = None, scale: float | None = None,
                      nm: Numerics = Numerics(), key_tile: int | None = None, tile_order=None,
                      causal: bool = True) -> AttentionResult:
    """The integer contract for decoder attention: float ``q (heads, q_len, d)``, ``k, v (kv_heads, kv_len,
    d)`` quantized per tensor (section 1), each query head against its K/V head under the causal mask
    (``causal-window`` with ``window``; no mask with ``causal=False``, the dense pattern); keys in tiles
    of ``key_tile`` in ``tile_order`` (section 5).  The result's ``k_int`` and ``v_int`` are per query
    head (each K/V head repeated over its group).

    A tile whose keys are all masked for a row leaves that row unchanged (section 5), so the engine's
    skipping of tiles above the diagonal computes the same values as this model with every tile.
    """
    heads, kv_heads, q_len, kv_len = check_decoder_shapes(q, k, v)
    group = kv_head_of(heads, kv_heads)
    # Per-tensor scales are those of K and V as stored: repeating heads changes no maximum.
    k_heads, v_heads = np.asarray(k)[group], np.asarray(v)[group]
    if not causal and window is not None:
        raise ValueError("window applies to the causal pattern only")
    mask = causal_mask(q_len, kv_len, window=window) if causal else None
    return attention(q, k_heads, v_heads, scale=scale, nm=nm, mask=mask, key_tile=key_tile, tile_order=tile_order)


def decoder_attention_float(q, k, v, *, window: int | None = None, scale: float | None = None,
                            causal: bool = True) -> np.ndarray:
    """Float64 reference of a transformers decoder layer's attention core (no RoPE, no dropout): K and V
    repeated per group as ``repeat_kv`` does (expand, then merge the group into the head axis), the mask
    as ``causal_mask_function`` and ``sliding_window_overlay`` compose it at ``cache_position`` (none with
    ``causal=False``), then ``softmax(q kᵀ · scale) v``."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    heads, kv_heads, q_len, kv_len = check_decoder_shapes(q, k, v)
    n_rep = heads // kv_heads
    k = np.broadcast_to(k[:, None], (kv_heads, n_rep, kv_len, k.shape[-1])).reshape(heads, kv_len, -1)
    v = np.broadcast_to(v[:, None], (kv_heads, n_rep, kv_len, v.shape[-1])).reshape(heads, kv_len, -1)
    cache_position = np.arange(kv_len - q_len, kv_len)   # past_seen_tokens + arange(q_len)
    q_idx, kv_idx = cache_position[:, None], np.arange(kv_len)[None, :]
    allowed = kv_idx <= q_idx if causal else np.ones((q_len, kv_len), bool)
    if window is not None:
        allowed = allowed & (kv_idx > q_idx - window)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = np.where(allowed, np.matmul(q, np.swapaxes(k, -1, -2)) * scale, -np.inf)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return np.matmul(e / e.sum(axis=-1, keepdims=True), v)
