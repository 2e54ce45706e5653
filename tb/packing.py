"""Packing of integer vectors into the flat words of Amaranth ``ArrayLayout`` ports.

Element ``i`` of an ``ArrayLayout(shape, n)`` occupies bits
``[i*width, (i+1)*width)``; signed elements are two's complement.  These
helpers move a whole row per call, vectorized over the row.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pack", "unpack", "Fields"]


def pack(values, width: int) -> int:
    """Pack a 1-D integer vector into one unsigned word (element 0 in the low bits)."""
    values = np.asarray(values, dtype=object)
    mask = (1 << width) - 1
    word = 0
    for v in values[::-1]:
        word = (word << width) | (int(v) & mask)
    return word


def unpack(word: int, count: int, width: int, signed: bool) -> np.ndarray:
    """Inverse of :func:`pack`: ``count`` elements of ``width`` bits as ``int64``."""
    mask = (1 << width) - 1
    raw = np.array([(word >> (i * width)) & mask for i in range(count)], dtype=object)
    if signed:
        raw = np.where(raw >= (1 << (width - 1)), raw - (1 << width), raw)
    return raw.astype(np.int64)


class Fields:
    """Packs and unpacks the fields of a ``StructLayout`` payload, given as ``(name, width)`` in order.

    A field's value may be a whole-row word from :func:`pack` (an ``ArrayLayout`` field).
    """

    def __init__(self, spec):
        self.spec = [(name, int(width)) for name, width in spec]
        self.width = sum(width for _, width in self.spec)

    def pack(self, **values) -> int:
        word, offset = 0, 0
        for name, width in self.spec:
            word |= (int(values.get(name, 0)) & ((1 << width) - 1)) << offset
            offset += width
        return word

    def unpack(self, word: int) -> dict:
        out, offset = {}, 0
        for name, width in self.spec:
            out[name] = (word >> offset) & ((1 << width) - 1)
            offset += width
        return out
