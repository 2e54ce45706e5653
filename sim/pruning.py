"""Cascade token and head pruning (SpAtten), bit-exact: what a pruned layer computes, keeps and fetches.

A layer takes the token list and head list its predecessor kept (default:
all), gathers exactly those rows of Q, K, V and those heads (the stream
source, a DMA, fetches nothing else), and runs attention over the gathered
sequence.  An importance run of the layer also ranks what it computed:
``select`` keeps the ``keep`` most important tokens (or heads), as the top-k
engine orders them (descending value, ties to the lower index), mapped back
to indices of the original sequence and sorted into sequence order for the
next layer.  No simulator is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .topk import topk

__all__ = ["parse_index_list", "check_index_list", "gather", "select", "Fetched", "fetched", "Layer", "check_layer",
           "pruned_layer"]


def parse_index_list(name: str, text: str) -> list[int]:
    """Indices from ``"I,J,..."`` (commas or whitespace); ``ValueError`` names ``name`` and the bad item."""
    items = [item for item in text.replace(",", " ").split() if item]
    if not items:
        raise ValueError(f"{name} must list at least one index, not {text!r}")
    out = []
    for item in items:
        try:
            out.append(int(item))
        except ValueError:
            raise ValueError(f"{name} must hold integers, not {item!r}") from None
    return out


def check_index_list(name: str, indices, bound: int, what: str) -> np.ndarray:
    """``indices`` as a sorted array, each in ``0 … bound − 1`` and none repeated."""
    arr = np.asarray(list(indices), np.int64)
    if arr.size == 0:
        raise ValueError(f"{name} must list at least one {what}")
    bad = arr[(arr < 0) | (arr >= bound)]
    if bad.size:
        raise ValueError(f"{name}: {what} {int(bad[0])} is outside 0 … {bound - 1}")
    values, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{name}: {what} {int(values[counts > 1][0])} is listed twice")
    return values


def gather(x: np.ndarray, tokens=None, heads=None) -> np.ndarray:
    """The rows ``tokens`` of heads ``heads`` of ``x`` (``(H, L, d)``), in ascending order."""
    x = np.asarray(x)
    if heads is not None:
        x = x[np.asarray(heads, np.int64)]
    if tokens is not None:
        x = x[:, np.asarray(tokens, np.int64)]
    return x


def select(importance, keep: int, original=None) -> np.ndarray:
    """The ``keep`` largest of ``importance`` (top-k order: ties to the lower index), as indices of
    ``original`` (default: positions), sorted ascending."""
    importance = np.asarray(importance, np.int64)
    if not 1 <= keep <= len(importance):
        raise ValueError(f"keep must be from 1 to {len(importance)} (what the layer computed), not {keep}")
    chosen, _ = topk(importance, keep)
    positions = np.sort(chosen)
    return positions if original is None else np.asarray(original, np.int64)[positions]


@dataclass
class Fetched:
    """Bytes the stream source reads for one run (docs/engine.md, *Pruning*)."""
    q: int
    k: int
    v: int

    @property
    def total(self) -> int:
        return self.q + self.k + self.v


def fetched(heads: int, seq_len: int, head_dim: int, rows: int, data_width: int, *, importance: bool = False,
            k_bits: int | None = None) -> Fetched:
    """What a dense run streams: Q once; K and V once per query block (scores never stay on chip,
    nor do keys), K twice in an importance run; K at ``k_bits`` per element when given."""
    blocks = -(-seq_len // rows)
    elements = heads * seq_len * head_dim
    k_bits = data_width if k_bits is None else k_bits
    return Fetched(q=elements * data_width // 8,
                   k=blocks * elements * (2 if importance else 1) * k_bits // 8,
                   v=blocks * elements * data_width // 8)


@dataclass
class Layer:
    """One pruned layer: what it computed, what it ranked and kept, what it fetched."""
    o: np.ndarray                       # (H', L', d) over the computed heads and tokens
    tokens: np.ndarray                  # original indices of the computed tokens
    heads: np.ndarray                   # original indices of the computed heads
    importance: np.ndarray | None       # per computed token (importance runs)
    head_importance: np.ndarray | None  # per computed head
    kept_tokens: np.ndarray | None      # the next layer's token list (token_keep)
    kept_heads: np.ndarray | None       # the next layer's head list (head_keep)
    fetched: Fetched


def check_layer(q_int, tokens=None, heads=None, token_keep=None, head_keep=None):
    """The token and head lists of a layer over ``q_int`` (``(H, L, d)``), checked with the keep counts."""
    n_heads, seq_len = np.asarray(q_int).shape[:2]
    tokens = np.arange(seq_len) if tokens is None else check_index_list("token list", tokens, seq_len, "token")
    heads = np.arange(n_heads) if heads is None else check_index_list("head list", heads, n_heads, "head")
    for name, keep, bound in (("token keep", token_keep, len(tokens)), ("head keep", head_keep, len(heads))):
        if keep is not None and not (isinstance(keep, (int, np.integer)) and 1 <= keep <= bound):
            raise ValueError(f"{name} must be from 1 to {bound} (what the layer computes), not {keep!r}")
    return tokens, heads


def pruned_layer(q_int, k_int, v_int, mult: int, shift: int, nm, rows: int, cols: int, *, tokens=None,
                 heads=None, token_keep=None, head_keep=None, importance: bool = False) -> Layer:
    """The golden model of a pruned layer on the engine (dense, ``rows`` × ``cols`` array).

    ``importance`` (implied by either keep count) makes it an importance run
    (:func:`attn_rtl.sim.engine_stream.ranked_output`); the keep counts then select
    the next layer's lists with :func:`select`.
    """
    from .engine_stream import engine_output, ranked_output

    q_int, k_int, v_int = (np.asarray(x, np.int64) for x in (q_int, k_int, v_int))
    tokens, heads = check_layer(q_int, tokens, heads, token_keep, head_keep)
    q, k, v = (gather(x, tokens, heads) for x in (q_int, k_int, v_int))
    ranked = importance or token_keep is not None or head_keep is not None
    token_imp = head_imp = kept_tokens = kept_heads = None
    if ranked:
        out = ranked_output(q, k, v, mult, shift, nm, cols)
        o, token_imp, head_imp = out.o, out.tokens, out.heads
        kept_tokens = None if token_keep is None else select(token_imp, token_keep, tokens)
        kept_heads = None if head_keep is None else select(head_imp, head_keep, heads)
    else:
        o = engine_output(q, k, v, mult, shift, nm, cols)
    return Layer(o=o, tokens=tokens, heads=heads, importance=token_imp, head_importance=head_imp,
                 kept_tokens=kept_tokens, kept_heads=kept_heads,
                 fetched=fetched(len(heads), len(tokens), q.shape[-1], rows, nm.data_width, importance=ranked))
