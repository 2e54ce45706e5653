"""Sparse attention patterns (SALO; Longformer, ViL): which (query, key) pairs take part.

The rules, for query ``i`` and key ``j`` of a sequence of ``L`` tokens
(docs/sparse.md has them with pictures):

``dense``
    every pair.
``window`` of total width ``w`` (Longformer's ``attention_window``)
    ``|i - j| <= w // 2``.
``dilated`` window, dilation ``δ``
    ``|i - j| <= δ·w/2`` and ``δ`` divides ``i - j``; equivalently
    ``i - j = δ·m`` with ``|m| <= w // 2``.
``grid`` of ``H×W`` tokens in raster order (ViL), window ``kh×kw``
    ``|row_i - row_j| <= kh // 2`` and ``|col_i - col_j| <= kw // 2`` with
    ``row = index // W``, ``col = index % W``; needs ``L == H·W``.
``causal`` and ``causal-window`` of ``W`` keys (decoder LLMs; docs/numerics.md, section 10)
    ``j <= p_i`` and ``p_i - W < j <= p_i`` at the query's position ``p_i``; a run may hold the
    newest ``query_len`` of the ``L`` positions (``p_i = L - query_len + i``) and ``group`` query
    heads per key head, stacked position-major (:func:`attn_rtl.sim.decoder.stack_queries`).

Any pattern but the causal ones also takes **global tokens**, a list of indices: a global token
attends to every key and every query attends to it.  Every query attends to
itself under every pattern, so no row is ever empty.

For a query block (``rows`` queries) the engine computes only the keys with
at least one allowed pair in the block, gathered by index into key tiles of
``cols`` (:func:`block_keys`, :func:`scheduled_tiles`): the keys of a walk
range in ascending order, then global keys outside it.  Masked scores in a
computed tile contribute nothing (docs/numerics.md).  Nothing here imports a
simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from attn_rtl.params import positive_int

from .decoder import causal_mask

__all__ = ["PATTERNS", "CAUSAL_PATTERNS", "check_queries", "SparsePattern", "parse_pattern", "pattern_from_dict", "allowed_mask", "allowed_pairs",
           "walk_range", "block_keys", "ScheduledTiles", "scheduled_tiles", "register_values"]

PATTERNS = ("dense", "window", "dilated", "grid", "causal", "causal-window")
#: The patterns whose queries may be fewer than the keys and grouped (decoder attention), besides dense.
CAUSAL_PATTERNS = ("causal", "causal-window")


@dataclass(frozen=True)
class SparsePattern:
    """One attention pattern; :meth:`check` validates it against a sequence length.

    Parameters
    ----------
    kind : "dense", "window", "dilated", "grid", "causal" or "causal-window"
    window : int
        Total window width ``w`` (window and dilated patterns); keys ``W`` of the causal window.
    dilation : int
        ``δ`` (dilated pattern; 1 for the others).
    grid : (H, W)
        Token grid (grid pattern).
    window2d : (kh, kw)
        2-D window (grid pattern).
    global_tokens : tuple of int
        Indices of the global tokens, any pattern.
    """

    kind: str = "dense"
    window: int | None = None
    dilation: int = 1
    grid: tuple[int, int] | None = None
    window2d: tuple[int, int] | None = None
    global_tokens: tuple[int, ...] = field(default=())

    def __post_init__(self):
        if self.kind not in PATTERNS:
            raise ValueError(f"pattern must be one of {', '.join(PATTERNS)}, not {self.kind!r}")
        uses = {"window": self.kind in ("window", "dilated", "causal-window"), "dilation": self.kind == "dilated",
                "grid": self.kind == "grid", "window2d": self.kind == "grid"}
        given = {"window": self.window is not None, "dilation": self.dilation != 1,
                 "grid": self.grid is not None, "window2d": self.window2d is not None}
        for name, used in uses.items():
            if given[name] and not used:
                raise ValueError(f"{name} does not apply to the {self.kind} pattern")
            if used and not given[name] and name != "dilation":
                raise ValueError(f"the {self.kind} pattern needs {name}")
        if self.window is not None:
            positive_int("window", self.window)
        positive_int("dilation", self.dilation)
        for name, pair in (("grid", self.grid), ("window2d", self.window2d)):
            if pair is not None:
                if len(pair) != 2:
                    raise ValueError(f"{name} must be two positive integers, not {pair!r}")
                for v in pair:
                    positive_int(name, v)
        tokens = list(self.global_tokens)
        for g in tokens:
            if not isinstance(g, (int, np.integer)) or isinstance(g, bool) or g < 0:
                raise ValueError(f"global token indices must be integers >= 0, not {g!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError(f"global token {_first_repeat(tokens)} is listed twice")
        if tokens and self.is_causal:
            raise ValueError(f"global tokens do not apply to the {self.kind} pattern")

    @property
    def is_causal(self) -> bool:
        """A decoder pattern: queries may be the newest of the keys' positions, and grouped."""
        return self.kind in CAUSAL_PATTERNS

    @property
    def is_dense(self) -> bool:
        """Every pair takes part (global tokens add nothing to the dense pattern)."""
        return self.kind == "dense"

    def check(self, seq_len: int) -> None:
        """Raise ``ValueError`` when the pattern does not fit a sequence of ``seq_len`` tokens."""
        positive_int("seq_len", seq_len)
        if self.kind == "grid" and self.grid[0] * self.grid[1] != seq_len:
            raise ValueError(f"grid {self.grid[0]}x{self.grid[1]} holds {self.grid[0] * self.grid[1]} tokens, "
                             f"not the sequence length {seq_len}")
        for g in self.global_tokens:
            if g >= seq_len:
                raise ValueError(f"global token {g} is outside the sequence (length {seq_len})")

    def to_dict(self) -> dict:
        out = {"pattern": self.kind}
        if self.window is not None:
            out["window"] = self.window
        if self.kind == "dilated":
            out["dilation"] = self.dilation
        if self.grid is not None:
            out["grid"] = list(self.grid)
            out["window2d"] = list(self.window2d)
        if self.global_tokens:
            out["global_tokens"] = list(self.global_tokens)
        return out


def pattern_from_dict(spec: dict) -> SparsePattern:
    """Inverse of :meth:`SparsePattern.to_dict`."""
    return SparsePattern(kind=spec["pattern"], window=spec.get("window"), dilation=spec.get("dilation", 1),
                         grid=tuple(spec["grid"]) if "grid" in spec else None,
                         window2d=tuple(spec["window2d"]) if "window2d" in spec else None,
                         global_tokens=tuple(spec.get("global_tokens", ())))


def register_values(pattern: SparsePattern, max_globals: int, token_bits: int) -> dict:
    """The scheduler's runtime pattern registers for ``pattern``; ``global_tokens`` packed into one
    integer, ``max_globals`` fields of ``token_bits`` bits, entry 0 in the low bits."""
    tokens = list(pattern.global_tokens)
    packed = 0
    for g in reversed(tokens + [0] * (max_globals - len(tokens))):
        packed = (packed << token_bits) | g
    grid, win = pattern.grid or (0, 0), pattern.window2d or (0, 0)
    return dict(pattern=PATTERNS.index(pattern.kind), window=pattern.window or 0, dilation=pattern.dilation,
                grid_h=grid[0], grid_w=grid[1], window_h=win[0], window_w=win[1], global_count=len(tokens),
                global_tokens=packed)


def _first_repeat(items):
    seen = set()
    for x in items:
        if x in seen:
            return x
        seen.add(x)


def _pair(name: str, text: str) -> tuple[int, int]:
    parts = str(text).lower().split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        return int(parts[0]), int(parts[1])
    except ValueError:
        raise ValueError(f"{name} must look like 7x9 (two positive integers), not {text!r}") from None


def parse_pattern(pattern: str = "dense", *, window=None, dilation=None, grid=None, window2d=None,
                  global_tokens=None) -> SparsePattern:
    """A :class:`SparsePattern` from command-line style values (``grid="56x56"``, ``global_tokens="0,7"``)."""
    if isinstance(global_tokens, str):
        try:
            global_tokens = [int(g) for g in global_tokens.split(",") if g.strip()]
        except ValueError:
            raise ValueError(f"global must be a comma-separated list of token indices, not {global_tokens!r}") \
                from None
    return SparsePattern(kind=pattern, window=window, dilation=1 if dilation is None else dilation,
                         grid=None if grid is None else _pair("grid", grid),
                         window2d=None if window2d is None else _pair("window2d", window2d),
                         global_tokens=tuple(int(g) for g in (global_tokens or ())))


def check_queries(pattern: SparsePattern, seq_len: int, query_len: int | None = None, group: int = 1) -> int:
    """The run's stacked queries per key head, ``query_len·group`` (``query_len`` defaults to
    ``seq_len``); ``ValueError`` when the pattern cannot take them: at most ``seq_len`` queries,
    fewer only with the dense and causal patterns, ``group`` above 1 only with those."""
    pattern.check(seq_len)
    query_len = seq_len if query_len is None else query_len
    positive_int("query_len", query_len)
    positive_int("group", group)
    if query_len > seq_len:
        raise ValueError(f"query_len must be at most seq_len ({seq_len}), not {query_len}: the keys hold "
                         f"every query's position")
    if not (pattern.is_dense or pattern.is_causal) and (query_len != seq_len or group != 1):
        raise ValueError(f"the {pattern.kind} pattern takes one query per key and no grouped heads "
                         f"(query_len {query_len}, seq_len {seq_len}, group {group})")
    return query_len * group


def allowed_mask(pattern: SparsePattern, seq_len: int, *, query_len: int | None = None, group: int = 1) -> np.ndarray:
    """``(query_len·group, seq_len)`` bool: ``True`` where query ``i`` attends key ``j`` (square by
    default; stacked rows of grouped heads, :func:`attn_rtl.sim.decoder.stack_queries`, with ``group``)."""
    queries = check_queries(pattern, seq_len, query_len, group)
    if pattern.is_causal:
        per_query = causal_mask(queries // group, seq_len, window=pattern.window)
        return np.repeat(per_query, group, axis=0)
    if pattern.kind == "dense":
        return np.ones((queries, seq_len), bool)
    i = np.arange(seq_len)[:, None]
    j = np.arange(seq_len)[None, :]
    if pattern.kind == "window":
        mask = np.abs(i - j) <= pattern.window // 2
    elif pattern.kind == "dilated":
        diff = i - j
        mask = (diff % pattern.dilation == 0) & (np.abs(diff) <= pattern.dilation * (pattern.window // 2))
    else:
        width = pattern.grid[1]
        kh, kw = pattern.window2d
        mask = (np.abs(i // width - j // width) <= kh // 2) & (np.abs(i % width - j % width) <= kw // 2)
    if pattern.global_tokens:
        g = np.zeros(seq_len, bool)
        g[list(pattern.global_tokens)] = True
        mask = mask | g[:, None] | g[None, :]
    return mask


def allowed_pairs(pattern: SparsePattern, seq_len: int, *, query_len: int | None = None, group: int = 1) -> int:
    """Number of (query, key) pairs that take part, per key head (all its stacked queries)."""
    return int(allowed_mask(pattern, seq_len, query_len=query_len, group=group).sum())


def walk_range(pattern: SparsePattern, seq_len: int, rows: int, block: int, *, query_len: int | None = None,
               group: int = 1) -> tuple[int, int]:
    """Keys ``[lo, hi)`` the scheduler walks for query block ``block``: every key an allowed pair
    of the block can reach, apart from global keys (walked after).  The whole sequence for the
    dense pattern and for a block that holds a global query; for the causal ones, from the lowest
    key of the block's first query to its last query's position."""
    queries = check_queries(pattern, seq_len, query_len, group)
    i0 = block * rows
    i_last = min(i0 + rows, queries) - 1
    if pattern.is_causal:
        offset = seq_len - queries // group
        first, last = offset + i0 // group, offset + i_last // group
        return (max(0, first - pattern.window + 1) if pattern.kind == "causal-window" else 0), last + 1
    if pattern.kind == "dense" or any(i0 <= g <= i_last for g in pattern.global_tokens):
        return 0, seq_len
    if pattern.kind in ("window", "dilated"):
        reach = pattern.dilation * (pattern.window // 2)
        return max(0, i0 - reach), min(seq_len, i_last + reach + 1)
    width, half_h = pattern.grid[1], pattern.window2d[0] // 2
    return max(0, i0 // width - half_h) * width, min(seq_len, (i_last // width + half_h + 1) * width)


def block_keys(pattern: SparsePattern, seq_len: int, rows: int, block: int, mask=None, *,
               query_len: int | None = None, group: int = 1) -> np.ndarray:
    """The keys query block ``block`` computes, in the scheduler's order: those of its walk range
    with an allowed pair, ascending, then the global keys outside the range, in list order."""
    if mask is None:
        mask = allowed_mask(pattern, seq_len, query_len=query_len, group=group)
    lo, hi = walk_range(pattern, seq_len, rows, block, query_len=query_len, group=group)
    inside = lo + np.flatnonzero(mask[block * rows:(block + 1) * rows, lo:hi].any(axis=0))
    outside = [g for g in pattern.global_tokens if not lo <= g < hi]
    return np.concatenate([inside, np.array(outside, np.int64)]).astype(np.int64)


@dataclass
class ScheduledTiles:
    """The scheduler's output stream, one entry per computed key tile, in order.

    A key tile is ``count`` keys gathered by index (``keys[:count]``; lanes past
    ``count`` hold key 0 and are masked)."""
    block: np.ndarray
    keys: np.ndarray    #: (n, cols) key indices
    count: np.ndarray   #: (n,) keys in the tile, 1 to cols
    first: np.ndarray
    last: np.ndarray
    run_end: np.ndarray
    mask: np.ndarray    #: (n, rows, cols) bool

    def __len__(self) -> int:
        return len(self.block)

    def blocks(self):
        """``(block, keys in order)`` for every block span (first to last flag) of the stream."""
        for a, b in zip(np.flatnonzero(self.first), np.flatnonzero(self.last)):
            yield int(self.block[a]), np.concatenate([self.keys[i, :self.count[i]] for i in range(a, b + 1)])


def scheduled_tiles(pattern: SparsePattern, seq_len: int, rows: int, cols: int, heads: int = 1, *,
                    query_len: int | None = None, group: int = 1) -> ScheduledTiles:
    """What ``hdl/sparse_scheduler.py`` emits: for each (key) head, each query block in order, the
    block's keys (:func:`block_keys`) in tiles of ``cols``, flagged first/last of the block and of the run."""
    mask = allowed_mask(pattern, seq_len, query_len=query_len, group=group)
    queries = len(mask)
    n_blocks = -(-queries // rows)
    block, keys, count, masks = [], [], [], []
    padded = np.zeros((n_blocks * rows, seq_len), bool)
    padded[:queries] = mask
    for b in range(n_blocks):
        order = block_keys(pattern, seq_len, rows, b, mask, query_len=query_len, group=group)
        for at in range(0, len(order), cols):
            tile = order[at:at + cols]
            lanes = np.zeros(cols, np.int64)
            lanes[:len(tile)] = tile
            tile_mask = np.zeros((rows, cols), bool)
            tile_mask[:, :len(tile)] = padded[b * rows:(b + 1) * rows][:, tile]
            block.append(b)
            keys.append(lanes)
            count.append(len(tile))
            masks.append(tile_mask)
    block = np.array(block, np.int64)
    first = np.r_[True, block[1:] != block[:-1]]
    last = np.r_[block[1:] != block[:-1], True]
    n = len(block)
    run_end = np.zeros(n * heads, bool)
    run_end[-1] = True
    return ScheduledTiles(block=np.tile(block, heads), keys=np.tile(np.array(keys), (heads, 1)),
                          count=np.tile(np.array(count, np.int64), heads), first=np.tile(first, heads),
                          last=np.tile(last, heads), run_end=run_end,
                          mask=np.tile(np.array(masks), (heads, 1, 1)))
