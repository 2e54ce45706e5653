"""SALO's sliding-window (diagonal) tiling: each array row sees its own window.

In a diagonal tile of the ``rows``×``cols`` array, processing element ``(r, c)``
computes query ``queries[r]`` against key ``base + stride·(r + c)``: row ``r``
takes the keys of row 0 shifted by ``r``, so a row of queries ``q0, q0 + stride,
…`` each sees the same offsets of its own window, and neighbouring windows share
keys along the anti-diagonals (``r + c`` constant) instead of widening one tile
for all rows.  A tile needs ``rows + cols − 1`` keys (its *lanes*: lane ``u`` is
key ``base + stride·u``, the key of every element on anti-diagonal ``u``).

Patterns (docs/sparse.md has the rules):

``window`` (``stride`` 1)
    blocks of ``rows`` consecutive queries; a block's tiles start at
    ``q0 − ⌊w/2⌋ + cols·t``: every row's window in ``⌈(2⌊w/2⌋ + 1)/cols⌉`` tiles.
``dilated`` (``stride`` = the dilation δ)
    the window of the ``δ`` interleaved subsequences (the queries and keys of one
    residue modulo ``δ`` form a plain sliding window): blocks of ``rows`` queries of
    one residue, ``q0, q0 + δ, …``, tiles at ``q0 − δ·⌊w/2⌋ + δ·cols·t``.
``grid`` (raster order, ``stride`` 1)
    per window row ``dy``, tiles at ``q0 + dy·W − ⌊kw/2⌋ + cols·t``; a key past the
    image's left or right edge (it wraps into the neighbouring grid row) or
    outside the image is masked.

Tiles whose mask is empty (the window clipped at the sequence's or the image's
edge) are not computed.  **Global tokens** take no part in the diagonal tiles: a
global key's pairs are a global column (every query of a block against each
global key, one extra lane per global in the block's first tile), a global
query's row is masked here and computed against every key in dense tiles of
``cols`` consecutive keys (:attr:`DiagonalTiles.global_blocks`).  Every allowed
pair is computed exactly once (:func:`covered_pairs`; tests/test_sliding.py).

Nothing here imports a simulator or the hardware.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .golden import Numerics, logits, online_softmax_attention, scores
from .sparse import SparsePattern, allowed_mask, check_queries

__all__ = ["SLIDING_PATTERNS", "DiagonalTiles", "diagonal_tiles", "covered_pairs", "sliding_bound",
           "sliding_output"]

#: The patterns the diagonal tiling serves (dense runs keep their tiles).
SLIDING_PATTERNS = ("window", "dilated", "grid")


@dataclass
class DiagonalTiles:
    """The diagonal tiles of one head, in order (per query block, by window row and offset).

    ``queries[b, r]`` is the query of row ``r`` of block ``b`` (-1 past the end of a
    residue class); tile ``n`` belongs to block ``block[n]``, its element ``(r, c)``
    is key ``base[n] + stride·(r + c)`` and takes part where ``mask[n, r, c]``.
    ``lanes[n, u]`` is the key of lane ``u`` (``rows + cols − 1`` lanes) and
    ``keep[n, u]`` whether any element of that anti-diagonal takes part (a DMA
    fetches only those).  ``global_tokens`` are both the global column's keys
    (every other query of a block attends them, in its first tile) and the
    queries computed densely.
    """

    rows: int
    cols: int
    stride: int
    queries: np.ndarray        #: (blocks, rows)
    block: np.ndarray          #: (n,)
    base: np.ndarray           #: (n,)
    mask: np.ndarray           #: (n, rows, cols) bool
    global_tokens: tuple = ()

    def __len__(self) -> int:
        return len(self.block)

    @property
    def lanes(self) -> np.ndarray:
        return self.base[:, None] + self.stride * np.arange(self.rows + self.cols - 1)[None, :]

    @property
    def keep(self) -> np.ndarray:
        out = np.zeros((len(self), self.rows + self.cols - 1), bool)
        for r in range(self.rows):
            out[:, r:r + self.cols] |= self.mask[:, r, :]
        return out

    def keys(self) -> np.ndarray:
        """(n, rows, cols): the key of every element."""
        offset = np.arange(self.rows)[:, None] + np.arange(self.cols)[None, :]
        return self.base[:, None, None] + self.stride * offset[None]

    def global_tiles(self, seq_len: int) -> int:
        """Dense tiles of the global queries: ``⌈globals/rows⌉`` blocks of ``⌈L/cols⌉`` tiles."""
        return -(-len(self.global_tokens) // self.rows) * -(-seq_len // self.cols)


def _blocks(queries: int, rows: int, stride: int) -> np.ndarray:
    """Blocks of ``rows`` queries of one residue modulo ``stride``, residue by residue."""
    blocks = []
    for residue in range(min(stride, queries)):
        members = np.arange(residue, queries, stride)
        for at in range(0, len(members), rows):
            row = np.full(rows, -1, np.int64)
            row[:len(members[at:at + rows])] = members[at:at + rows]
            blocks.append(row)
    return np.array(blocks, np.int64).reshape(-1, rows)


def diagonal_tiles(pattern: SparsePattern, seq_len: int, rows: int, cols: int) -> DiagonalTiles:
    """The diagonal tiles of ``pattern`` over ``seq_len`` tokens on a ``rows``×``cols`` array."""
    if pattern.kind not in SLIDING_PATTERNS:
        raise ValueError(f"the sliding-window tiling serves the {', '.join(SLIDING_PATTERNS)} patterns, "
                         f"not {pattern.kind}")
    check_queries(pattern, seq_len)
    stride = pattern.dilation if pattern.kind == "dilated" else 1
    globals_ = tuple(int(g) for g in pattern.global_tokens)
    local = allowed_mask(replace(pattern, global_tokens=()), seq_len)
    is_global = np.zeros(seq_len, bool)
    is_global[list(globals_)] = True
    # Pairs with a global token belong to the global column or the global rows.
    local &= ~is_global[:, None] & ~is_global[None, :]
    queries = _blocks(seq_len, rows, stride)
    if pattern.kind == "grid":
        width, (kh, kw) = pattern.grid[1], pattern.window2d
        starts = [dy * width - kw // 2 for dy in range(-(kh // 2), kh // 2 + 1)]
        span = 2 * (kw // 2) + 1
    else:
        starts, span = [-stride * (pattern.window // 2)], 2 * (pattern.window // 2) + 1
    tiles_per_start = -(-span // cols)
    offset = stride * (np.arange(rows)[:, None] + np.arange(cols)[None, :])
    block, base, mask = [], [], []
    for b, members in enumerate(queries):
        q0 = members[0]
        real = members >= 0
        for start in starts:
            for t in range(tiles_per_start):
                s = q0 + start + stride * cols * t
                key = s + offset
                # Only the lanes of this start's span: past it a grid key wraps into the next window row,
                # which that row's own tiles compute.
                own = cols * t + np.arange(cols) < span
                inside = (key >= 0) & (key < seq_len) & real[:, None] & own[None, :]
                m = np.zeros((rows, cols), bool)
                rr, cc = np.nonzero(inside)
                m[rr, cc] = local[members[rr], key[rr, cc]]
                if m.any():
                    block.append(b)
                    base.append(s)
                    mask.append(m)
    return DiagonalTiles(rows=rows, cols=cols, stride=stride, queries=queries, block=np.array(block, np.int64),
                         base=np.array(base, np.int64), mask=np.array(mask, bool).reshape(-1, rows, cols),
                         global_tokens=globals_)


def covered_pairs(tiles: DiagonalTiles, seq_len: int) -> np.ndarray:
    """(L, L) int: how many times the tiles, the global column and the global rows compute each pair."""
    count = np.zeros((seq_len, seq_len), np.int64)
    keys = tiles.keys()
    n, r, c = np.nonzero(tiles.mask)
    np.add.at(count, (tiles.queries[tiles.block[n], r], keys[n, r, c]), 1)
    plain = np.setdiff1d(np.arange(seq_len), tiles.global_tokens)
    for g in tiles.global_tokens:
        count[plain, g] += 1
    for g in tiles.global_tokens:
        count[g, :] += 1
    return count


def sliding_bound(pattern: SparsePattern, seq_len: int, rows: int, cols: int) -> dict:
    """Tiles and utilization bounds of the diagonal tiling (the array never waits, each tile costs the
    same), allowed pairs over ``rows·cols`` MACs per tile:

    ``local_bound``
        the window's pairs over the diagonal tiles alone;
    ``bound``
        every allowed pair, the global rows in dense tiles of their own, the global column free (its
        pairs ride in each block's first tile);
    ``global_row_bound``
        the same with the global rows free as well (a global PE row beside the array, SALO's).
    """
    tiles = diagonal_tiles(pattern, seq_len, rows, cols)
    pairs = int(allowed_mask(pattern, seq_len).sum())
    local_pairs = int(tiles.mask.sum())
    dense = tiles.global_tiles(seq_len)
    macs = rows * cols
    return dict(tiles=len(tiles), global_tiles=dense, pairs=pairs, local_pairs=local_pairs,
                local_bound=local_pairs / (len(tiles) * macs), bound=pairs / ((len(tiles) + dense) * macs),
                global_row_bound=pairs / (len(tiles) * macs))


def sliding_output(q_int, k_int, v_int, mult: int, shift: int, nm: Numerics, tiles: DiagonalTiles) -> np.ndarray:
    """O (integers) of a diagonal run: per query, the online softmax over its keys tile by tile.

    A plain query's key tiles are its row of each diagonal tile of its block, in order, the first one
    widened by the global keys (the global column); a global query's tiles are the dense tiles of
    ``cols`` consecutive keys.  The arithmetic is :func:`attn_rtl.sim.golden.online_softmax_attention`'s,
    run per query on its own key order."""
    q = np.asarray(q_int, np.int64)
    k = np.asarray(k_int, np.int64)
    v = np.asarray(v_int, np.int64)
    if q.ndim == 2:
        q, k, v = q[None], k[None], v[None]
    heads, seq_len, _ = q.shape
    t = logits(scores(q, k), mult, shift, nm)
    o = np.zeros(q.shape[:2] + v.shape[2:], np.int64)
    width = tiles.cols + len(tiles.global_tokens)
    keys = tiles.keys()
    for b, members in enumerate(tiles.queries):
        mine = np.flatnonzero(tiles.block == b)
        for r, query in enumerate(members):
            if query < 0 or query in tiles.global_tokens:
                continue
            # (tiles, width) keys and masks: the row's cols keys, then the global lanes (first tile only).
            order = np.zeros((len(mine), width), np.int64)
            ok = np.zeros((len(mine), width), bool)
            inside = (keys[mine, r] >= 0) & (keys[mine, r] < seq_len)
            order[:, :tiles.cols] = np.where(inside, keys[mine, r], 0)
            ok[:, :tiles.cols] = tiles.mask[mine, r]
            order[0, tiles.cols:] = tiles.global_tokens   # a plain row's block has a tile: its own pair
            ok[0, tiles.cols:] = True
            flat, flat_ok = order.reshape(-1), ok.reshape(-1)
            row, _ = online_softmax_attention(t[:, query, flat][:, None, :], v[:, flat], nm, key_tile=width,
                                               mask=flat_ok[None, :])
            o[:, query] = row[:, 0]
    for g in tiles.global_tokens:
        row, _ = online_softmax_attention(t[:, g][:, None, :], v, nm, key_tile=tiles.cols)
        o[:, g] = row[:, 0]
    return o
