"""Bit-exact model of the output accumulator's streams (docs/numerics.md, sections 5 and 6).

The accumulator takes P·V partial sums beat by beat (one row of one column chunk of a key tile,
with the factor by which that row's accumulators are rescaled first) and, on a row's last key
tile, normalizes the accumulators with the row's reciprocal.  This model follows the beats in
stream order with a dictionary of accumulators per (row, chunk) word; it uses only the contract's
helpers (:func:`~attn_rtl.sim.fixed.shift_floor`, :func:`~attn_rtl.sim.golden.normalize`), never the
hardware.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .fixed import shift_floor
from .golden import Numerics, normalize

__all__ = ["AccumulatorBeats", "AccumulatorOutput", "accumulator_stream"]


@dataclass
class AccumulatorBeats:
    """The beats of a ``partials`` stream, one entry per beat (``data`` one row of ``lanes`` per beat)."""
    data: np.ndarray
    row: np.ndarray
    chunk: np.ndarray
    first: np.ndarray
    last: np.ndarray
    chunk_last: np.ndarray
    scale_mant: np.ndarray
    scale_exp: np.ndarray
    lanes_valid: np.ndarray
    emit: np.ndarray
    block_end: np.ndarray
    run_end: np.ndarray

    def __len__(self) -> int:
        return len(self.row)

    def take(self, index) -> "AccumulatorBeats":
        """The beats at ``index`` (a slice, or an array of indices in the order wanted)."""
        return AccumulatorBeats(**{f.name: np.asarray(getattr(self, f.name))[index] for f in fields(self)})

    @staticmethod
    def concatenate(parts) -> "AccumulatorBeats":
        """The beats of ``parts`` one after the other."""
        return AccumulatorBeats(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                                   for f in fields(AccumulatorBeats)})


@dataclass
class AccumulatorOutput:
    """The ``out`` stream: one beat per emitting last beat, in stream order."""
    data: np.ndarray      # (beats, lanes) signed data_width
    last: np.ndarray      # the beat's block_end
    run_end: np.ndarray


def accumulator_stream(beats: AccumulatorBeats, recip, recip_exp, *, rows: int, nm: Numerics,
                       acc_width: int) -> AccumulatorOutput:
    """What the accumulator sends for ``beats`` with reciprocals ``(recip, recip_exp)`` (one per row
    of each block, in row order: block ``b``'s row ``r`` is entry ``b · rows + r``).

    A block ends with the beat that is ``last`` and ``chunk_last`` for row ``rows - 1``.  Raises
    ``ValueError`` when an accumulator leaves the signed ``acc_width``-bit range (the contract sizes
    it so that a real stream cannot), or a block has no reciprocals.
    """
    P = nm.prob_frac_bits
    lo, hi = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
    recip, recip_exp = np.asarray(recip, np.int64), np.asarray(recip_exp, np.int64)
    words: dict[tuple[int, int], np.ndarray] = {}
    out, out_last, out_run_end = [], [], []
    block = 0
    for b in range(len(beats)):
        key = (int(beats.row[b]), int(beats.chunk[b]))
        partial = np.asarray(beats.data[b], np.int64)
        old = np.zeros_like(partial) if beats.first[b] else words[key]
        # A shift past the product's width gives 0 or -1 whatever its count (as in golden.rescale).
        scaled = shift_floor(old * np.int64(beats.scale_mant[b]), np.int64(min(P + int(beats.scale_exp[b]), 62)))
        new = scaled + partial
        if new.min() < lo or new.max() > hi:
            raise ValueError(f"beat {b}: an accumulator left the {acc_width}-bit range ({new.min()}, {new.max()})")
        words[key] = new
        if beats.last[b]:
            slot = block * rows + key[0]
            if slot >= len(recip):
                raise ValueError(f"beat {b}: block {block} row {key[0]} has no reciprocal")
            o = normalize(new[None, :], recip[slot:slot + 1], recip_exp[slot:slot + 1], nm, nm.data_width)[0]
            o[int(beats.lanes_valid[b]):] = 0
            if beats.emit[b]:
                out.append(o)
                out_last.append(int(beats.block_end[b]))
                out_run_end.append(int(beats.run_end[b]))
            if beats.chunk_last[b] and key[0] == rows - 1:
                block += 1
    lanes = np.asarray(beats.data).shape[1] if len(beats) else 0
    return AccumulatorOutput(data=np.array(out, np.int64).reshape(-1, lanes),
                             last=np.array(out_last, np.int64), run_end=np.array(out_run_end, np.int64))
