"""Golden model of the top-k engine (hdl/topk.py): the k largest values, ties to the lower index."""

from __future__ import annotations

import numpy as np

__all__ = ["topk"]


def topk(values, k: int, keep=None) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest of ``values``, largest first, ties by lower index.

    ``keep`` (bool, same length) drops values from the candidates; fewer
    than ``k`` candidates gives them all.  Returns ``(indices, values)`` as
    ``int64`` arrays.
    """
    values = np.asarray(values, dtype=np.int64)
    if values.ndim != 1:
        raise ValueError(f"values must be a 1-D array, not shape {values.shape}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, not {k!r}")
    index = np.arange(values.size) if keep is None else np.flatnonzero(np.asarray(keep, dtype=bool))
    # lexsort sorts by the last key first: value descending, then index ascending.
    order = index[np.lexsort((index, -values[index]))][:k]
    return order.astype(np.int64), values[order]

