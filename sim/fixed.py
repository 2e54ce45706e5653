"""Fixed-point primitives shared by every golden model.

Each function is one named rounding or saturation step of docs/numerics.md,
vectorized over numpy integer arrays.  Integers are carried as ``int64``;
callers that could exceed 62 bits ask :func:`wide` for object arrays of
Python integers instead, so no step ever wraps silently.
"""

from __future__ import annotations

import numpy as np

from attn_rtl.numerics import clog2  # noqa: F401 (one of the helpers golden models take from here)

__all__ = [
    "clog2", "signed_range", "unsigned_range", "saturate", "shift_floor",
    "shift_round_half_even", "bit_length", "wide", "quantize", "dequantize", "symmetric_scale",
]


def signed_range(width: int) -> tuple[int, int]:
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


def unsigned_range(width: int) -> tuple[int, int]:
    return 0, (1 << width) - 1


def saturate(x, width: int, signed: bool = True):
    """Clip ``x`` to the range of a ``width``-bit integer (numerics.md: *saturate*)."""
    lo, hi = signed_range(width) if signed else unsigned_range(width)
    return np.clip(x, lo, hi)


def shift_floor(x, s):
    """``floor(x / 2**s)``: an arithmetic shift right (numerics.md: *floor*).

    ``s`` may be an array; it must be non-negative.
    """
    return x >> s


def shift_round_half_even(x, s):
    """``x / 2**s`` rounded to nearest, ties to even (numerics.md: *round-half-even*).

    ``s`` (scalar or array broadcasting against ``x``) must be at least 1.
    """
    x = np.asarray(x)
    s = np.asarray(s, dtype=x.dtype)
    q = x >> s
    rem = x - (q << s)
    half = np.asarray(1, dtype=x.dtype) << (s - 1)
    up = (rem > half) | ((rem == half) & ((q & 1) == 1))
    return q + up.astype(x.dtype)


def bit_length(x):
    """Element-wise ``int.bit_length`` of a non-negative integer array."""
    x = np.asarray(x)
    if x.dtype != object and (x.size == 0 or int(x.max()) < (1 << 53)):
        # Integers below 2**53 convert to float64 exactly, so frexp is exact.
        return np.where(x > 0, np.frexp(x.astype(np.float64))[1], 0).astype(np.int64)
    return np.frompyfunc(lambda v: int(v).bit_length(), 1, 1)(x).astype(np.int64)


def wide(x, bits: int):
    """Return ``x`` in a dtype that holds ``bits``-bit signed values exactly."""
    x = np.asarray(x)
    if bits <= 63:
        return x.astype(np.int64)
    return x.astype(object)


def symmetric_scale(x: np.ndarray, width: int) -> float:
    """Per-tensor symmetric scale: ``max|x| / (2**(width-1) - 1)``, 1.0 for an all-zero tensor."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not np.isfinite(peak):
        raise ValueError("tensor holds a non-finite value (inf or nan)")
    return peak / ((1 << (width - 1)) - 1) if peak > 0 else 1.0


def quantize(x: np.ndarray, scale: float, width: int) -> np.ndarray:
    """``saturate(round_half_even(x / scale))`` as ``int64`` (numerics.md, section 1)."""
    return saturate(np.rint(np.asarray(x, dtype=np.float64) / scale), width).astype(np.int64)


def dequantize(x_int: np.ndarray, scale: float) -> np.ndarray:
    return np.asarray(x_int, dtype=np.float64) * scale
