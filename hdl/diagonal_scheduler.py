"""Diagonal-tile scheduler (SALO's sliding-window dataflow): the tiles, lanes and masks of each query block."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import positive_int, reject_unknown

from .sparse_scheduler import PATTERN_CODES, PATTERN_WIDTH

__all__ = ["DiagonalScheduler", "DIAGONAL_SCHEDULER_DEFAULTS", "diagonal_scheduler_params"]

DIAGONAL_SCHEDULER_DEFAULTS = {
    "rows": 8,
    "cols": 8,
    "max_seq_len": 1024,
    "max_heads": 16,
    "max_dilation": 64,
}


def diagonal_scheduler_params(**params) -> dict:
    """``DIAGONAL_SCHEDULER_DEFAULTS`` updated by ``params``, each checked (``ValueError`` names the bad one)."""
    reject_unknown("diagonal scheduler", params, DIAGONAL_SCHEDULER_DEFAULTS)
    p = {**DIAGONAL_SCHEDULER_DEFAULTS, **params}
    positive_int("rows", p["rows"], at_most=64)
    positive_int("cols", p["cols"], at_most=64)
    positive_int("max_seq_len", p["max_seq_len"], at_most=1 << 20)
    positive_int("max_heads", p["max_heads"], at_most=1024)
    positive_int("max_dilation", p["max_dilation"], at_most=1 << 16)
    return p


class DiagonalScheduler(wiring.Component):
    """For every head and query block, the diagonal tiles of a window, dilated or grid pattern.

    The tiling of ``attn_rtl.sim.sliding.diagonal_tiles`` (docs/sparse.md), tile for tile:
    element ``(r, c)`` of a tile is query ``q0 + s·r`` against key ``base + s·(r + c)``
    (``s`` the stride: the dilation, else 1), so a tile needs the ``rows + cols - 1`` keys
    ``base + s·u``, its lanes.  Blocks hold ``rows`` consecutive queries (window, grid) or
    ``rows`` queries of one residue modulo the dilation, residue by residue.  A block's tiles
    start at ``q0 - s·⌊w/2⌋ + s·cols·t`` (window, dilated) or, per window row
    ``dy = -⌊kh/2⌋ … ⌊kh/2⌋``, at ``q0 + dy·W - ⌊kw/2⌋ + cols·t`` (grid), for
    ``t < ⌈(2⌊w/2⌋ + 1)/cols⌉``.  Element ``(r, c)`` takes part when row ``r`` holds a query,
    its column lies within the window's span (``cols·t + c ≤ 2⌊w/2⌋``), its key lies in the
    sequence and, on the grid, in the query's own image row (no wrap past the left or right edge);
    a tile where none does is not sent.  Global tokens are not served here.

    One candidate tile takes four cycles (thresholds, mask, up to two sends), whatever the
    pattern: far below the array's ``2·d`` cycles a tile.  The last tile of a block is known
    when the block's candidates are done, so each tile waits in a holding register for the next
    one.

    Parameters
    ----------
    rows, cols : int
        Query block and tile width (the array's).
    max_seq_len, max_heads, max_dilation : int
        Largest runtime ``seq_len``, ``heads`` and ``dilation``.

    Attributes
    ----------
    lanes : int
        ``rows + cols - 1``.
    setup_cycles : int
        Cycles from ``start`` to the first candidate tile.
    config_latency : int
        Cycles the runtime registers must hold before ``start`` (the check is registered).

    Ports
    -----
    start : In(1)
        Takes the runtime registers and starts when not ``busy``; out-of-range values set ``error``
        instead: seq_len or heads outside 1..max, a pattern other than window, dilated or grid, a
        window of 0, dilation outside 1..max_dilation, a grid not holding seq_len tokens, a 2-D
        window of 0 or wider than the grid (``2⌊kw/2⌋ + 1 > W``: keys would wrap into other rows).
    seq_len, heads, pattern, window, dilation, grid_h, grid_w, window_h, window_w : In
        Runtime registers, as :class:`~attn_rtl.hdl.sparse_scheduler.SparseScheduler`'s.
    busy, done, error, config_ok : Out(1)
    tiles : Out(stream)
        ``block`` (per head), ``q0`` (the block's first query), ``real`` (bit ``r``: row ``r``
        holds a query), ``base`` (signed: lane 0's key), ``mask`` (``rows`` words of ``cols`` bits),
        ``keep`` (bit ``u``: some element of lane ``u`` takes part, the keys a DMA fetches),
        ``first``, ``last`` (of the block), ``run_end`` (last tile of the run).
    """

    #: Cycles the runtime registers must hold before ``start``.
    config_latency = 2

    def __init__(self, **params):
        p = diagonal_scheduler_params(**params)
        self.params = p
        self.rows, self.cols = R, C = p["rows"], p["cols"]
        L = p["max_seq_len"]
        self.lanes = R + C - 1
        self.max_blocks = L   # one query a block at worst (a dilation of L)
        # Lane keys reach from q0 - s·⌊w/2⌋ (window up to 2L) or q0 - ⌊kh/2⌋·W - ⌊kw/2⌋ to past L by a tile.
        reach = 2 * L * max(p["max_dilation"], 1) + L * L + 2 * L + self.lanes * max(p["max_dilation"], 1) * 2
        self.key_shape = signed(reach.bit_length() + 1)
        self.tile_layout = data.StructLayout({
            "block": range(self.max_blocks), "q0": range(L), "real": R, "base": self.key_shape,
            "mask": data.ArrayLayout(C, R), "keep": self.lanes, "first": 1, "last": 1, "run_end": 1})
        super().__init__({
            "start": In(1),
            "seq_len": In(range(L + 1)),
            "heads": In(range(p["max_heads"] + 1)),
            "pattern": In(PATTERN_WIDTH),
            "window": In(range(2 * L + 1)),
            "dilation": In(range(p["max_dilation"] + 1)),
            "grid_h": In(range(L + 1)), "grid_w": In(range(L + 1)),
            "window_h": In(range(2 * L + 1)), "window_w": In(range(2 * L + 1)),
            "busy": Out(1), "done": Out(1), "error": Out(1), "config_ok": Out(1),
            "tiles": Out(stream.Signature(self.tile_layout)),
        })

    @property
    def setup_cycles(self) -> int:
        return self.lanes + 2

    def elaborate(self, platform):
        m = Module()
        p = self.params
        R, C, L, U = self.rows, self.cols, p["max_seq_len"], self.lanes
        quiet = dict(reset_less=True)
        key = self.key_shape

        # --- runtime registers, checked over two registered stages (the grid's product, then the rest).
        is_window = self.pattern == PATTERN_CODES["window"]
        is_dilated = self.pattern == PATTERN_CODES["dilated"]
        is_grid = self.pattern == PATTERN_CODES["grid"]
        grid_area = Signal(range(L * L + 1), **quiet)
        m.d.sync += grid_area.eq(self.grid_h * self.grid_w)
        in_range = ((self.seq_len >= 1) & (self.seq_len <= L) & (self.heads >= 1) & (self.heads <= p["max_heads"])
                    & (is_window | is_dilated | is_grid)
                    & (~(is_window | is_dilated) | (self.window >= 1))
                    & (~is_dilated | ((self.dilation >= 1) & (self.dilation <= p["max_dilation"])))
                    & (~is_grid | ((grid_area == self.seq_len) & (self.window_h >= 1) & (self.window_w >= 1)
                                   & ((self.window_w | 1) <= self.grid_w))))
        m.d.sync += self.config_ok.eq(in_range)
        started = Signal()
        m.d.comb += started.eq(self.start & ~self.busy & self.config_ok)
        with m.If(self.start & ~self.busy):
            m.d.sync += self.error.eq(~self.config_ok)

        seq_len, heads = Signal.like(self.seq_len, **quiet), Signal.like(self.heads, **quiet)
        grid = Signal(**quiet)
        stride = Signal(range(p["max_dilation"] + 1), **quiet)
        width = Signal.like(self.grid_w, **quiet)           # W (1 off the grid)
        half = Signal(range(L + 1), **quiet)                # ⌊w/2⌋ or ⌊kw/2⌋
        starts_last = Signal(range(2 * L + 1), **quiet)     # 2⌊kh/2⌋ on the grid, else 0
        with m.If(started):
            m.d.sync += [seq_len.eq(self.seq_len), heads.eq(self.heads), grid.eq(is_grid),
                         stride.eq(Mux(is_dilated, self.dilation, 1)), width.eq(Mux(is_grid, self.grid_w, 1)),
                         half.eq(Mux(is_grid, self.window_w >> 1, self.window >> 1)),
                         starts_last.eq(Mux(is_grid, (self.window_h >> 1) << 1, 0)),
                         self.busy.eq(1), self.done.eq(0)]
        span = Signal(range(2 * L + 2), **quiet)            # 2·half + 1: the window's columns
        first_start = Signal(key, **quiet)                  # first tile's base - q0: -s·half or -⌊kh/2⌋·W - half
        half_rows_reach = Signal(range(L * L + 1), **quiet)
        m.d.sync += [span.eq((half << 1) + 1), half_rows_reach.eq((starts_last >> 1) * width),
                     first_start.eq(Mux(grid, -half_rows_reach - half, -(stride * half)))]
        tile_step = Signal(range(C * p["max_dilation"] + 1), **quiet)   # s·cols
        block_step = Signal(range(R * p["max_dilation"] + 1), **quiet)  # s·rows
        m.d.sync += [tile_step.eq(stride * C), block_step.eq(stride * R)]

        # --- setup: s·u for every lane u (and s·r for every row), and (r mod W) for r = 0 … rows.
        offsets = [Signal(range((U + 1) * p["max_dilation"] + 1), name=f"lane_offset_{u}", **quiet) for u in range(U)]
        columns = [Signal(range(L + 1), name=f"row_column_{r}", **quiet) for r in range(R + 1)]
        setup_step = Signal(range(U + 2), **quiet)
        offset_acc = Signal.like(offsets[0])
        column_acc = Signal(range(L + 1), **quiet)
        setting_up = Signal()
        with m.If(started):
            m.d.sync += [setting_up.eq(1), setup_step.eq(0), offset_acc.eq(0), column_acc.eq(0)]
        with m.Elif(setting_up):
            for u in range(U):
                with m.If(setup_step == u):
                    m.d.sync += offsets[u].eq(offset_acc)
            for r in range(R + 1):
                with m.If(setup_step == r):
                    m.d.sync += columns[r].eq(column_acc)
            m.d.sync += [offset_acc.eq(offset_acc + stride),
                         column_acc.eq(Mux(column_acc + 1 >= width, 0, column_acc + 1)),
                         setup_step.eq(setup_step + 1)]
            with m.If(setup_step == max(U, R + 1) - 1):
                m.d.sync += setting_up.eq(0)
        rows_step = columns[R]   # R mod W: a block's move along the image row

        # --- walker: head, block (residue, then queries of that residue), start (window row), tile.
        head = Signal.like(heads, **quiet)
        block = Signal(range(self.max_blocks), **quiet)
        residue = Signal(range(p["max_dilation"] + 1), **quiet)
        q0 = Signal(range(L + 1), **quiet)
        queries = [Signal(range(2 * L * max(p["max_dilation"], 1) + 1), name=f"query_{r}", **quiet)
                   for r in range(R)]
        query_x = [Signal(range(L + 1), name=f"query_x_{r}", **quiet) for r in range(R)]
        start_index = Signal.like(starts_last, **quiet)
        start_base = Signal(key, **quiet)     # this window row's first tile's base
        base = Signal(key, **quiet)
        left = Signal(signed(len(span) + 1), **quiet)      # span - cols·t: the columns left in the span
        column0 = Signal(key, **quiet)                     # grid: -half + cols·t, column 0's x offset
        block_fresh = Signal(**quiet)                       # no tile of the candidate's block held or sent yet

        def open_block(first_query, rows_q, rows_x):
            """Statements setting the block's per-row registers and its first candidate."""
            return ([q0.eq(first_query), start_index.eq(0), start_base.eq(first_query + first_start),
                     base.eq(first_query + first_start), left.eq(span), column0.eq(-half)]
                    + [queries[r].eq(rows_q[r]) for r in range(R)] + [query_x[r].eq(rows_x[r]) for r in range(R)])

        tile_last = left <= C
        start_last = start_index == starts_last
        step_in_residue = q0 + block_step   # next block's q0 within the residue
        residue_more = step_in_residue < seq_len
        next_residue = residue + 1
        residues_more = (next_residue < stride) & (next_residue < seq_len)
        block_last = tile_last & start_last & ~residue_more & ~residues_more
        run_last = block_last & (head == heads - 1)
        candidate_block_last = tile_last & start_last

        # --- one candidate in four states: thresholds, mask, send the held tile, send the block's last.
        THRESHOLDS, MASK, SEND, CLOSE, SETUP, IDLE = range(6)
        state = Signal(range(6), init=IDLE)
        lane_low, lane_high = Signal(key, **quiet), Signal(key, **quiet)   # s·u in [-base, L - base)
        row_real = Signal(R, **quiet)
        row_x = [Signal(key, name=f"row_x_{r}", **quiet) for r in range(R)]   # query's x + column 0's offset
        column_open = Signal(C, **quiet)                  # cols·t + c within the span
        cand = Signal(data.StructLayout({"block": range(self.max_blocks), "q0": range(L), "base": key,
                                         "block_last": 1, "run_last": 1}), **quiet)
        mask = Signal(data.ArrayLayout(C, R), **quiet)
        nonempty = Signal(**quiet)
        held = Signal(self.tile_layout, **quiet)
        held_valid = Signal()
        out_free = ~self.tiles.valid | self.tiles.ready
        with m.If(self.tiles.valid & self.tiles.ready):
            m.d.sync += self.tiles.valid.eq(0)

        with m.If(started):
            m.d.sync += [state.eq(SETUP), head.eq(0), block.eq(0), residue.eq(0), held_valid.eq(0),
                         block_fresh.eq(1), self.tiles.valid.eq(0)]
        with m.Switch(state):
            with m.Case(SETUP):
                with m.If(~setting_up):
                    m.d.sync += open_block(0, offsets[:R], columns[:R])
                    m.d.sync += state.eq(THRESHOLDS)
            with m.Case(THRESHOLDS):
                m.d.sync += [lane_low.eq(-base), lane_high.eq(seq_len - base),
                             row_real.eq(Cat(*[queries[r] < seq_len for r in range(R)])),
                             column_open.eq(Cat(*[left > c for c in range(C)])),
                             cand.block.eq(block), cand.q0.eq(q0), cand.base.eq(base),
                             cand.block_last.eq(candidate_block_last), cand.run_last.eq(run_last)]
                m.d.sync += [row_x[r].eq(query_x[r] + column0) for r in range(R)]
                m.d.sync += state.eq(MASK)
                # The walker moves on: the candidate is in the registers above.
                with m.If(~tile_last):
                    m.d.sync += [base.eq(base + tile_step), left.eq(left - C), column0.eq(column0 + C)]
                with m.Elif(~start_last):
                    m.d.sync += [start_index.eq(start_index + 1), start_base.eq(start_base + width),
                                 base.eq(start_base + width), left.eq(span), column0.eq(-half)]
                with m.Elif(residue_more):
                    m.d.sync += block.eq(block + 1)
                    m.d.sync += open_block(step_in_residue, [queries[r] + block_step for r in range(R)],
                                           [Mux(query_x[r] + rows_step >= width, query_x[r] + rows_step - width,
                                                query_x[r] + rows_step) for r in range(R)])
                with m.Elif(residues_more):
                    m.d.sync += [block.eq(block + 1), residue.eq(next_residue)]
                    m.d.sync += open_block(next_residue, [next_residue + offsets[r] for r in range(R)],
                                           columns[:R])
                with m.Else():
                    m.d.sync += [head.eq(head + 1), block.eq(0), residue.eq(0)]
                    m.d.sync += open_block(0, offsets[:R], columns[:R])
            with m.Case(MASK):
                bits = []
                for r in range(R):
                    word = []
                    for c in range(C):
                        u = r + c
                        inside = (offsets[u] >= lane_low) & (offsets[u] < lane_high)
                        on_row = ~grid | ((row_x[r] >= -c) & (row_x[r] < width - c))
                        word.append(row_real[r] & column_open[c] & inside & on_row)
                    bits.append(Cat(*word))
                m.d.sync += [mask.eq(Cat(*bits)), nonempty.eq(Cat(*bits).any()), state.eq(SEND)]
            with m.Case(SEND):
                # A non-empty candidate replaces the held tile, which leaves (not the block's last).
                with m.If(~nonempty):
                    m.d.sync += state.eq(CLOSE)
                with m.Elif(~held_valid | out_free):
                    with m.If(held_valid):
                        m.d.sync += [self.tiles.payload.eq(held), self.tiles.valid.eq(1)]
                    keep = Cat(*[Cat(*[mask[r][u - r] for r in range(R) if 0 <= u - r < C]).any() for u in range(U)])
                    m.d.sync += [held.block.eq(cand.block), held.q0.eq(cand.q0), held.real.eq(row_real),
                                 held.base.eq(cand.base), held.mask.eq(mask), held.keep.eq(keep),
                                 held.first.eq(block_fresh), held.last.eq(0), held.run_end.eq(0),
                                 held_valid.eq(1), block_fresh.eq(0), state.eq(CLOSE)]
            with m.Case(CLOSE):
                with m.If(~cand.block_last):
                    m.d.sync += state.eq(THRESHOLDS)
                with m.Elif(out_free):
                    m.d.sync += [self.tiles.payload.eq(held), self.tiles.payload.last.eq(1),
                                 self.tiles.payload.run_end.eq(cand.run_last), self.tiles.valid.eq(1),
                                 held_valid.eq(0), block_fresh.eq(1)]
                    with m.If(cand.run_last):
                        m.d.sync += [state.eq(IDLE), self.busy.eq(0), self.done.eq(1)]
                    with m.Else():
                        m.d.sync += state.eq(THRESHOLDS)
        return m
