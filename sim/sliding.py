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
edge) are not computed.  **Global tokens** leave the window tiles (a pair with a
global token is masked there).  A global *key* rides in the last column of a
tile whose last column lies past the window's span (every row's element there
is masked anyway): that column then takes the global key instead of its lane,
so every plain query of the block meets it at no extra tile (global ``k`` of a
block in its ``k``-th such tile with a window element; a block short of them gets
tiles of its own).
Global *queries* form blocks of their own after the others (``global_block``),
whose diagonal tiles at ``base = cols·t − (rows − 1)``, stride 1, give every row
every key once; or, with a **global row** (``global_row``: SALO's global PE row
beside the array, for up to that many global queries), they have no tiles: the
row takes each key from the one tile that holds it against itself (every plain
key is its own query's, on the tile's *self column*) and each global key from
the global column of the head's first block, ``rows + 1`` keys a tile at most
(:meth:`DiagonalTiles.row_keys`).  Every allowed pair is computed exactly once
(:func:`covered_pairs`; tests/test_sliding.py).

Nothing here imports a simulator or the hardware.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .golden import Numerics, logits, online_softmax_attention, scores
from .sparse import SparsePattern, allowed_mask, check_queries

__all__ = ["SLIDING_PATTERNS", "DiagonalTiles", "diagonal_tiles", "uses_global_row", "output_blocks", "covered_pairs",
           "sliding_bound", "output_from_beats", "sliding_output", "SlidingBeats", "computed_rows", "sliding_beats"]

#: The patterns the diagonal tiling serves (dense runs keep their tiles).
SLIDING_PATTERNS = ("window", "dilated", "grid")


@dataclass
class DiagonalTiles:
    """The diagonal tiles of one head, in order (per query block, by window row and offset).

    ``queries[b, r]`` is the query of row ``r`` of block ``b`` (-1 past the end of a
    residue class); the blocks flagged ``global_block`` (after the others) hold the
    global queries.  Tile ``n`` belongs to block ``block[n]``; its element ``(r, c)``
    is key ``base[n] + step[n]·(r + c)`` (``step``: the stride, 1 in global blocks)
    and takes part where ``mask[n, r, c]``, except that where ``global_key[n] >= 0``
    the last column is the global key ``global_tokens[global_key[n]]`` instead.
    ``lanes[n, u]`` is the key of lane ``u`` (``rows + cols − 1`` lanes) and
    ``keep[n, u]`` whether any element of that anti-diagonal takes part (a DMA
    fetches only those; the global key is one lane more).
    """

    rows: int
    cols: int
    stride: int
    queries: np.ndarray        #: (blocks, rows)
    global_block: np.ndarray   #: (blocks,) bool
    block: np.ndarray          #: (n,)
    base: np.ndarray           #: (n,)
    step: np.ndarray           #: (n,)
    mask: np.ndarray           #: (n, rows, cols) bool
    global_key: np.ndarray     #: (n,) index into global_tokens, or -1
    global_tokens: tuple = ()
    #: The global queries are the global row's (their blocks have no tiles).
    global_row: bool = False

    def __len__(self) -> int:
        return len(self.block)

    @property
    def lanes(self) -> np.ndarray:
        return self.base[:, None] + self.step[:, None] * np.arange(self.rows + self.cols - 1)[None, :]

    @property
    def diagonal_mask(self) -> np.ndarray:
        """The elements that take their lane's key (the mask less the global column)."""
        out = self.mask.copy()
        out[self.global_key >= 0, :, self.cols - 1] = False
        return out

    @property
    def keep(self) -> np.ndarray:
        out = np.zeros((len(self), self.rows + self.cols - 1), bool)
        mask = self.diagonal_mask
        for r in range(self.rows):
            out[:, r:r + self.cols] |= mask[:, r, :]
        return out

    def keys(self) -> np.ndarray:
        """(n, rows, cols): the key of every element."""
        offset = np.arange(self.rows)[:, None] + np.arange(self.cols)[None, :]
        keys = self.base[:, None, None] + self.step[:, None, None] * offset[None]
        carrying = np.flatnonzero(self.global_key >= 0)
        keys[carrying, :, self.cols - 1] = np.asarray(self.global_tokens, np.int64)[self.global_key[carrying], None]
        return keys

    @property
    def self_rows(self) -> np.ndarray:
        """(n, rows) bool: row ``r`` of plain tile ``n`` holds its query against itself (its key is new to
        the global row there: each plain key is computed against itself once)."""
        mine = (self.diagonal_mask & (self.keys() == self.queries[self.block][:, :, None])).any(axis=2)
        return mine & ~self.global_block[self.block][:, None]

    @property
    def self_column(self) -> np.ndarray:
        """(n,) the column of a tile's self elements, ``(q0 − base)/stride`` when that is one of the tile's
        columns, else -1 (every self element of a tile lies in it: lane ``r + c`` is ``q0 + s·r`` there)."""
        q0 = self.queries[self.block, 0]
        column = (q0 - self.base) // self.step
        exact = (q0 - self.base) % self.step == 0
        return np.where(exact & (column >= 0) & (column < self.cols), column, -1)

    @property
    def global_owner(self) -> np.ndarray:
        """(n,) bool: the tile's global key is new to the global row (a global column of the head's first
        block, which carries each global key once)."""
        if not len(self):
            return np.zeros(0, bool)
        return (self.global_key >= 0) & (self.block == self.block[0])

    def row_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, ok)``, each (n, rows + 1): the keys the global row takes from each tile, in its lanes:
        lane ``r < rows`` row ``r``'s own query (the tile's lane ``self_column + r``) where ``self_rows``,
        lane ``rows`` the global key where ``global_owner``; ``keys`` 0 where not ``ok``."""
        ok = np.concatenate([self.self_rows, self.global_owner[:, None]], axis=1)
        tokens = np.asarray(self.global_tokens + (0,), np.int64)
        keys = np.concatenate([self.queries[self.block], tokens[self.global_key][:, None]], axis=1)
        return np.where(ok, keys, 0), ok

    @property
    def global_tiles(self) -> int:
        """Tiles of the global queries' blocks."""
        return int(self.global_block[self.block].sum()) if len(self) else 0


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


def uses_global_row(pattern: SparsePattern, seq_len: int, global_row: int) -> bool:
    """Whether a global row serving ``global_row`` global queries takes this run's: it has global tokens,
    no more than that, and a plain query (whose tiles bring the keys)."""
    globals_ = set(int(g) for g in pattern.global_tokens)
    return 0 < len(globals_) <= global_row and len(globals_) < seq_len


def diagonal_tiles(pattern: SparsePattern, seq_len: int, rows: int, cols: int, *,
                   global_row: int = 0) -> DiagonalTiles:
    """The diagonal tiles of ``pattern`` over ``seq_len`` tokens on a ``rows``×``cols`` array; with a
    global row serving ``global_row`` global queries (:func:`uses_global_row`), the global queries' blocks
    have no tiles."""
    if not isinstance(global_row, int) or isinstance(global_row, bool) or global_row < 0:
        raise ValueError(f"global_row must be a non-negative integer, not {global_row!r}")
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
    block, base, step, mask, carries = [], [], [], [], []

    def add(b, s, st, m, g=-1):
        block.append(b)
        base.append(s)
        step.append(st)
        mask.append(m)
        carries.append(g)

    for b, members in enumerate(queries):
        q0 = members[0]
        real = members >= 0
        plain = real & ~is_global[np.maximum(members, 0)]
        pending = list(range(len(globals_))) if plain.any() else []
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
                g = -1
                if pending and not own[cols - 1] and m.any():
                    g = pending.pop(0)
                    m[:, cols - 1] = plain
                if m.any():
                    add(b, s, stride, m, g)
        for g in pending:   # the block's tiles had too few free last columns
            m = np.zeros((rows, cols), bool)
            m[:, cols - 1] = plain
            add(b, q0, stride, m, g)
    regular = len(queries)
    row = uses_global_row(pattern, seq_len, global_row)
    global_rows = [list(globals_[at:at + rows]) for at in range(0, len(globals_), rows)]
    for chunk in global_rows:
        members = np.full(rows, -1, np.int64)
        members[:len(chunk)] = chunk
        queries = np.vstack([queries, members[None]])
        key_offset = np.arange(rows)[:, None] + np.arange(cols)[None, :]
        for t in range(0 if row else -(-(seq_len + rows - 1) // cols)):
            s = cols * t - (rows - 1)
            key = s + key_offset
            m = (key >= 0) & (key < seq_len) & (members >= 0)[:, None]
            if m.any():
                add(len(queries) - 1, s, 1, m)
    is_global_block = np.arange(len(queries)) >= regular
    return DiagonalTiles(rows=rows, cols=cols, stride=stride, queries=queries, global_block=is_global_block,
                         block=np.array(block, np.int64), base=np.array(base, np.int64),
                         step=np.array(step, np.int64), mask=np.array(mask, bool).reshape(-1, rows, cols),
                         global_key=np.array(carries, np.int64), global_tokens=globals_, global_row=row)


def covered_pairs(tiles: DiagonalTiles, seq_len: int) -> np.ndarray:
    """(L, L) int: how many times the tiles (and the global row) compute each pair."""
    count = np.zeros((seq_len, seq_len), np.int64)
    keys = tiles.keys()
    n, r, c = np.nonzero(tiles.mask)
    np.add.at(count, (tiles.queries[tiles.block[n], r], keys[n, r, c]), 1)
    if tiles.global_row:
        row_keys, ok = tiles.row_keys()
        for g in tiles.global_tokens:
            np.add.at(count[g], row_keys[ok], 1)
    return count


def sliding_bound(pattern: SparsePattern, seq_len: int, rows: int, cols: int) -> dict:
    """Tiles and utilization bounds of the diagonal tiling (the array never waits, each tile costs the
    same), allowed pairs over ``rows·cols`` MACs per tile:

    ``local_bound``
        the window's pairs over the diagonal tiles of the pattern without its global tokens;
    ``bound``
        every allowed pair over every tile (the global keys in free last columns or tiles of their own,
        the global queries' blocks);
    ``global_row_bound``
        every allowed pair over the tiles less the global queries' blocks (their pairs on a global PE row
        beside the array, SALO's, whose multipliers are not the array's: the utilization of the array, as
        the benchmarks measure it).
    """
    tiles = diagonal_tiles(pattern, seq_len, rows, cols)
    local = diagonal_tiles(replace(pattern, global_tokens=()), seq_len, rows, cols)
    pairs = int(allowed_mask(pattern, seq_len).sum())
    macs = rows * cols
    return dict(tiles=len(tiles), local_tiles=len(local), global_tiles=tiles.global_tiles, pairs=pairs,
                local_bound=int(local.mask.sum()) / (len(local) * macs), bound=pairs / (len(tiles) * macs),
                global_row_bound=pairs / ((len(tiles) - tiles.global_tiles) * macs))


def sliding_output(q_int, k_int, v_int, mult: int, shift: int, nm: Numerics, tiles: DiagonalTiles) -> np.ndarray:
    """O (integers) of a diagonal run: per query, the online softmax over its keys tile by tile.

    A query's key tiles are its row of each tile of its block (a global query: of its global block), in
    order, each of ``cols`` keys, the global column's included.  The arithmetic is
    :func:`attn_rtl.sim.golden.online_softmax_attention`'s, run per query on its own key order."""
    q = np.asarray(q_int, np.int64)
    k = np.asarray(k_int, np.int64)
    v = np.asarray(v_int, np.int64)
    if q.ndim == 2:
        q, k, v = q[None], k[None], v[None]
    seq_len = q.shape[1]
    t = logits(scores(q, k), mult, shift, nm)
    o = np.zeros(q.shape[:2] + v.shape[2:], np.int64)
    keys = np.clip(tiles.keys(), 0, seq_len - 1)   # masked elements' keys are never used
    is_global = np.zeros(seq_len, bool)
    is_global[list(tiles.global_tokens)] = True
    for b, members in enumerate(tiles.queries):
        mine = np.flatnonzero(tiles.block == b)
        for r, query in enumerate(members):
            if query < 0 or is_global[query] != tiles.global_block[b] or tiles.global_row and is_global[query]:
                continue
            order, ok = keys[mine, r].reshape(-1), tiles.mask[mine, r].reshape(-1)
            row, _ = online_softmax_attention(t[:, query, order][:, None, :], v[:, order], nm, key_tile=tiles.cols,
                                               mask=ok[None, :])
            o[:, query] = row[:, 0]
    if tiles.global_row:
        # The global row: per tile the keys new to it, rows + 1 lanes, in tile order.
        row_keys, ok = tiles.row_keys()
        order, ok = row_keys.reshape(-1), ok.reshape(-1)
        for query in tiles.global_tokens:
            row, _ = online_softmax_attention(t[:, query, order][:, None, :], v[:, order], nm,
                                               key_tile=tiles.rows + 1, mask=ok[None, :])
            o[:, query] = row[:, 0]
    return o


def output_blocks(tiles: DiagonalTiles) -> np.ndarray:
    """The blocks whose O a diagonal run sends, in order: those that have tiles, then (with a global row)
    the global queries' blocks, which the row computes."""
    blocks = np.unique(tiles.block)
    if tiles.global_row:
        blocks = np.concatenate([blocks, np.flatnonzero(tiles.global_block)])
    return blocks


@dataclass
class SlidingBeats:
    """A diagonal run's streams in order (docs/sparse.md, "The engine"): per head, with a global row first
    ``d`` Q beats of the global queries (lane ``j``: the ``j``-th global token), then per block that has
    tiles ``d`` Q beats (``rows`` lanes, the block's queries); per tile ``d`` K beats and ``d`` V beats of
    ``rows + cols`` lanes (lane ``u < rows + cols − 1``: key ``base + step·u`` if kept, else 0; the last
    lane: the tile's global key, else 0) and one ``kv_index`` beat (those keys, kept lanes 0, and the
    keep bits); O per block of :func:`output_blocks`, per chunk of ``cols`` columns, per row the block
    computes."""
    q: np.ndarray          #: (beats, rows)
    k: np.ndarray          #: (beats, rows + cols)
    v: np.ndarray          #: (beats, rows + cols)
    kv_keys: np.ndarray    #: (tiles, rows + cols)
    kv_keep: np.ndarray    #: (tiles, rows + cols) bool
    o: np.ndarray          #: (beats, cols)
    o_last: np.ndarray     #: (beats,) bool: a block's last O beat


def computed_rows(tiles: DiagonalTiles, block: int) -> np.ndarray:
    """(rows,) bool: the rows whose O block ``block`` computes (its queries; in a plain block not the
    global ones, whose O their global block computes)."""
    members = tiles.queries[block]
    real = members >= 0
    if tiles.global_block[block]:
        return real
    return real & ~np.isin(members, tiles.global_tokens)


def sliding_beats(q_int, k_int, v_int, o_int, tiles: DiagonalTiles) -> SlidingBeats:
    """The beats of a run of ``tiles`` (one head's tiling, every head alike) over ``q_int, k_int, v_int``
    ((L, d) or (H, L, d)), with ``o_int`` (:func:`sliding_output`) in the O stream's order."""
    q, k, v, o = (np.asarray(x, np.int64) for x in (q_int, k_int, v_int, o_int))
    if q.ndim == 2:
        q, k, v, o = q[None], k[None], v[None], o[None]
    heads, seq_len, d = q.shape
    rows, cols = tiles.rows, tiles.cols
    chunks = -(-d // cols)
    keep = np.concatenate([tiles.keep, (tiles.global_key >= 0)[:, None]], axis=1)
    globals_ = np.asarray(tiles.global_tokens + (0,), np.int64)
    keys = np.concatenate([tiles.lanes, globals_[tiles.global_key][:, None]], axis=1)
    keys = np.where(keep, keys, 0)
    q_beats, k_beats, v_beats, o_beats, o_last = [], [], [], [], []
    for h in range(heads):
        if tiles.global_row:
            row_q = np.zeros((rows, d), np.int64)
            row_q[:len(tiles.global_tokens)] = q[h, list(tiles.global_tokens)]
            q_beats.append(row_q.T)
        for b in output_blocks(tiles):
            members = tiles.queries[b]
            own_tiles = np.flatnonzero(tiles.block == b)
            if len(own_tiles):
                block_q = np.where((members >= 0)[:, None], q[h, np.maximum(members, 0)], 0)   # (rows, d)
                q_beats.append(block_q.T)
            for n in own_tiles:
                lanes = np.where(keep[n][:, None], k[h, keys[n]], 0)                      # (rows + cols, d)
                k_beats.append(lanes.T)
                v_beats.append(np.where(keep[n][:, None], v[h, keys[n]], 0).T)
            mine = computed_rows(tiles, b)
            padded = np.zeros((rows, chunks * cols), np.int64)
            padded[:, :d] = np.where((members >= 0)[:, None], o[h, np.maximum(members, 0)], 0)
            beats = padded[mine].reshape(-1, chunks, cols).transpose(1, 0, 2).reshape(-1, cols)
            o_beats.append(beats)
            o_last.append(np.arange(len(beats)) == len(beats) - 1)
    return SlidingBeats(q=np.concatenate(q_beats), k=np.concatenate(k_beats), v=np.concatenate(v_beats),
                        kv_keys=np.tile(keys, (heads, 1)), kv_keep=np.tile(keep, (heads, 1)),
                        o=np.concatenate(o_beats), o_last=np.concatenate(o_last))


def output_from_beats(o_beats, tiles: DiagonalTiles, heads: int, seq_len: int, head_dim: int) -> np.ndarray:
    """O of shape ``(heads, seq_len, head_dim)`` from a diagonal run's O beats (:func:`sliding_beats`'
    order: per head, per block of :func:`output_blocks`, per chunk of ``cols`` columns, per row the block
    computes)."""
    cols = tiles.cols
    chunks = -(-head_dim // cols)
    beats = np.asarray(o_beats, np.int64).reshape(-1, cols)
    o = np.zeros((heads, seq_len, chunks * cols), np.int64)
    at = 0
    for h in range(heads):
        for b in output_blocks(tiles):
            mine = computed_rows(tiles, b)
            n = int(mine.sum())
            block = beats[at:at + n * chunks].reshape(chunks, n, cols).transpose(1, 0, 2).reshape(n, -1)
            o[h, tiles.queries[b][mine]] = block
            at += n * chunks
    if at != len(beats):
        raise ValueError(f"{len(beats)} O beats, the tiling sends {at}")
    return o[:, :, :head_dim]
