"""Golden model of the systolic MAC array: integer matrix product, optionally saturating per step."""

from __future__ import annotations

import numpy as np

from .fixed import saturate

__all__ = ["matmul"]


def matmul(a: np.ndarray, b: np.ndarray, acc_width: int, acc_signed: bool = True) -> np.ndarray:
    """``C = A·B`` as the array computes it with a ``acc_width``-bit accumulator.

    Every partial sum is clipped to the accumulator's range, in reduction
    order: ``acc_k = clip(acc_(k-1) + A[:, k] B[k, :])``.  When the width holds
    every partial sum this is the exact product.
    """
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    if a.shape[-1] != b.shape[0]:
        raise ValueError(f"A is {a.shape} but B is {b.shape}: reduction lengths differ")
    exact = a @ b
    lo, hi = (-(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1) if acc_signed else (0, (1 << acc_width) - 1)
    partial = np.cumsum(a[:, :, None] * b[None, :, :], axis=1)  # (rows, K, cols): partial sums in order
    if partial.size == 0 or (partial.min() >= lo and partial.max() <= hi):
        return exact
    acc = np.zeros((a.shape[0], b.shape[1]), np.int64)
    for k in range(a.shape[1]):
        acc = saturate(acc + np.outer(a[:, k], b[k, :]), acc_width, acc_signed)
    return acc
