"""Bit-exact model of the fused engine at its ports: the beats it takes and the beats it sends.

The order is the one docs/engine.md specifies (and ``hdl/engine.py``
implements): per head and per block of ``rows`` queries, Q as ``d``
columns of the block, K as ``d`` columns of every key tile of ``cols`` keys,
V as the rows of every key tile once per chunk of ``cols`` output columns,
and O per chunk, per row of the block.  The numbers are those of
:func:`attn_rtl.sim.golden.online_softmax_attention` with key tiles of ``cols``.
No simulator is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .golden import Numerics, largest_probability, logits, online_softmax_attention, ranked_attention, scores

__all__ = ["EngineBeats", "engine_beats", "engine_output", "RankedOutput", "ranked_output", "importance_beats",
           "row_flags", "flag_beats", "output_beats", "output_from_beats", "useful_macs"]


def _heads(x) -> np.ndarray:
    x = np.asarray(x, np.int64)
    return x[None] if x.ndim == 2 else x


@dataclass
class EngineBeats:
    """Input beats in stream order (one row per beat)."""
    q: np.ndarray   # (beats, rows)
    k: np.ndarray   # (beats, cols)
    v: np.ndarray   # (beats, cols)


def engine_beats(q_int, k_int, v_int, rows: int, cols: int, schedule=None, *, importance: bool = False) -> EngineBeats:
    """The Q, K and V beats of a run over ``q_int, k_int, v_int`` ((L, d) or (H, L, d)).

    ``schedule`` (:func:`attn_rtl.sim.sparse.scheduled_tiles` for one head) lists the
    key tiles each query block computes, the same for every head; default:
    every tile of ``cols`` consecutive keys.  Lanes past the sequence, the
    tile's ``count`` or the head dimension are sent as 0.  An ``importance``
    run (dense) takes every block's K tiles twice: the scan pass, then the
    computing pass with its V.
    """
    q, k, v = _heads(q_int), _heads(k_int), _heads(v_int)
    heads, query_len, d = q.shape
    seq_len = k.shape[1]
    blocks, chunks = -(-query_len // rows), -(-d // cols)
    keys, count = _tiles(schedule, seq_len, rows, cols, query_len)
    qp = np.zeros((heads, blocks * rows, d), np.int64)
    qp[:, :query_len] = q
    q_beats = qp.reshape(heads, blocks, rows, d).transpose(0, 1, 3, 2).reshape(-1, rows)

    # Key seq_len is a row of zeros: the lanes past a tile's count read it.
    lanes = np.where(np.arange(cols)[None, :] < count[:, None], keys, seq_len)
    kz = np.zeros((heads, seq_len + 1, d), np.int64)
    kz[:, :seq_len] = k
    if importance:
        if schedule is not None:
            raise ValueError("an importance run takes the dense pattern only")
        per_block = lanes.reshape(blocks, -1, cols)
        lanes = np.concatenate([per_block, per_block], axis=1).reshape(-1, cols)
    k_beats = kz[:, lanes].transpose(0, 1, 3, 2).reshape(-1, cols)            # (H, n, d, C) -> beats
    vz = np.zeros((heads, seq_len + 1, chunks * cols), np.int64)
    vz[:, :seq_len, :d] = v
    # V of a tile: per chunk, one beat per key of the tile.
    v_beats = np.concatenate([vz[h, keys[t, :count[t]]].reshape(-1, chunks, cols).transpose(1, 0, 2).reshape(-1, cols)
                              for h in range(heads) for t in range(len(keys))])
    return EngineBeats(q=q_beats, k=k_beats, v=v_beats)


def _tiles(schedule, seq_len: int, rows: int, cols: int, query_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(keys (n, cols), count (n,))`` of every key tile of one head, in order (dense: every
    block of ``query_len`` queries, default ``seq_len``, takes every tile of ``seq_len`` keys)."""
    if schedule is not None:
        return np.asarray(schedule.keys, np.int64), np.asarray(schedule.count, np.int64)
    query_len = seq_len if query_len is None else query_len
    blocks, tiles = -(-query_len // rows), -(-seq_len // cols)
    starts = np.tile(np.arange(tiles) * cols, blocks)
    keys = starts[:, None] + np.arange(cols)[None, :]
    count = np.minimum(cols, seq_len - starts)
    return np.where(keys < seq_len, keys, 0), count


def engine_output(q_int, k_int, v_int, mult: int, shift: int, nm: Numerics, cols: int, mask=None,
                  schedule=None, rows: int | None = None) -> np.ndarray:
    """O (integers) as the engine computes it.

    Without ``schedule``: key tiles of ``cols`` consecutive keys in ascending
    order, ``mask`` (``(Lq, L)`` bool, :func:`attn_rtl.sim.sparse.allowed_mask`) the pairs
    that take part (default all).  With ``schedule``
    (:func:`attn_rtl.sim.sparse.scheduled_tiles` for one head, query blocks of ``rows``):
    each block's online softmax runs over its gathered key tiles in order,
    the lanes past a tile's ``count`` masked.
    """
    q, k, v = _heads(q_int), _heads(k_int), _heads(v_int)
    t = logits(scores(q, k), mult, shift, nm)
    if schedule is None:
        o_int, _ = online_softmax_attention(t, v, nm, key_tile=cols, mask=mask)
        return o_int
    query_len = q.shape[1]
    allowed = np.ones((query_len, k.shape[1]), bool) if mask is None else np.asarray(mask, bool)
    o_int = np.zeros(q.shape[:2] + v.shape[2:], np.int64)
    for block, keys in schedule.blocks():
        queries = slice(block * rows, min((block + 1) * rows, query_len))
        # Pad every tile to cols lanes with a masked key so that tiles keep their boundaries.
        tiles = [keys[at:at + cols] for at in range(0, len(keys), cols)]
        order = np.concatenate([np.r_[tile, np.zeros(cols - len(tile), np.int64)] for tile in tiles])
        real = np.concatenate([np.arange(cols) < len(tile) for tile in tiles])
        block_mask = allowed[queries][:, order] & real[None, :]
        o_int[:, queries], _ = online_softmax_attention(t[:, queries][:, :, order], v[:, order], nm, key_tile=cols,
                                                        mask=block_mask)
    return o_int


@dataclass
class RankedOutput:
    """What an importance run sends: O, and the importance of every key and every head."""
    o: np.ndarray            # (H, L, d)
    tokens: np.ndarray       # (L,): summed over heads and queries
    heads: np.ndarray        # (H,)


def ranked_output(q_int, k_int, v_int, mult: int, shift: int, nm: Numerics, cols: int) -> RankedOutput:
    """O and importances of an importance run (dense, key tiles of ``cols``; docs/numerics.md, section 6)."""
    q, k, v = _heads(q_int), _heads(k_int), _heads(v_int)
    t = logits(scores(q, k), mult, shift, nm)
    o_int, per_head = ranked_attention(t, v, nm, key_tile=cols)
    return RankedOutput(o=o_int, tokens=per_head.sum(axis=0), heads=np.abs(o_int).sum(axis=(1, 2)))


def importance_beats(tokens, cols: int) -> np.ndarray:
    """Token importance words in stream order: ``ceil(L / cols)`` beats of ``cols`` lanes, padding 0."""
    tokens = np.asarray(tokens, np.int64)
    words = -(-len(tokens) // cols)
    padded = np.zeros(words * cols, np.int64)
    padded[:len(tokens)] = tokens
    return padded.reshape(words, cols)


def row_flags(q_int, k_int, mult: int, shift: int, nm: Numerics, cols: int, threshold: int) -> np.ndarray:
    """``(H, Lq)`` bool: rows whose largest probability (dense, key tiles of ``cols``) is below
    ``threshold`` (``P`` fraction bits; :func:`attn_rtl.sim.golden.largest_probability`)."""
    q, k = _heads(q_int), _heads(k_int)
    t = logits(scores(q, k), mult, shift, nm)
    _, state = online_softmax_attention(t, np.zeros(k.shape[:2] + (1,), np.int64), nm, key_tile=cols)
    return largest_probability(state.reciprocal, state.exponent, nm) < threshold


def flag_beats(flags, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-flag beats in stream order: per head, per block, an int with bit ``r`` for row ``r``;
    and ``last`` (the run's final beat)."""
    flags = np.asarray(flags, bool)
    heads, query_len = flags.shape
    blocks = -(-query_len // rows)
    padded = np.zeros((heads, blocks * rows), np.int64)
    padded[:, :query_len] = flags
    words = (padded.reshape(heads, blocks, rows) << np.arange(rows)).sum(axis=-1).reshape(-1)
    return words, np.arange(len(words)) == len(words) - 1


def output_beats(o_int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """O beats in stream order: ``(data (beats, cols), last (beats,))``; lanes past ``d`` are 0."""
    o = _heads(o_int)
    heads, seq_len, d = o.shape
    chunks = -(-d // cols)
    op = np.zeros((heads, seq_len, chunks * cols), np.int64)
    op[:, :, :d] = o
    data, last = [], []
    for h in range(heads):
        for qb in range(0, seq_len, rows):
            block = op[h, qb:qb + rows].reshape(-1, chunks, cols).transpose(1, 0, 2).reshape(-1, cols)
            data.append(block)
            flags = np.zeros(len(block), bool)
            flags[-1] = True
            last.append(flags)
    return np.concatenate(data), np.concatenate(last)


def output_from_beats(data, heads: int, seq_len: int, head_dim: int, rows: int, cols: int) -> np.ndarray:
    """Inverse of :func:`output_beats`: O of shape ``(heads, seq_len, head_dim)`` from its beats."""
    data = np.asarray(data, np.int64)
    chunks = -(-head_dim // cols)
    o = np.zeros((heads, seq_len, chunks * cols), np.int64)
    at = 0
    for h in range(heads):
        for qb in range(0, seq_len, rows):
            n = min(rows, seq_len - qb)
            block = data[at:at + n * chunks].reshape(chunks, n, cols)
            o[h, qb:qb + n] = block.transpose(1, 0, 2).reshape(n, chunks * cols)
            at += n * chunks
    return o[:, :, :head_dim]


def useful_macs(heads: int, seq_len: int, head_dim: int, pairs: int | None = None) -> int:
    """Multiply-accumulates attention needs: ``d`` per allowed (query, key) pair for Q·Kᵀ and as
    many for P·V, per head; ``pairs`` defaults to ``L·L`` (dense)."""
    pairs = seq_len * seq_len if pairs is None else pairs
    return 2 * heads * pairs * head_dim
