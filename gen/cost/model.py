"""Analytical cost model of the attention engine, evaluated over whole arrays of candidates at once.

A candidate is one parameter set of the generator (``hdl/engine.py``: ``rows``, ``cols``,
``prob_tiles``, ``max_seq_len``, ``max_head_dim``, ``max_heads``, ``multiplier``,
``fifo_memory``; ``sparse``, ``importance``, ``row_flags``, ``max_dilation`` and ``max_globals``
follow from the workload). Candidates are columns of numpy arrays (:func:`enumerate_space`), and
:func:`predict` returns every figure for all of them in a few vector operations: cycles, on-chip
memory bits, off-chip bytes, energy, area per target and latency at the predicted clock.

Cycles follow the engine's schedule (docs/engine.md, docs/cost-model.md): per key tile a score tile
of ``max(d, rows)`` cycles and ``ceil(d/cols)`` value tiles of ``max(k, rows)`` cycles (``k`` keys
in the tile; a tile shorter than ``rows`` waits for the array's drain), throttled when a
probability buffer's lifetime exceeds ``prob_tiles`` tiles, plus a fill-and-drain overhead. Which
key tiles run comes from the scheduler's own rule (every key of a block's rows that an allowed pair
reaches, sim/sparse.py), counted per block. The constants are fitted to RTL cycle counts
(:data:`CALIBRATION`) and checked against RTL simulation on other configurations
(tests/test_cost_model.py).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from attn_rtl.gen.parts import PARTS
from attn_rtl.sim.sliding import SLIDING_PATTERNS, uses_global_row
from attn_rtl.sim.sparse import allowed_mask

from .workloads import Workload

__all__ = ["CALIBRATION", "ENERGY_PJ", "SPACE", "TARGETS", "TILE_FLOOR", "Cycles", "Space", "block_key_counts",
           "diagonal_tile_count", "dma_memory_bits", "energy_pj", "enumerate_space", "in_domain", "memory_bits",
           "offchip_bytes", "pareto_front", "predict_cycles", "takes_diagonal"]

DATA_BITS = 8     #: Q, K, V, O elements (docs/numerics.md)
PROB_BITS = 16    #: probability width P + 1 (unsigned, numerics.md)

#: Constants of the cycle model, fitted to RTL cycle counts (docs/cost-model.md, ``gen/bench/cost.py``).
CALIBRATION = {
    # fill and drain of one run: base + per_edge·(rows + cols)
    "base": 60.0, "per_edge": 5.0,
    # a probability buffer is held for its tile's cycles plus
    # hold + hold_edge·(rows + cols) + hold_busy·(tile cycles); prob_tiles buffers bound the rate
    "hold": 20.0, "hold_edge": 2.5, "hold_busy": 0.5,
    # a ranking run's computing pass waits per query block for its scan pass's reciprocals: the
    # array's latency (rows + cols + 8), its drain (rows), the softmax's sum latency (45 + 2·log2 cols)
    "rank_wait": 50.0,
}

#: Energy per access or operation, picojoules, 45 nm (docs/cost-model.md cites each).
ENERGY_PJ = {
    "mac_int8": 0.2 + 0.1,      # 8-bit multiply + 32-bit add (Horowitz, ISSCC 2014)
    "sram_bit": 10.0 / 64,      # 64-bit read of an 8 KB SRAM: 10 pJ (Horowitz, ISSCC 2014)
    "dram_bit": 2600.0 / 64,    # 64-bit DRAM access: 1.3-2.6 nJ, upper end (Horowitz, ISSCC 2014)
    # per score: a 16-bit compare (0.05: adds scale linearly, 8b 0.03 to 32b 0.1), a 16-bit table
    # read for exp2 (16 × 10/64 = 2.5) and a 16-bit multiply (0.8: multiplies scale with the square
    # of the width, 8b 0.2 and 32b 3.1), all from Horowitz's figures
    "softmax_row_lane": 0.05 + 2.5 + 0.8,
}

#: FPGA parts of `attn-rtl explore` and their resources.
TARGETS = {name: PARTS[name] for name in ("ecp5-85f", "ice40-up5k", "xc7a100t")}


@functools.lru_cache(maxsize=4)   # L = 4096 is 16 MB a mask
def _mask(pattern, seq_len: int, query_len: int, group: int) -> np.ndarray:
    return allowed_mask(pattern, seq_len, query_len=query_len, group=group)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.int64)


@functools.lru_cache(maxsize=16)
def _packed_mask(pattern, seq_len: int, query_len: int, group: int) -> np.ndarray:
    return np.packbits(_mask(pattern, seq_len, query_len, group), axis=1)


@functools.lru_cache(maxsize=4096)
def block_key_counts(pattern, seq_len: int, rows: int, query_len: int | None = None, group: int = 1) -> np.ndarray:
    """Keys each query block of ``rows`` queries computes (the scheduler's rule), one entry per block;
    ``query_len`` queries (default ``seq_len``) of ``group`` stacked heads (docs/engine.md)."""
    query_len = seq_len if query_len is None else query_len
    queries = query_len * group
    if pattern.is_dense:
        return np.full(-(-queries // rows), seq_len, np.int64)
    # Bit-packed rows: OR over each block's rows, then count the bits (8 keys per byte).
    packed = _packed_mask(pattern, seq_len, query_len, group)
    merged = np.bitwise_or.reduceat(packed, np.arange(0, queries, rows), axis=0)
    return _POPCOUNT[merged].sum(axis=1)


def takes_diagonal(workload: Workload) -> bool:
    """Whether the layer can run as diagonal tiles (a sliding build, docs/sparse.md): the window, dilated
    and grid patterns, one query per key and no grouped heads."""
    return workload.pattern.kind in SLIDING_PATTERNS and not workload.is_decoder


@functools.lru_cache(maxsize=65536)
def diagonal_tile_count(pattern, seq_len: int, rows: int, cols: int, global_row: int = 0) -> int:
    """Tiles of the diagonal tiling per head (``attn_rtl.sim.sliding.diagonal_tiles``), from each block's
    rows and each tile's key range at once (no masks): a tile is sent when a row of a plain query meets a
    key inside the sequence (and, on the grid, inside the key's image row) that is not a global one, plus
    the global column's tiles of its own and the global queries' blocks, which a global row serving
    ``global_row`` global queries takes instead (``uses_global_row``; tests/test_cost_model.py checks the
    count against the tiling)."""
    L, R, C = seq_len, rows, cols
    s = pattern.dilation if pattern.kind == "dilated" else 1
    is_global = np.zeros(L + 1, bool)
    is_global[list(pattern.global_tokens)] = True
    # Blocks of R queries of one residue modulo s, residue by residue (the model's _blocks).
    firsts = np.concatenate([np.arange(rho, L, s * R) for rho in range(min(s, L))])
    members = firsts[:, None] + s * np.arange(R)[None, :]
    real = members < L
    plain = real & ~is_global[np.minimum(members, L)]
    if pattern.kind == "grid":
        H, W = pattern.grid
        kh, kw = pattern.window2d
        half, starts = kw // 2, range(-(kh // 2), kh // 2 + 1)
    else:
        half, starts = pattern.window // 2, (None,)
    span = 2 * half + 1
    T = -(-span // C)
    t = np.arange(T)
    low = C * t - half                             # a tile's first column's offset (in strides)
    high = low + np.minimum(C, span - C * t) - 1   # its last in-span column's
    tokens = np.asarray(pattern.global_tokens, np.int64)
    sent = np.zeros((len(firsts), 0), bool)
    for dy in starts:
        # Per block, row and tile: the keys of the row's span inside the sequence (grid: inside the key's
        # image row), less the global ones among them (the global column's, not the tile's).
        if dy is None:   # window, dilated: keys q + s·offset
            q = members[:, :, None]
            first = np.maximum(low, -(q // s))                    # offsets with a key ≥ 0
            last = np.minimum(high, (L - 1 - q) // s)             # … and < L
            keys = np.maximum(last - first + 1, 0)
            offset = (tokens[None, None, None, :] - q[..., None])
            on = (offset % s == 0) & (offset // s >= first[..., None]) & (offset // s <= last[..., None])
        else:            # grid: the key row y + dy inside the image, the key's x inside its row
            y, x = members // W, members % W
            row_ok = ((y + dy >= 0) & (y + dy < H))[:, :, None]
            first = np.maximum(low, -x[:, :, None])
            last = np.minimum(high, W - 1 - x[:, :, None])
            keys = np.where(row_ok, np.maximum(last - first + 1, 0), 0)
            ty, tx = tokens // W, tokens % W
            on = (row_ok[..., None] & (ty == (y + dy)[:, :, None, None])
                  & (tx - x[:, :, None, None] >= first[..., None]) & (tx - x[:, :, None, None] <= last[..., None]))
        own = keys - on.sum(axis=-1)
        sent = np.concatenate([sent, ((own > 0) & plain[:, :, None]).any(axis=1)], axis=1)
    count = int(sent.sum())
    G = len(pattern.global_tokens)
    if G:
        # A global key rides in the free last column of a sent tile (a start's last tile, when the
        # span leaves one); a block short of those gets tiles of the global column alone.
        carriers = sent[:, T - 1::T].sum(axis=1) if C * T > span else np.zeros(len(firsts), np.int64)
        count += int(np.maximum(G - carriers, 0)[plain.any(axis=1)].sum())
        # Global queries' blocks: up to R globals each, tiles at C·t - (R - 1), stride 1.
        for first in range(0, 0 if uses_global_row(pattern, L, global_row) else G, R):
            n = min(R, G - first)
            for tile in range(-(-(L + R - 1) // C)):
                lo = C * tile - (R - 1)
                count += (lo + n - 1 + C - 1 >= 0) and lo <= L - 1
    return count


def _tile_sums(counts: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate: the number of key tiles and the sum over tiles of max(keys in the tile, rows)."""
    n = counts[None, :]
    c = cols[:, None]
    r = rows[:, None]
    tiles = -(-n // c)
    last = n - (tiles - 1) * c
    spans = (tiles - 1) * np.maximum(c, r) + np.maximum(last, r)
    return tiles.sum(axis=1), spans.sum(axis=1)


@dataclass
class Cycles:
    """Cycle figures per candidate: ``total`` (first input beat to last output beat, every run of
    the layer), ``busy`` (cycles the array computes), ``tiles`` (score tiles, all heads and runs)."""
    total: np.ndarray
    busy: np.ndarray
    tiles: np.ndarray


def _runs(workload: Workload, rows: int) -> list[tuple[np.ndarray, bool, int]]:
    """The engine runs of the layer for ``rows``: (keys per query block, ranking run, heads per run)."""
    # Grouped heads run per K/V head, over its group's stacked queries.
    heads = workload.heads_computed // workload.group
    runs = [(block_key_counts(workload.pattern, workload.tokens, rows, workload.queries, workload.group),
             workload.rank, heads)]
    if workload.msb_bits is not None and workload.recomputed_rows:
        # Progressive quantization's second pass: per head, one run of the flagged rows against
        # every key with full K (gen/simulate.py: simulate_progressive).
        blocks = np.full(-(-workload.recomputed_rows // rows), workload.tokens, np.int64)
        runs += [(blocks, False, 1)] * heads
    return runs


def predict_cycles(workload: Workload, rows, cols, prob_tiles, *, sliding: bool = False, global_row: bool = False,
                   calibration=None) -> Cycles:
    """Cycles of the layer per candidate; ``rows``, ``cols``, ``prob_tiles`` broadcast together.

    With ``sliding`` the layer runs as diagonal tiles (docs/sparse.md): a score tile of ``max(d, rows)``
    cycles and ``ceil(d/cols)`` value chunks of ``cols`` stationary steps (``max(cols, rows)`` cycles)
    per tile of :func:`diagonal_tile_count`; the rest of the schedule is the gathered tiles'.  With
    ``global_row`` (a build with the global PE row) a layer of one global token has no global block.
    Figures depend on the triple only, so each distinct triple is computed once and gathered."""
    if sliding and not takes_diagonal(workload):
        raise ValueError(f"workload {workload.name}: diagonal tiles take the window, dilated and grid patterns "
                         f"without grouped heads or fewer queries, not {workload.pattern.kind}")
    k = CALIBRATION if calibration is None else calibration
    triples = np.stack([a.ravel() for a in np.broadcast_arrays(
        *(np.asarray(x, np.int64) for x in (rows, cols, prob_tiles)))], axis=1)
    unique, inverse = np.unique(triples, axis=0, return_inverse=True)
    rows, cols, prob_tiles = unique.T
    d = workload.head_dim
    total, busy_all, tiles_all = (np.zeros(len(unique), np.float64) for _ in range(3))
    for r in np.unique(rows):
        at = rows == r
        c, p = cols[at], prob_tiles[at]
        score = max(d, int(r))
        for counts, rank, heads in _runs(workload, int(r)):
            if sliding:
                tiles = np.array([diagonal_tile_count(workload.pattern, workload.tokens, int(r), int(n),
                                                      int(global_row)) for n in c])
                spans = tiles * np.maximum(c, r)
            else:
                tiles, spans = _tile_sums(counts, np.full(c.shape, r), c)
            busy = tiles * score + (-(-d // c)) * spans
            held = busy * (1 + k["hold_busy"]) + tiles * (k["hold"] + k["hold_edge"] * (r + c))
            per_head = np.maximum(busy, held / p)
            if rank:   # the scan pass: score tiles only, then the wait of each block's computing pass
                wait = k["rank_wait"] + 2 * r + c + 2 * np.ceil(np.log2(np.maximum(c, 1)))
                per_head = per_head + tiles * score + len(counts) * wait
                busy = busy + tiles * score
            total[at] += heads * per_head + k["base"] + k["per_edge"] * (r + c)
            busy_all[at] += heads * busy
            tiles_all[at] += heads * tiles * (2 if rank else 1)
    inverse = inverse.ravel()
    return Cycles(total=total[inverse], busy=busy_all[inverse], tiles=tiles_all[inverse])


#: Cycles per key tile the model is validated down to (docs/cost-model.md): below, the probability
#: buffers' lifetime (dense) or the sparse key path bounds the rate and the fit is off by up to 17%
#: (4×4, d = 8: -16%; sparse 4×4, d = 16, 32-cycle tiles: -11%).
TILE_FLOOR = {"dense": 32, "sparse": 64}


def in_domain(workload: Workload, rows, cols, prob_tiles=3) -> np.ndarray:
    """Where the cycle model is validated to ±3%: ``head_dim ≥ 4·max(rows, cols)``, full key tiles of
    at least :data:`TILE_FLOOR` cycles, and at least three probability buffers (with two, measured
    errors run from -3.9% to +20%: the buffers' lifetime depends on the schedule, not on latencies)."""
    rows, cols = np.asarray(rows), np.asarray(cols)
    d = workload.head_dim
    tile = np.maximum(d, rows) + (-(-d // cols)) * np.maximum(cols, rows)
    floor = TILE_FLOOR["dense" if workload.pattern.is_dense else "sparse"]
    return (d >= 4 * np.maximum(rows, cols)) & (tile >= floor) & (np.asarray(prob_tiles) >= 3)


def memory_bits(rows, cols, prob_tiles, max_seq_len, max_head_dim, max_heads, *, importance=False) -> np.ndarray:
    """On-chip buffer bits (``AttentionEngine.memory_bits``), vectorized."""
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    max_seq_len, max_head_dim = np.asarray(max_seq_len, np.int64), np.asarray(max_head_dim, np.int64)
    q_bank = np.left_shift(1, np.ceil(np.log2(max_head_dim)).astype(np.int64))   # beats, a power of two
    q = 2 * q_bank * rows * DATA_BITS
    prob = np.asarray(prob_tiles) * rows * (cols * PROB_BITS + PROB_BITS + 6)
    log_l = np.ceil(np.log2(np.maximum(max_seq_len, 1))).astype(np.int64)
    acc = rows * (-(-max_head_dim // cols)) * cols * (PROB_BITS + DATA_BITS + log_l)
    bits = q + prob + acc
    if importance:
        heads = np.asarray(max_heads, np.int64)
        tok_width = PROB_BITS + np.ceil(np.log2(max_seq_len * heads)).astype(np.int64)
        head_width = DATA_BITS + np.ceil(np.log2(max_seq_len * max_head_dim)).astype(np.int64)
        bits = bits + (-(-max_seq_len // cols)) * cols * tok_width + heads * (head_width + 1)
    return bits


def dma_memory_bits(rows, cols, prob_tiles, max_head_dim, kv_buffer_keys, max_seq_len=None) -> np.ndarray:
    """Staging bits of the memory-mapped top's DMA (``EngineDMA.memory_bits``), vectorized: the K/V
    buffer's slots of K and V, two block slots of Q and of O, in words of ``cols`` bytes, each row's words
    a power of two; with ``max_seq_len`` (a SpAtten build's lists), three copies of the token list."""
    from attn_rtl.hdl.engine_dma import MIN_KV_SLOTS, list_entries, list_memory_bits

    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    slots = np.maximum(np.maximum(np.asarray(kv_buffer_keys, np.int64) // cols, MIN_KV_SLOTS),
                       np.asarray(prob_tiles, np.int64) + 2)
    words = -(-np.asarray(max_head_dim, np.int64) // cols)
    stride = np.left_shift(1, np.ceil(np.log2(words)).astype(np.int64))
    bits = 8 * cols * stride * (2 * cols * slots + 4 * rows)
    if max_seq_len is None:
        return bits
    lists = np.vectorize(lambda c, n: 3 * list_memory_bits(int(n), list_entries(int(c))))(cols, max_seq_len)
    return bits + lists


#: Values the enumeration takes per parameter (``max_*`` as multiples of the workload's own size).
SPACE = {
    "rows": range(1, 65),
    "cols": range(1, 65),
    "prob_tiles": range(3, 17),   # 2 lies outside the validated domain (in_domain)
    "seq_len_factor": (1, 2, 4),
    "head_dim_factor": (1, 2, 4),
    "heads_factor": (1, 2),
    "multiplier": ("generic", "ecp5"),
    "fifo_memory": ("registers", "ecp5"),
}


def _next_pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(n)))


@dataclass
class Space:
    """Candidates as a grid: ``axes`` (name to values) in order, and every column flattened."""
    axes: dict[str, np.ndarray]
    columns: dict[str, np.ndarray]
    multipliers: tuple[str, ...]
    fifo_memories: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.axes.values())

    def __len__(self) -> int:
        return int(np.prod(self.shape))

    def expand(self, values: np.ndarray, over: tuple[str, ...]) -> np.ndarray:
        """``values`` computed on the sub-grid of the axes ``over`` (in axis order), for every candidate."""
        names = list(self.axes)
        shape = [len(self.axes[n]) if n in over else 1 for n in names]
        return np.broadcast_to(np.asarray(values).reshape(shape), self.shape).ravel()


def enumerate_space(workload: Workload, family: str, space: dict | None = None) -> Space:
    """Every candidate configuration for ``workload`` on a ``family`` (ecp5, ice40, xilinx7) part;
    the ECP5 primitives only on ECP5."""
    space = SPACE if space is None else space
    multipliers = tuple(m for m in space["multiplier"] if m == "generic" or family == "ecp5")
    fifos = tuple(f for f in space["fifo_memory"] if f == "registers" or family == "ecp5")
    axes = {"rows": np.asarray(space["rows"]), "cols": np.asarray(space["cols"]),
            "prob_tiles": np.asarray(space["prob_tiles"]),
            "max_seq_len": np.asarray(space["seq_len_factor"]) * _next_pow2(workload.seq_len),
            "max_head_dim": np.asarray(space["head_dim_factor"]) * _next_pow2(workload.head_dim),
            "max_heads": np.asarray(space["heads_factor"]) * _next_pow2(workload.heads),
            "multiplier": np.arange(len(multipliers)), "fifo_memory": np.arange(len(fifos))}
    if "kv_buffer" in space:   # the memory-mapped top: 0 no K/V buffer, 1 one that holds the workload's keys
        axes["kv_buffer"] = np.asarray(space["kv_buffer"])
    if "sliding" in space:     # 1: a sliding build running the layer as diagonal tiles
        axes["sliding"] = np.asarray(space["sliding"])
    grids = np.meshgrid(*axes.values(), indexing="ij", copy=False)
    columns = {name: g.ravel() for name, g in zip(axes, grids)}
    return Space(axes=axes, columns=columns, multipliers=multipliers, fifo_memories=fifos)


def offchip_bytes(workload: Workload, rows, *, cols=None, kv_buffer_keys=None,
                  prob_tiles=3) -> tuple[np.ndarray, np.ndarray]:
    """Bytes read (Q once; K and V once per query block, over the keys it computes; K twice in a
    ranking run, at ``msb_bits`` in a progressive first run) and written (O, importance), per candidate.

    With ``kv_buffer_keys`` (the memory-mapped top's K/V buffer, with ``cols``): a dense layer whose
    keys fit the buffer's key tiles (:func:`attn_rtl.hdl.engine_dma.kv_slots`) reads each K/V head's K
    (at ``msb_bits``, once even in a ranking run) and V once instead; the top also reads the token and
    head lists of a pruned layer (2 bytes an entry) and writes a ranking run's head importances (4
    bytes each) and a progressive run's row flags (a byte per query row)."""
    unique, inverse = np.unique(np.asarray(rows, np.int64).ravel(), return_inverse=True)
    d, heads, tokens = workload.head_dim, workload.heads_computed, workload.tokens
    queries = workload.queries
    read = np.zeros(len(unique), np.float64)
    for at, r in enumerate(unique):
        # K and V of the keys each block of a K/V head's stacked queries computes, a group's share per head.
        keys = block_key_counts(workload.pattern, tokens, int(r), queries, workload.group).sum() / workload.group
        k_bits = DATA_BITS if workload.msb_bits is None else workload.msb_bits
        k = keys * d * (2 if workload.rank else 1) * k_bits / 8
        total = queries * d + k + keys * d
        if workload.msb_bits is not None and workload.recomputed_rows:
            blocks = -(-workload.recomputed_rows // int(r))
            total += workload.recomputed_rows * d + 2 * blocks * tokens * d
        read[at] = heads * total
    read = read[inverse].reshape(np.shape(rows))
    if kv_buffer_keys is not None:
        from attn_rtl.hdl.engine_dma import MIN_KV_SLOTS

        cols = np.asarray(cols, np.int64)
        slots = np.maximum(np.maximum(np.asarray(kv_buffer_keys, np.int64) // cols, MIN_KV_SLOTS),
                           np.asarray(prob_tiles) + 2)
        k_bytes = (DATA_BITS if workload.msb_bits is None else workload.msb_bits) / 8
        once = heads * (queries * d + (1 + k_bytes) * tokens * d / workload.group)
        read = np.where(workload.pattern.is_dense & (-(-tokens // cols) <= slots), once, read)
        read = read + 2 * ((tokens if workload.token_keep < 1 else 0) + (heads if workload.head_keep < 1 else 0))
    written = heads * (queries + workload.recomputed_rows) * d * DATA_BITS / 8 + (4 * tokens if workload.rank else 0)
    if kv_buffer_keys is not None:
        written += (4 * heads if workload.rank else 0) + (heads * queries if workload.msb_bits is not None else 0)
    return read, np.full(np.shape(read), written)


def energy_pj(workload: Workload, rows, cols, cycles: Cycles, read_bytes, written_bytes, max_seq_len) -> np.ndarray:
    """Energy of the layer from :data:`ENERGY_PJ`: MACs the array issues while busy, buffer accesses
    per tile (Q reads, probability writes and reads, accumulator read-modify-writes), softmax
    work per score, off-chip bits."""
    rows, cols = np.asarray(rows, np.float64), np.asarray(cols, np.float64)
    e = ENERGY_PJ
    d = workload.head_dim
    tiles = cycles.tiles
    acc_bits = PROB_BITS + DATA_BITS + np.ceil(np.log2(np.maximum(np.asarray(max_seq_len), 2)))
    sram_bits = tiles * (d * rows * DATA_BITS + 2 * rows * cols * PROB_BITS
                         + 2 * np.ceil(d / cols) * rows * cols * acc_bits)
    return (rows * cols * cycles.busy * e["mac_int8"] + sram_bits * e["sram_bit"]
            + tiles * rows * cols * e["softmax_row_lane"]
            + (np.asarray(read_bytes) + np.asarray(written_bytes)) * 8 * e["dram_bit"])


def pareto_front(objectives: np.ndarray) -> np.ndarray:
    """Indices of the points no other point dominates (every objective lower or equal, one lower).

    ``objectives`` is ``(n, m)``, lower is better. Sorting by the first objective makes one pass
    over the points suffice for two objectives; more objectives filter pairwise among the few
    survivors of that pass."""
    order = np.lexsort(objectives.T[::-1])
    pts = objectives[order]
    if pts.shape[1] == 2:
        best = np.minimum.accumulate(pts[:, 1])
        keep = np.r_[True, pts[1:, 1] < best[:-1]]
        return order[keep]
    keep = []
    for i, p in enumerate(pts):
        if not any(np.all(pts[j] <= p) and np.any(pts[j] < p) for j in keep):
            keep.append(i)
    return order[np.asarray(keep, np.int64)]
