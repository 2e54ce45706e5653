"""Bit-exact model of the streaming softmax unit (``hdl/softmax.py``), beat for beat.

The unit sees the score matrix as a stream of *beats*: one beat is one key
tile of one query row (``lanes`` scores and their mask bits), tagged with the
row's slot in the unit's state memory and with ``first`` / ``last`` flags
that open and close the row.  For every beat it emits the tile's
unnormalized probabilities and the rescale factor of the row's output
accumulators (docs/numerics.md, section 5); for every ``last`` beat it emits
the row sum and its reciprocal (section 6).

Rows are independent, so the model processes the k-th beat of every row
together: the only Python loop is over beats within a row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed import wide
from .golden import Numerics, logits, online_step, reciprocal, rescale, rescale_factor

__all__ = ["SoftmaxBeats", "softmax_stream", "beats_from_logits"]


@dataclass
class SoftmaxBeats:
    """What the unit emits, in stream order.

    Per input beat (axis 0 of length ``beats``): ``probs`` (``beats × lanes``),
    ``scale_mant`` and ``scale_exp``.  Per ``last`` beat (in input order):
    ``sum_slot``, ``row_sum``, ``recip`` and ``recip_exp``.
    """
    probs: np.ndarray
    scale_mant: np.ndarray
    scale_exp: np.ndarray
    sum_slot: np.ndarray
    row_sum: np.ndarray
    recip: np.ndarray
    recip_exp: np.ndarray


def softmax_stream(score, mask, slot, first, last, *, mult: int, shift: int, nm: Numerics,
                   max_seq_len: int) -> SoftmaxBeats:
    """Run the unit's arithmetic over a stream of beats.

    Parameters
    ----------
    score : int array (beats, lanes)
        Raw scores ``S`` (section 2); the unit turns them into logits with ``mult`` and ``shift``.
    mask : bool array (beats, lanes)
        ``True`` where a score takes part.
    slot : int array (beats,)
        The row's slot in the state memory.
    first, last : bool arrays (beats,)
        ``first`` starts the row afresh (no maximum, zero sum); ``last`` ends it.
        A beat without ``first`` continues its slot's state.
    max_seq_len : int
        Sets the row sum's width; a sum that would not fit is a usage error of
        the caller (more than ``max_seq_len`` keys in a row) and is rejected.
    """
    score = np.asarray(score, np.int64)
    mask = np.asarray(mask, bool)
    slot = np.asarray(slot, np.int64)
    first = np.asarray(first, bool)
    last = np.asarray(last, bool)
    n_beats, lanes = score.shape
    t = logits(score, mult, shift, nm)

    # Position of every beat among the beats of its slot, so that wave k holds the
    # k-th beat of each slot and slots advance together.
    position = np.zeros(n_beats, np.int64)
    seen_count: dict[int, int] = {}
    for b, s in enumerate(slot.tolist()):
        position[b] = seen_count.get(s, 0)
        seen_count[s] = position[b] + 1

    sum_bits = nm.row_sum_width(max_seq_len)
    slots = np.unique(slot)
    index = np.searchsorted(slots, slot)
    row_max = np.zeros(len(slots), np.int64)
    seen = np.zeros(len(slots), bool)
    row_sum = wide(np.zeros(len(slots), np.int64), sum_bits + nm.prob_width + 1)
    probs = np.zeros((n_beats, lanes), np.int64)
    delta = np.zeros(n_beats, np.int64)
    sums = wide(np.zeros(n_beats, np.int64), sum_bits)
    for k in range(int(position.max(initial=-1)) + 1):
        beats = np.flatnonzero(position == k)
        rows = index[beats]
        fresh = first[beats]
        seen[rows] &= ~fresh
        row_sum[rows] = np.where(fresh, 0, row_sum[rows])
        new_max, new_seen, grow, p = online_step(row_max[rows], seen[rows], t[beats], mask[beats], nm)
        total = rescale(row_sum[rows], grow, nm) + wide(p.sum(axis=-1), sum_bits)
        if np.any(total >= (1 << sum_bits)):
            raise ValueError(f"a row sum passed {sum_bits} bits: more than max_seq_len = {max_seq_len} keys "
                             "in one row")
        row_max[rows], seen[rows], row_sum[rows] = new_max, new_seen, total
        probs[beats], delta[beats], sums[beats] = p, grow, total

    scale_mant, scale_exp = rescale_factor(delta, nm)
    ends = np.flatnonzero(last)
    recip, recip_exp = reciprocal(sums[ends].astype(np.int64), nm)
    return SoftmaxBeats(probs=probs, scale_mant=scale_mant, scale_exp=scale_exp, sum_slot=slot[ends],
                        row_sum=sums[ends].astype(np.int64), recip=recip, recip_exp=recip_exp)


def beats_from_logits(n_rows: int, n_keys: int, lanes: int, tile_order=None, *, interleave: bool = True):
    """The beat order an engine produces for ``n_rows`` query rows over ``n_keys`` keys.

    Keys are cut into tiles of ``lanes`` (the last one padded and masked);
    tiles are visited in ``tile_order``.  With ``interleave`` every tile is
    sent for all rows before the next tile (the order the systolic array
    drains ``Q·Kᵀ``), otherwise each row's tiles are sent together.

    Returns ``(row, tile, first, last)`` arrays, one entry per beat.
    """
    n_tiles = -(-n_keys // lanes)
    order = list(range(n_tiles)) if tile_order is None else [int(i) for i in tile_order]
    pairs = ([(r, i) for i in range(n_tiles) for r in range(n_rows)] if interleave else
             [(r, i) for r in range(n_rows) for i in range(n_tiles)])
    row = np.array([r for r, _ in pairs], np.int64)
    pos = np.array([i for _, i in pairs], np.int64)
    tile = np.array(order, np.int64)[pos]
    return row, tile, pos == 0, pos == n_tiles - 1
