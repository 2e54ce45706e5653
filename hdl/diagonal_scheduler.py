"""Diagonal-tile scheduler (SALO's sliding-window dataflow): the tiles, lanes and masks of each query block."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import boolean, reject_unknown

from .sparse_scheduler import PATTERN_CODES, checked_start, pattern_ports, scheduler_params

__all__ = ["DiagonalScheduler", "DIAGONAL_SCHEDULER_DEFAULTS", "diagonal_scheduler_params", "row_tile_fields"]

DIAGONAL_SCHEDULER_DEFAULTS = {
    "rows": 8,
    "cols": 8,
    "max_seq_len": 1024,
    "max_heads": 16,
    "max_dilation": 64,
    "max_globals": 4,
    "global_row": False,
}


def row_tile_fields(rows: int, cols: int) -> dict:
    """The fields a global row reads from each tile (a scheduler built with ``global_row``): the self
    column, the rows whose self element the tile holds, whether it brings a global key new to the row,
    and whether it is its head's first or last tile."""
    return {"self_column": range(cols), "self_rows": rows, "global_new": 1, "head_first": 1, "head_last": 1}


def diagonal_scheduler_params(**params) -> dict:
    """``DIAGONAL_SCHEDULER_DEFAULTS`` updated by ``params``, each checked (``ValueError`` names the bad one)."""
    reject_unknown("diagonal scheduler", params, DIAGONAL_SCHEDULER_DEFAULTS)
    p = {**DIAGONAL_SCHEDULER_DEFAULTS, **params}
    boolean("global_row", p["global_row"])
    scheduler_params(**{k: v for k, v in p.items() if k != "global_row"})   # the sparse scheduler's ranges
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
    a tile where none does is not sent.

    Global tokens (docs/sparse.md): a pair with a global token is masked in these tiles.  A block's
    global key ``k`` takes the last column of its ``k``-th tile that has a window element and whose
    last column lies past the span (``global_column``, ``global_key``: every plain row of the
    block); a block short of such tiles gets tiles of the global column alone (``base = q0``).
    After a head's blocks come its global blocks (``global_block``): up to ``rows`` global queries
    each, in list order, tiles at ``base = cols·t − (rows − 1)`` with stride 1 and every key in the
    sequence.  A block of global queries only has no tile.

    One candidate tile takes five cycles (thresholds, comparisons, mask, up to two sends), whatever
    the pattern: far below the array's ``2·d`` cycles a tile.  The last tile of a block is known
    when the block's candidates are done, so each tile waits in a holding register for the next
    one.

    Parameters
    ----------
    rows, cols : int
        Query block and tile width (the array's).
    max_seq_len, max_heads, max_dilation : int
        Largest runtime ``seq_len``, ``heads`` and ``dilation``.
    max_globals : int
        Entries of the global-token list.

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
        window of 0 or wider than the grid (``2⌊kw/2⌋ + 1 > W``: keys would wrap into other rows),
        more than max_globals globals or one outside the sequence.
    seq_len, heads, pattern, window, dilation, grid_h, grid_w, window_h, window_w, global_count, global_tokens : In
        Runtime registers, as :class:`~attn_rtl.hdl.sparse_scheduler.SparseScheduler`'s.
    busy, done, error, config_ok : Out(1)
        ``busy`` from ``start`` until the run's last tile is taken, when ``done`` rises (until the next
        ``start``); ``config_ok``: the registers of ``config_latency`` cycles ago are in range.
    tiles : Out(stream)
        ``block`` (per head), ``q0`` (the block's first query), ``real`` (bit ``r``: row ``r``
        holds a query), ``queries`` (row ``r``'s query, 0 without one), ``emit`` (bit ``r``: the block
        computes row ``r``'s output: a query, and in a plain block not a global one), ``base`` (signed:
        lane 0's key), ``mask`` (``rows`` words of ``cols`` bits), ``keep`` (bit ``u``: some element of
        lane ``u`` takes part, the keys a DMA fetches; the global column's elements are not lane ``u``'s), ``global_column`` and ``global_key`` (the last column
        is the global key ``global_tokens[global_key]``), ``global_block`` (its rows are global queries,
        stride 1), ``first``, ``last`` (of the block), ``run_end`` (last tile of the run).
    """

    #: Cycles the runtime registers must hold before ``start``.
    config_latency = 2

    def __init__(self, **params):
        p = diagonal_scheduler_params(**params)
        self.params = p
        self.rows, self.cols = R, C = p["rows"], p["cols"]
        L = p["max_seq_len"]
        self.lanes = R + C - 1
        self.max_blocks = L + p["max_globals"]   # one query a block at worst (a dilation of L), then the globals
        # Lane keys reach from q0 - s·⌊w/2⌋ (window up to 2L) or q0 - ⌊kh/2⌋·W - ⌊kw/2⌋ to past L by a tile.
        reach = 2 * L * max(p["max_dilation"], 1) + L * L + 2 * L + self.lanes * max(p["max_dilation"], 1) * 2
        self.key_shape = signed(reach.bit_length() + 1)
        self.tile_layout = data.StructLayout({
            "block": range(self.max_blocks), "q0": range(L), "real": R,
            "queries": data.ArrayLayout(range(L), R), "emit": R, "base": self.key_shape,
            "mask": data.ArrayLayout(C, R), "keep": self.lanes, "global_column": 1,
            "global_key": range(max(p["max_globals"], 2)), "global_block": 1, "first": 1, "last": 1, "run_end": 1,
            **(row_tile_fields(R, C) if p["global_row"] else {})})
        super().__init__({
            "start": In(1),
            "seq_len": In(range(L + 1)),
            "heads": In(range(p["max_heads"] + 1)),
            **pattern_ports(L, p["max_dilation"], p["max_globals"]),
            **({"global_row": In(1)} if p["global_row"] else {}),
            "busy": Out(1), "done": Out(1), "error": Out(1), "config_ok": Out(1),
            "tiles": Out(stream.Signature(self.tile_layout)),
        })

    @property
    def setup_cycles(self) -> int:
        return self.lanes + 3

    def elaborate(self, platform):
        m = Module()
        p = self.params
        R, C, L, U, G = self.rows, self.cols, p["max_seq_len"], self.lanes, p["max_globals"]
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
                                   & ((self.window_w | 1) <= self.grid_w)))
                    & (self.global_count <= G))
        for g in range(G):
            in_range = in_range & ((g >= self.global_count) | (self.global_tokens[g] < self.seq_len))
        started = checked_start(m, self, in_range)

        seq_len, heads = Signal.like(self.seq_len, **quiet), Signal.like(self.heads, **quiet)
        global_count = Signal.like(self.global_count, **quiet)
        tokens = Signal.like(self.global_tokens, **quiet)
        GR = p["global_row"]
        row = Signal(**quiet)   # the global queries are the global row's: no global blocks (stays 0 without one)
        grid = Signal(**quiet)
        stride = Signal(range(p["max_dilation"] + 1), **quiet)
        width = Signal.like(self.grid_w, **quiet)           # W (1 off the grid)
        half = Signal(range(L + 1), **quiet)                # ⌊w/2⌋ or ⌊kw/2⌋
        starts_last = Signal(range(2 * L + 1), **quiet)     # 2⌊kh/2⌋ on the grid, else 0
        with m.If(started):
            m.d.sync += [seq_len.eq(self.seq_len), heads.eq(self.heads), grid.eq(is_grid),
                         global_count.eq(self.global_count), tokens.eq(self.global_tokens),
                         stride.eq(Mux(is_dilated, self.dilation, 1)), width.eq(Mux(is_grid, self.grid_w, 1)),
                         half.eq(Mux(is_grid, self.window_w >> 1, self.window >> 1)),
                         starts_last.eq(Mux(is_grid, (self.window_h >> 1) << 1, 0)),
                         self.busy.eq(1), self.done.eq(0)]
            if GR:
                m.d.sync += row.eq(self.global_row & (self.global_count == 1) & (self.seq_len > 1))
        span = Signal(range(2 * L + 2), **quiet)            # 2·half + 1: the window's columns
        first_start = Signal(key, **quiet)                  # first tile's base - q0: -s·half or -⌊kh/2⌋·W - half
        half_rows_reach = Signal(range(L * L + 1), **quiet)
        # Run constants, each product in a register of its own before it is used (the walk starts
        # cycles after the registers are taken).
        stride_half = Signal(range(L * p["max_dilation"] + 1), **quiet)
        m.d.sync += [span.eq((half << 1) + 1), half_rows_reach.eq((starts_last >> 1) * width),
                     stride_half.eq(stride * half),
                     first_start.eq(Mux(grid, -half_rows_reach - half, -stride_half))]
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

        # --- walker: head; block (residue, then queries of that residue); start (window row); tile.  After a
        # head's blocks, its global blocks: up to rows global queries each, tiles at cols·t - (rows - 1).
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
        block_first = Signal(**quiet)                      # the walker's candidate opens its block
        in_globals = Signal(**quiet)                       # the walker is in the head's global blocks
        chunk = Signal(range(G + 1), **quiet)              # the global block's first entry of the list
        chunk_rows = Signal(R, **quiet)                    # its rows holding a global query

        def open_block(first_query, rows_q, rows_x):
            """Statements setting the block's per-row registers and its first candidate."""
            return ([q0.eq(first_query), start_index.eq(0), start_base.eq(first_query + first_start),
                     base.eq(first_query + first_start), left.eq(span), column0.eq(-half), block_first.eq(1),
                     in_globals.eq(0)]
                    + [queries[r].eq(rows_q[r]) for r in range(R)] + [query_x[r].eq(rows_x[r]) for r in range(R)])

        def open_head():
            """Statements starting a head: its first block, residue 0."""
            return [block.eq(0), residue.eq(0)] + open_block(0, offsets[:R], columns[:R])

        def open_global_block(first):
            return [in_globals.eq(1), chunk.eq(first), base.eq(-(R - 1)), block_first.eq(1),
                    chunk_rows.eq(Cat(*[first + r < global_count for r in range(R)])),
                    q0.eq(Mux(first < G, tokens.as_value().word_select(first, len(tokens[0])), 0))]

        step_in_residue = q0 + block_step   # next block's q0 within the residue
        next_residue = residue + 1
        # The walker's decisions, registered a cycle behind it: it moves only in THRESHOLDS (four cycles
        # apart) and as a head opens (SETTLE waits a cycle then), so they are current when read.  Their
        # compares in front of the walker's next-state choice were the 4x4 sliding proxy's critical path
        # (`left` -> `left <= cols`, `left > c` -> the walker's choice -> `start_index`, 12.4 ns).
        flags = {name: Signal(name=name, **quiet) for name in ("tile_last", "start_last", "residue_more",
                                                               "residues_more", "chunks_more", "last_head")}
        left_above = Signal(C, **quiet)   # left > c for each column c: the columns still in the span
        m.d.sync += [flags["tile_last"].eq(Mux(in_globals, base + C >= seq_len, left <= C)),
                     flags["start_last"].eq(start_index == starts_last),
                     flags["residue_more"].eq(step_in_residue < seq_len),
                     flags["residues_more"].eq((next_residue < stride) & (next_residue < seq_len)),
                     flags["chunks_more"].eq(chunk + R < global_count),
                     flags["last_head"].eq(head == heads - 1),
                     left_above.eq(Cat(*[left > c for c in range(C)]))]
        tile_last, start_last = flags["tile_last"], flags["start_last"]
        residue_more, residues_more, chunks_more = flags["residue_more"], flags["residues_more"], flags["chunks_more"]
        regular_done = tile_last & start_last & ~residue_more & ~residues_more
        head_done = Mux(in_globals, tile_last & ~chunks_more,
                        regular_done & (((global_count == 0) | row) if GR else (global_count == 0)))
        candidate_block_last = Mux(in_globals, tile_last, tile_last & start_last)

        # --- one candidate in five states: thresholds, comparisons, mask, send the held tile, close the
        # block (its extra global tiles, then its last tile).
        THRESHOLDS, COMPARE, MASK, SEND, CLOSE, SETUP, SETTLE, IDLE = range(8)
        state = Signal(range(8), init=IDLE)
        lane_low, lane_high = Signal(key, **quiet), Signal(key, **quiet)   # lane offsets in [-base, L - base)
        row_real, row_plain = Signal(R, **quiet), Signal(R, **quiet)       # a query; a query not global
        row_query = Signal(data.ArrayLayout(range(L), R), **quiet)
        row_x = [Signal(key, name=f"row_x_{r}", **quiet) for r in range(R)]   # query's x + column 0's offset
        column_open = Signal(C, **quiet)                  # cols·t + c within the span
        lane_inside, lane_token = Signal(U, **quiet), Signal(U, **quiet)   # lane in the sequence; a global key
        on_row = Signal(data.ArrayLayout(C, R), **quiet)  # the key in the query's image row (grid)
        right_edge = [Signal(signed(len(width) + 1), name=f"right_edge_{c}", **quiet) for c in range(C)]   # W - c
        m.d.sync += [right_edge[c].eq(width - c) for c in range(C)]
        token_offset = [Signal(key, name=f"token_offset_{g}", **quiet) for g in range(G)]   # token - base
        cand = Signal(data.StructLayout({"block": range(self.max_blocks), "q0": range(L), "base": key,
                                         "block_first": 1, "block_last": 1, "run_last": 1, "globals": 1,
                                         **({"head": range(p["max_heads"]), "head_last": 1,
                                             "self_column": signed(len(span) + 2), "self_row": 1} if GR else {})}),
                      **quiet)
        mask = Signal(data.ArrayLayout(C, R), **quiet)
        nonempty = Signal(**quiet)
        carried = Signal(range(G + 1), **quiet)           # the candidate's block: global keys placed so far
        carries, carried_key = Signal(**quiet), Signal(range(max(G, 2)), **quiet)
        held = Signal(self.tile_layout, **quiet)
        held_valid = Signal()
        # A block's tiles so far (its first is flagged ``first``).  In a run with a global row a block's last
        # tile stays held until a tile follows it: the head's last may only be known after a block with no
        # tile (of the global query alone), and the row needs it flagged.
        block_sent = Signal(**quiet)
        self_ok = Signal(**quiet)
        sent_any, sent_head = Signal(**quiet), Signal(range(p["max_heads"]), **quiet)
        owner_block = Signal(range(self.max_blocks), **quiet)   # the head's first block with a tile
        out_free = ~self.tiles.valid | self.tiles.ready
        with m.If(self.tiles.valid & self.tiles.ready):
            m.d.sync += self.tiles.valid.eq(0)

        with m.If(started):
            m.d.sync += [state.eq(SETUP), head.eq(0), held_valid.eq(0)]
            if GR:
                m.d.sync += [block_sent.eq(0), sent_any.eq(0)]
        # The run ends as its last tile is taken: busy until then, so no start drops a beat on offer.
        with m.If(self.tiles.valid & self.tiles.ready & self.tiles.payload.run_end):
            m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        with m.Switch(state):
            with m.Case(SETUP):
                with m.If(~setting_up):
                    m.d.sync += open_head() + [state.eq(SETTLE)]
            with m.Case(SETTLE):   # the walker's registered decisions take up the head just opened
                m.d.sync += state.eq(THRESHOLDS)
            with m.Case(THRESHOLDS):
                real = Mux(in_globals, chunk_rows, Cat(*[queries[r] < seq_len for r in range(R)]))
                is_token = [Cat(*[(g < global_count) & (queries[r] == tokens[g]) for g in range(G)]).any()
                            for r in range(R)]
                m.d.sync += [lane_low.eq(-base), lane_high.eq(seq_len - base), row_real.eq(real),
                             row_plain.eq(real & ~(Cat(*is_token) & ~in_globals.replicate(R))),
                             column_open.eq(Mux(in_globals, (1 << C) - 1, left_above)),
                             cand.block.eq(block), cand.q0.eq(q0), cand.base.eq(base), cand.globals.eq(in_globals),
                             cand.block_first.eq(block_first), cand.block_last.eq(candidate_block_last),
                             cand.run_last.eq(head_done & flags["last_head"]), block_first.eq(0)]
                if GR:
                    # Key and query meet on column half - cols·t (span - cols·t is left) of the window row
                    # dy = 0: the self column, whose keys are new to the global row.
                    m.d.sync += [cand.head.eq(head), cand.head_last.eq(head_done),
                                 cand.self_column.eq(left - half - 1),
                                 cand.self_row.eq(start_index == starts_last >> 1)]
                m.d.sync += [row_x[r].eq(query_x[r] + column0) for r in range(R)]
                for r in range(R):
                    # A global block's row r holds entry chunk + r of the list (chunk a multiple of rows).
                    token = 0
                    for g in range(r, G, R):
                        token = Mux(chunk == g - r, tokens[g], token)
                    m.d.sync += row_query[r].eq(Mux(real[r], Mux(in_globals, token, queries[r]), 0))
                m.d.sync += [token_offset[g].eq(tokens[g] - base) for g in range(G)]
                m.d.sync += state.eq(COMPARE)
                # The walker moves on: the candidate is in the registers above.
                with m.If(in_globals):
                    with m.If(~tile_last):
                        m.d.sync += base.eq(base + C)
                    with m.Elif(chunks_more):
                        m.d.sync += [block.eq(block + 1)] + open_global_block(chunk + R)
                    with m.Else():
                        m.d.sync += [head.eq(head + 1)] + open_head()
                with m.Elif(~tile_last):
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
                with m.Elif(((global_count != 0) & ~row) if GR else (global_count != 0)):
                    m.d.sync += [block.eq(block + 1)] + open_global_block(0)
                with m.Else():
                    m.d.sync += [head.eq(head + 1)] + open_head()
            with m.Case(COMPARE):
                # The comparisons, one per lane, lane and global, row and column, into registers: all in
                # the cycle that also ANDs them, they made the ECP5 critical path (55 MHz, 12 ns of routing).
                for u in range(U):
                    offset = Mux(cand.globals, u, offsets[u])   # global blocks: stride 1
                    m.d.sync += [
                        lane_inside[u].eq((offset >= lane_low) & (offset < lane_high)),
                        # A pair with a global key is the global column's (global blocks keep every key).
                        lane_token[u].eq(~cand.globals & Cat(*[(g < global_count) & (token_offset[g] == offsets[u])
                                                               for g in range(G)]).any()),
                    ]
                for r in range(R):
                    m.d.sync += on_row[r].eq(Cat(*[~grid | cand.globals
                                                   | ((row_x[r] >= -c) & (row_x[r] < right_edge[c]))
                                                   for c in range(C)]))
                m.d.sync += state.eq(MASK)
                if GR:
                    m.d.sync += self_ok.eq(~cand.globals & cand.self_row & (cand.self_column >= 0)
                                           & (cand.self_column < C))
            with m.Case(MASK):
                window = Cat(*[Cat(*[row_plain[r] & column_open[c] & lane_inside[r + c] & on_row[r][c]
                                     & ~lane_token[r + c] for c in range(C)]) for r in range(R)])
                placed = Mux(cand.block_first, 0, carried)
                # The block's next global key takes the last column if it lies past the span and the
                # tile is computed anyway.
                take = ~cand.globals & row_plain.any() & (placed < global_count) & ~column_open[C - 1] & window.any()
                m.d.sync += [mask.eq(window), nonempty.eq(window.any()), carries.eq(take),
                             carried_key.eq(placed), carried.eq(placed + take), state.eq(SEND)]
                with m.If(take):
                    m.d.sync += [mask[r][C - 1].eq(row_plain[r]) for r in range(R)]
            with m.Case(SEND):
                # A non-empty candidate replaces the held tile, which leaves (not the block's last).
                with m.If(~nonempty):
                    m.d.sync += state.eq(CLOSE)
                with m.Elif(~held_valid | out_free):
                    with m.If(held_valid):
                        m.d.sync += [self.tiles.payload.eq(held), self.tiles.valid.eq(1)]
                    lane_mask = [Cat(*[mask[r][u - r] & ~(carries & (u - r == C - 1))
                                       for r in range(R) if 0 <= u - r < C]).any() for u in range(U)]
                    if GR:
                        head_first = ~sent_any | (cand.head != sent_head)
                        owner = Mux(head_first, cand.block, owner_block)
                        column = cand.self_column[:len(held.self_column)]
                        m.d.sync += [held.self_column.eq(column),
                                     held.self_rows.eq(Cat(*[mask[r].bit_select(column, 1) & self_ok
                                                             for r in range(R)])),
                                     held.global_new.eq(carries & (cand.block == owner)),
                                     held.head_first.eq(head_first), held.head_last.eq(0), sent_any.eq(1),
                                     sent_head.eq(cand.head), owner_block.eq(owner), block_sent.eq(1)]
                    m.d.sync += [held.block.eq(cand.block), held.q0.eq(cand.q0), held.real.eq(row_real),
                                 held.queries.eq(row_query), held.emit.eq(row_plain),
                                 held.base.eq(cand.base), held.mask.eq(mask), held.keep.eq(Cat(*lane_mask)),
                                 held.global_column.eq(carries), held.global_key.eq(Mux(carries, carried_key, 0)),
                                 held.global_block.eq(cand.globals),
                                 # A block's tiles are held one after the other; its last leaves in CLOSE.
                                 held.first.eq(~block_sent if GR else ~held_valid),
                                 held.last.eq(0), held.run_end.eq(0), held_valid.eq(1), state.eq(CLOSE)]
            with m.Case(CLOSE):
                extra = ~cand.globals & row_plain.any() & (carried < global_count)
                with m.If(~cand.block_last):
                    m.d.sync += state.eq(THRESHOLDS)
                with m.Elif(extra):
                    # The block had too few free last columns: a tile of the global column alone.
                    m.d.sync += [mask.eq(0), nonempty.eq(1), carries.eq(1), carried_key.eq(carried),
                                 carried.eq(carried + 1), cand.base.eq(cand.q0), state.eq(SEND)]
                    if GR:
                        m.d.sync += self_ok.eq(0)
                    m.d.sync += [mask[r][C - 1].eq(row_plain[r]) for r in range(R)]
                with m.Elif((row & ~cand.head_last) if GR else 0):
                    # (The block's last tile, if it had one, leaves with the next tile.)
                    m.d.sync += [held.last.eq(held.last | block_sent), block_sent.eq(0), state.eq(THRESHOLDS)]
                with m.Elif(out_free | ~held_valid):
                    # (A block of global queries only has no tile here: they are computed in their own, or the
                    # global row's; with the row the held tile is then the previous block's last.)
                    with m.If(held_valid):
                        m.d.sync += [self.tiles.payload.eq(held), self.tiles.payload.last.eq(1),
                                     self.tiles.payload.run_end.eq(cand.run_last), self.tiles.valid.eq(1),
                                     held_valid.eq(0)]
                        if GR:
                            m.d.sync += self.tiles.payload.head_last.eq(cand.head_last)
                    if GR:
                        m.d.sync += block_sent.eq(0)
                    with m.If(cand.run_last):
                        m.d.sync += state.eq(IDLE)
                    with m.Else():
                        m.d.sync += state.eq(THRESHOLDS)
        return m
