"""Progressive quantization (SpAtten), bit-exact: score with K's most significant bits, recompute the unsure rows.

A first run fetches only the ``msb_bits`` most significant bits of every K
element (the stream carries ``K`` floored to a multiple of ``2^(w − msb_bits)``)
and flags every query row whose largest probability
(:func:`attn_rtl.sim.golden.largest_probability`) is below ``threshold``; a second run
fetches K in full for the flagged rows only (per head, their queries against
all keys) and their outputs replace the first run's.  No simulator is imported
here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attn_rtl.params import int_in_range

from .engine_stream import engine_output, row_flags

__all__ = ["msb_only", "check_progressive", "ProgressiveLayer", "k_bytes", "progressive_layer"]


def msb_only(k_int, msb_bits: int, width: int) -> np.ndarray:
    """``K`` with its ``width − msb_bits`` least significant bits cleared (floor, two's complement)."""
    lsb = width - msb_bits
    return (np.asarray(k_int, np.int64) >> lsb) << lsb


def check_progressive(msb_bits, threshold, nm) -> None:
    """``ValueError`` naming the bad one: ``msb_bits`` in 1 … w − 1, ``threshold`` in 0 … 2^(P+1) − 1."""
    int_in_range("msb_bits", msb_bits, 1, nm.data_width - 1)
    int_in_range("threshold", threshold, 0, (1 << nm.prob_width) - 1)


def k_bytes(heads: int, query_len: int, seq_len: int, head_dim: int, rows: int, bits: int) -> int:
    """Bytes of K one dense run streams: all keys once per block of ``rows`` queries, ``bits`` each."""
    blocks = -(-query_len // rows)
    return -(-(heads * blocks * seq_len * head_dim * bits) // 8)


@dataclass
class ProgressiveLayer:
    o: np.ndarray              # (H, L, d): first-run rows, recomputed rows replaced
    flags: np.ndarray          # (H, L) bool: the rows recomputed
    k_bytes_fetched: int       # both runs
    k_bytes_full: int          # one run with K in full

    @property
    def recomputed_rows(self) -> int:
        return int(self.flags.sum())

    @property
    def recomputed_fraction(self) -> float:
        return self.recomputed_rows / self.flags.size


def progressive_layer(q_int, k_int, v_int, mult: int, shift: int, nm, rows: int, cols: int, *, msb_bits: int,
                      threshold: int) -> ProgressiveLayer:
    """The golden model of a progressive layer on the engine (dense, ``rows`` × ``cols`` array)."""
    check_progressive(msb_bits, threshold, nm)
    q, k, v = (np.asarray(x, np.int64) for x in (q_int, k_int, v_int))
    heads, seq_len, d = k.shape
    k_msb = msb_only(k, msb_bits, nm.data_width)
    o = engine_output(q, k_msb, v, mult, shift, nm, cols)
    flags = row_flags(q, k_msb, mult, shift, nm, cols, threshold)
    fetched = k_bytes(heads, seq_len, seq_len, d, rows, msb_bits)
    for h in range(heads):
        again = np.flatnonzero(flags[h])
        if again.size:
            o[h, again] = engine_output(q[h, again], k[h], v[h], mult, shift, nm, cols)
            fetched += k_bytes(1, again.size, seq_len, d, rows, nm.data_width)
    return ProgressiveLayer(o=o, flags=flags, k_bytes_fetched=fetched,
                            k_bytes_full=k_bytes(heads, seq_len, seq_len, d, rows, nm.data_width))
