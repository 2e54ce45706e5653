"""Sparse-window scheduler (SALO): the key tiles each query block computes, and their masks."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import boolean, positive_int, reject_unknown

__all__ = ["SparseScheduler", "SCHEDULER_DEFAULTS", "PATTERN_CODES", "PATTERN_WIDTH", "scheduler_params",
           "checked_start", "pattern_ports"]

#: Runtime ``pattern`` register values (sim/sparse.py PATTERNS, in order).
PATTERN_CODES = {"dense": 0, "window": 1, "dilated": 2, "grid": 3, "causal": 4, "causal-window": 5}
#: Width of the ``pattern`` register.
PATTERN_WIDTH = 3

SCHEDULER_DEFAULTS = {
    "rows": 8,
    "cols": 8,
    "max_seq_len": 1024,
    "max_heads": 16,
    "max_dilation": 64,
    "max_globals": 4,
    "sparse": True,
}


def scheduler_params(**params) -> dict:
    """``SCHEDULER_DEFAULTS`` updated by ``params``, each checked (``ValueError`` names the bad one)."""
    reject_unknown("scheduler", params, SCHEDULER_DEFAULTS)
    p = {**SCHEDULER_DEFAULTS, **params}
    positive_int("rows", p["rows"], at_most=64)
    positive_int("cols", p["cols"], at_most=64)
    positive_int("max_seq_len", p["max_seq_len"], at_most=1 << 20)
    positive_int("max_heads", p["max_heads"], at_most=1024)
    positive_int("max_dilation", p["max_dilation"], at_most=1 << 16)
    positive_int("max_globals", p["max_globals"], at_most=64)
    boolean("sparse", p["sparse"])
    return p


def pattern_ports(max_seq_len: int, max_dilation: int, max_globals: int) -> dict:
    """A scheduler's runtime pattern registers (docs/sparse.md), as signature members."""
    L = max_seq_len
    return {
        "pattern": In(PATTERN_WIDTH),
        "window": In(range(2 * L + 1)),
        "dilation": In(range(max_dilation + 1)),
        "grid_h": In(range(L + 1)), "grid_w": In(range(L + 1)),
        "window_h": In(range(2 * L + 1)), "window_w": In(range(2 * L + 1)),
        "global_count": In(range(max_globals + 1)),
        "global_tokens": In(data.ArrayLayout(range(L), max_globals)),
    }


def checked_start(m: Module, unit, in_range) -> Signal:
    """A scheduler's start: ``config_ok`` registers ``in_range``; ``start`` while not ``busy`` starts the
    run if it is set, else raises ``error``.  Returns the signal that is high as the run starts."""
    m.d.sync += unit.config_ok.eq(in_range)
    started = Signal()
    m.d.comb += started.eq(unit.start & ~unit.busy & unit.config_ok)
    with m.If(unit.start & ~unit.busy):
        m.d.sync += unit.error.eq(~unit.config_ok)
    return started


class SparseScheduler(wiring.Component):
    """For every head and query block, the keys with an allowed pair, gathered into tiles with masks.

    Query block ``b`` is queries ``[b·rows, b·rows + rows)``.  The pattern
    rules are those of ``sim/sparse.py`` (docs/sparse.md): dense, sliding
    window ``|i−j| ≤ ⌊w/2⌋``, dilated window (``δ`` divides ``i−j`` and
    ``|i−j| ≤ δ·⌊w/2⌋``), 2-D window on an ``H×W`` raster grid, each with up to
    ``max_globals`` global tokens; and the decoder patterns of docs/numerics.md,
    section 10: ``causal`` (``j ≤ p``) and ``causal-window`` (``p − w < j ≤ p``)
    at query positions ``p = seq_len − query_len + i``, with ``group`` query
    heads sharing each key head: the run's ``query_len·group`` queries are
    stacked position-major (query ``x`` is head ``x mod group`` of the group at
    query ``⌊x / group⌋``), so a block holds the group's heads at the same
    positions and every key tile serves all of them.  For each block the scheduler walks the
    keys of a range that holds every key the block can reach
    (``attn_rtl.sim.sparse.walk_range``: the whole sequence when dense or when the
    block holds a global query; the window's reach; the grid rows within
    ``kh/2``), one key per cycle, then the global keys outside the range.
    A key with no allowed pair in the block is dropped; the others are
    packed ``cols`` at a time into key tiles, each with its key indices, its
    ``count`` and its ``rows × cols`` mask, so the engine fetches and
    computes only keys that take part (``attn_rtl.sim.sparse.block_keys`` is the
    order).  Every block emits at least one tile (a query attends to
    itself), flagged ``first`` and ``last``.

    A key's mask column comes from registers in one stage: for the window,
    dilated and causal patterns each row's keys form an interval ``[a_r, b_r]``
    (``i ± δ·⌊w/2⌋``; ``[0, p]``; ``[p − w + 1, p]``), and two counters per row,
    ``b_r − j`` and ``j − a_r``, set once per block and stepped with the walked
    key, say by their sign bits whether ``j`` lies in it (no comparator between
    the key and the mask).  Residues mod ``δ`` and grid coordinates of the
    block's queries are carried per row and advanced by ``rows`` in mixed radix
    (set up once at start by counting), those of the walked key by one; a
    causal row's position is its quotient by ``group`` plus the cache offset.
    The walk costs three set-up cycles, ``hi − lo`` cycles and the global count
    per block, a few per emitted tile: the engine spends at least ``d + count``
    cycles on each.

    Parameters
    ----------
    rows, cols : int
        Query block and key tile sizes (the array's).
    max_seq_len, max_heads : int
        Largest runtime ``seq_len`` and ``heads``; ``max_heads`` also bounds ``group``.
    max_dilation : int
        Largest runtime ``dilation``.
    max_globals : int
        Entries of the global-token list.
    sparse : bool
        ``False`` builds the dense walk only (every tile, padding masked): the
        pattern registers are then ignored and a pattern other than dense is an
        error.

    Attributes
    ----------
    setup_cycles : int
        Cycles from ``start`` to the first candidate key.
    config_latency : int
        Cycles the runtime registers must hold before ``start``: the range check is registered.

    Ports
    -----
    start : In(1)
        Takes the runtime registers and starts when not ``busy``; the registers must have
        held their values for ``config_latency`` cycles.  Out-of-range
        values set ``error`` instead (seq_len or heads outside 1..max, window 0
        for window/dilated/causal-window, dilation outside 1..max_dilation, grid not holding
        seq_len tokens or a 2-D window of 0, more than max_globals globals or
        one outside the sequence, globals with a causal pattern, group outside
        1..max_heads or above 1 with the window, dilated and grid patterns).
    seq_len, heads, pattern, window, dilation, grid_h, grid_w, window_h, window_w : In
        Runtime registers; ``pattern`` as in ``PATTERN_CODES``.
    query_len : In(range(max_seq_len + 1))
        Runtime: queries per head, at most ``seq_len``; equal to it except in a dense run (a
        recomputation of some rows against all ``seq_len`` keys, or a decode step) and a causal one
        (the newest ``query_len`` of ``seq_len`` positions).
    group : In(range(2·max_heads + 1))
        Runtime: query heads per key head (1 without grouping); dense and causal patterns only.
    queries : Out(range(max_seq_len·max_heads + 1))
        ``query_len·group``, the run's stacked queries per key head (blocks of ``rows``), a register
        of the runtime values one cycle earlier.
    importance : In(1)
        Runtime: an importance run walks every block twice, the first pass's tiles flagged ``scan``
        (``first`` and ``last`` mark each pass's ends; ``run_end`` only the computing pass's).
    global_count : In(range(max_globals + 1))
    global_tokens : In(ArrayLayout(range(max_seq_len), max_globals))
    busy, done, error : Out(1)
    config_ok : Out(1)
        The runtime registers of ``config_latency`` cycles ago were in range (a register): ``start``
        would start.
    tiles : Out(stream)
        ``block``, ``keys`` (``cols`` key indices; lanes past ``count`` are 0),
        ``count`` (1 to ``cols``), ``first``, ``last`` (of the block),
        ``run_end`` (last tile of the run), ``scan`` (a tile of an importance run's
        scan pass), ``mask`` (``rows`` words of
        ``cols`` bits, bit ``c`` of word ``r`` set when query ``b·rows+r``
        attends key ``keys[c]``; padding rows and lanes past ``count`` are 0).
    """

    def __init__(self, **params):
        p = scheduler_params(**params)
        self.params = p
        self.rows, self.cols = p["rows"], p["cols"]
        L = p["max_seq_len"]
        #: Stacked queries per key head at most (query_len·group).
        self.max_queries = L * p["max_heads"]
        self.max_blocks = -(-self.max_queries // self.rows)
        self.tile_layout = data.StructLayout({
            "block": range(self.max_blocks), "keys": data.ArrayLayout(range(L), self.cols),
            "count": range(self.cols + 1), "first": 1, "last": 1, "run_end": 1, "scan": 1,
            "mask": data.ArrayLayout(self.cols, self.rows)})
        super().__init__({
            "start": In(1),
            "seq_len": In(range(L + 1)),
            "query_len": In(range(L + 1)),
            "heads": In(range(p["max_heads"] + 1)),
            "group": In(range(2 * p["max_heads"] + 1)),
            "queries": Out(range(self.max_queries + 1)),
            "importance": In(1),
            **pattern_ports(L, p["max_dilation"], p["max_globals"]),
            "busy": Out(1), "done": Out(1), "error": Out(1), "config_ok": Out(1),
            "tiles": Out(stream.Signature(self.tile_layout)),
        })

    #: Cycles the runtime registers must hold before ``start`` (``config_ok`` is registered).
    config_latency = 2

    @property
    def setup_cycles(self) -> int:
        return self.rows + 5

    def elaborate(self, platform):
        m = Module()
        p = self.params
        R, C, L, G = self.rows, self.cols, p["max_seq_len"], p["max_globals"]

        # --- runtime registers, checked at start.
        # Reset is kept to the flags that say what is valid (busy, setting_up, w_valid, a_valid,
        # filled, full, used, closing, block_open, tiles.valid): everything else is loaded before it is used.
        quiet = dict(reset_less=True)
        seq_len, query_len = Signal.like(self.seq_len, **quiet), Signal.like(self.queries, **quiet)
        heads = Signal.like(self.heads, **quiet)
        importance, scan = Signal(**quiet), Signal(**quiet)
        pattern, window = Signal(PATTERN_WIDTH, **quiet), Signal.like(self.window, **quiet)
        offset = Signal(range(L), **quiet)   # position of query 0: seq_len - query_len
        dilation = Signal.like(self.dilation, **quiet)
        grid_w = Signal.like(self.grid_w, **quiet)
        half_h, half_w = Signal.like(self.window_h, **quiet), Signal.like(self.window_w, **quiet)
        global_count = Signal.like(self.global_count, **quiet)
        global_tokens = Signal.like(self.global_tokens, **quiet)
        is_dilated = self.pattern == PATTERN_CODES["dilated"]
        is_1d = (self.pattern == PATTERN_CODES["window"]) | is_dilated
        is_grid = self.pattern == PATTERN_CODES["grid"]
        is_causal_window = self.pattern == PATTERN_CODES["causal-window"]
        is_causal = (self.pattern == PATTERN_CODES["causal"]) | is_causal_window
        is_dense = self.pattern == PATTERN_CODES["dense"]
        # The check is registered in two stages (the grid's product, then the comparisons), so
        # config_ok and start see the registers as they were config_latency cycles earlier.
        grid_area = Signal(range(L * L + 1), **quiet)
        m.d.sync += [grid_area.eq(self.grid_h * self.grid_w), self.queries.eq(self.query_len * self.group)]
        globals_ok = Const(1)
        for g in range(G):
            globals_ok = globals_ok & ((g >= self.global_count) | (self.global_tokens[g] < self.seq_len))
        # Fewer queries than keys only with the dense pattern (any) and the causal ones (the newest
        # positions); grouped heads only with those, whose masks know a stacked row's position.
        queries_ok = ((self.query_len >= 1) & (self.query_len <= self.seq_len)
                      & (self.group >= 1) & (self.group <= p["max_heads"])
                      & (is_dense | is_causal | ((self.query_len == self.seq_len) & (self.group == 1)))
                      & ~(is_causal & (self.global_count != 0)))
        in_range = (queries_ok & (self.seq_len >= 1) & (self.seq_len <= L) & (self.heads >= 1)
                    & (self.heads <= p["max_heads"])
                    & (self.global_count <= G) & globals_ok)
        if p["sparse"]:
            # Codes past the last pattern (6 and 7 of the 3-bit register) name no pattern: refused.
            in_range = (in_range & (self.pattern <= max(PATTERN_CODES.values()))
                        & (~(is_1d | is_causal_window) | (self.window >= 1))
                        & (~is_dilated | ((self.dilation >= 1) & (self.dilation <= p["max_dilation"])))
                        & (~is_grid | ((grid_area == self.seq_len) & (self.window_h >= 1)
                                       & (self.window_w >= 1))))
        else:
            in_range = in_range & is_dense & (self.global_count == 0)
        started = checked_start(m, self, in_range)
        if p["sparse"]:
            with m.If(started):
                m.d.sync += pattern.eq(self.pattern)
        else:
            # The pattern registers are ignored: a constant lets synthesis drop the walk-range logic.
            pattern = Const(PATTERN_CODES["dense"], PATTERN_WIDTH)
        with m.If(started):
            m.d.sync += [seq_len.eq(self.seq_len), query_len.eq(self.queries), heads.eq(self.heads),
                         offset.eq(self.seq_len - self.query_len),
                         importance.eq(self.importance),
                         window.eq(self.window), dilation.eq(Mux(is_dilated, self.dilation, 1)),
                         grid_w.eq(Mux(is_grid, self.grid_w, 1)),
                         half_h.eq(self.window_h >> 1), half_w.eq(self.window_w >> 1),
                         global_count.eq(self.global_count), global_tokens.eq(self.global_tokens),
                         self.busy.eq(1), self.done.eq(0)]

        # The modulus of the mixed-radix coordinates: dilation (residues), grid width (columns) or
        # group (a stacked query's head within its group, the quotient its query).
        radix_max = max(L, p["max_dilation"], p["max_heads"])
        if p["sparse"]:
            modulus = Signal(range(radix_max + 1), **quiet)
            with m.If(started):
                m.d.sync += modulus.eq(Mux(is_grid, self.grid_w, Mux(is_dilated, self.dilation,
                                                                      Mux(is_causal, self.group, 1))))
        else:
            modulus = Const(1, range(radix_max + 1))
        # The lowest key of a causal-window row at query 0 (negative near the start): rows add their query.
        floor_base = Signal(signed(len(offset) + len(window) + 1), **quiet)
        m.d.sync += floor_base.eq(offset - window + 1)
        # Row intervals [a_r, b_r] and the counters b_r - j, j - a_r: wide enough for a window's reach.
        span = L + R + p["max_dilation"] * L + 1
        bound = signed(span.bit_length() + 2)
        limit = Signal(range(p["max_dilation"] * L + 1), **quiet)   # |i - j| bound of window/dilated
        m.d.sync += limit.eq(dilation * (window >> 1))
        rows_reach = Signal(range(2 * L * L + 1), **quiet)           # keys in half_h grid rows
        m.d.sync += rows_reach.eq(half_h * grid_w)

        # --- setup: count x = 0 .. rows in (quotient, remainder) of modulus, recording each.
        coord = data.StructLayout({"q": range(L + 1), "r": range(radix_max)})
        table = Signal(data.ArrayLayout(coord, R + 1), **quiet)
        count = Signal(coord, **quiet)
        setup_step = Signal(range(R + 2), **quiet)
        setting_up = Signal()
        with m.If(started):
            m.d.sync += [setting_up.eq(1), setup_step.eq(0), count.eq(0)]
        with m.Elif(setting_up):
            m.d.sync += table[setup_step].eq(count)   # table is indexed by the step: a decoder, no mux tree
            with m.If(count.r + 1 >= modulus):
                m.d.sync += [count.r.eq(0), count.q.eq(count.q + 1)]
            with m.Else():
                m.d.sync += count.r.eq(count.r + 1)
            m.d.sync += setup_step.eq(setup_step + 1)
            with m.If(setup_step == R):
                m.d.sync += setting_up.eq(0)

        def advance(c, by):
            """Statements adding the coordinates ``by`` to ``c`` (the remainder stays below the modulus)."""
            total = c.r + by.r
            wrap = total >= modulus
            return [c.q.eq(Mux(wrap, c.q + by.q + 1, c.q + by.q)), c.r.eq(Mux(wrap, total - modulus, total))]

        # --- walker: per head and block, two set-up phases and a cycle priming the row counters, then
        # the range's keys, then the globals.
        START_A, START_B, RANGE, GLOBALS = range(4)
        w_valid = Signal()
        phase = Signal(2, **quiet)
        h = Signal(range(p["max_heads"]), **quiet)
        b = Signal(range(self.max_blocks), **quiet)
        i0 = Signal(range(self.max_queries + R), **quiet)
        qc = Signal(data.ArrayLayout(coord, R), **quiet)
        j, lo, hi = Signal(range(L + 1), **quiet), Signal(range(L + 1), **quiet), Signal(range(L + 1), **quiet)
        kc = Signal(coord, **quiet)
        gi = Signal(range(G), **quiet)
        q_global, rows_ok = Signal(R, **quiet), Signal(R, **quiet)
        # Per row, the interval of keys the window and causal patterns allow, [low_end, high_end], and
        # the counters high_end - j and j - low_end: the key lies in it when both are non-negative.
        low_end, high_end = (Signal(data.ArrayLayout(bound, R), **quiet) for _ in range(2))
        above, below = (Signal(data.ArrayLayout(bound, R), **quiet) for _ in range(2))
        # The first cycle of RANGE sets the counters from lo; no key is on offer in it.
        priming = Signal(**quiet)
        first_setup = Signal()
        m.d.sync += first_setup.eq(setting_up & (setup_step == R))
        # The block holds the run's last queries: a flag set in START_A, so the walk range and the
        # walk's end see a flip-flop, not i0's adder and compare (with the range's own adders behind
        # them, the sparse scheduler's critical path at c973873: 61.8 MHz).
        block_last = Signal(**quiet)
        # The walk range's end keys, registered in START_A from their sums: the block's last query's
        # reach (window, dilated) and the start of the grid row of its last row (grid).
        reach_hi = Signal(range(L + R + p["max_dilation"] * L + 1), **quiet)
        grid_row_end = Signal(range(L + R), **quiet)
        ql_reach = Signal.like(reach_hi, **quiet)      # query_len + limit, the last block's reach
        rows_reach_w = Signal(range(2 * L * L + L + 1), **quiet)
        m.d.sync += [ql_reach.eq(query_len + limit), rows_reach_w.eq(rows_reach + grid_w)]
        head_last = h + 1 >= heads
        has_globals = global_count != 0 if p["sparse"] else Const(0)
        range_end = j + 1 >= hi
        globals_end = gi + 1 >= global_count
        candidate = w_valid & phase[1] & ~priming   # RANGE or GLOBALS: a key is on offer
        a_ready = Signal()
        w_step = candidate & a_ready
        block_end = Mux(phase == RANGE, range_end & ~has_globals, globals_end)

        with m.If(first_setup):
            m.d.sync += [w_valid.eq(1), phase.eq(START_A), h.eq(0), b.eq(0), i0.eq(0), scan.eq(importance)]
            m.d.sync += [qc[r].eq(table[r]) for r in range(R)]
        with m.Elif(w_valid & (phase == START_A)):
            ends = i0 + R >= query_len
            m.d.sync += [block_last.eq(ends), reach_hi.eq(Mux(ends, ql_reach, i0 + R + limit)),
                         grid_row_end.eq(i0 + (R - 1) - qc[R - 1].r)]
            for r in range(R):
                hits = [(g < global_count) & (global_tokens[g] == i0 + r) for g in range(G)]
                m.d.sync += [q_global[r].eq(Cat(*hits).any() if p["sparse"] else 0),
                             rows_ok[r].eq(i0 + r < query_len)]
                if p["sparse"]:
                    causal_window = pattern == PATTERN_CODES["causal-window"]
                    with m.If((pattern == PATTERN_CODES["causal"]) | causal_window):
                        m.d.sync += [high_end[r].eq(offset + qc[r].q),
                                     low_end[r].eq(Mux(causal_window, floor_base + qc[r].q, 0))]
                    with m.Else():   # window and dilated: i ± δ·⌊w/2⌋
                        m.d.sync += [high_end[r].eq(i0 + r + limit), low_end[r].eq(i0 + r - limit)]
            m.d.sync += phase.eq(START_B)
        with m.Elif(w_valid & (phase == START_B)):
            # The walk range: the keys any query of the block can reach (attn_rtl.sim.sparse.walk_range).
            whole = (pattern == PATTERN_CODES["dense"]) | q_global.any()
            near = i0 >= limit
            row_start = i0 - qc[0].r
            rows_up = qc[0].q >= half_h
            grid_hi = grid_row_end + rows_reach_w   # a non-last block: its last row is row R - 1
            with m.If(whole):
                m.d.sync += [lo.eq(0), j.eq(0), hi.eq(seq_len), kc.eq(0)]
            with m.Elif(pattern == PATTERN_CODES["grid"]):
                start = Mux(rows_up, row_start - rows_reach, 0)
                m.d.sync += [lo.eq(start), j.eq(start), kc.q.eq(Mux(rows_up, qc[0].q - half_h, 0)), kc.r.eq(0),
                             hi.eq(Mux(block_last | (grid_hi >= seq_len), seq_len, grid_hi))]
            with m.Elif((pattern == PATTERN_CODES["causal"]) | (pattern == PATTERN_CODES["causal-window"])):
                # Keys from row 0's lowest to the last row's position (its query; the run's last is
                # the last key): each has an allowed pair in the block.
                start = Mux(low_end[0] > 0, low_end[0], 0)
                m.d.sync += [lo.eq(start), j.eq(start), kc.eq(0),
                             hi.eq(Mux(block_last, seq_len, high_end[R - 1] + 1))]
            with m.Else():
                start = Mux(near, i0 - limit, 0)
                m.d.sync += [lo.eq(start), j.eq(start), kc.q.eq(0), kc.r.eq(Mux(near, qc[0].r, 0)),
                             hi.eq(Mux(reach_hi >= seq_len, seq_len, reach_hi))]
            m.d.sync += [phase.eq(RANGE), priming.eq(1)]
        with m.Elif(w_valid & priming):
            m.d.sync += priming.eq(0)
            for r in range(R):
                m.d.sync += [above[r].eq(high_end[r] - lo), below[r].eq(lo - low_end[r])]
        with m.Elif(w_step):
            with m.If(phase == RANGE):
                m.d.sync += [j.eq(j + 1), *advance(kc, Const({"q": 0, "r": 1}, coord))]
                m.d.sync += [s for r in range(R) for s in (above[r].eq(above[r] - 1), below[r].eq(below[r] + 1))]
                with m.If(range_end & has_globals):
                    m.d.sync += [phase.eq(GLOBALS), gi.eq(0)]
            with m.Else():
                m.d.sync += gi.eq(gi + 1)
            with m.If(block_end & scan):
                # The scan pass of an importance run ends: walk the same block again.
                m.d.sync += [phase.eq(START_A), scan.eq(0)]
            with m.Elif(block_end):
                m.d.sync += [phase.eq(START_A), scan.eq(importance)]
                with m.If(~block_last):
                    m.d.sync += [b.eq(b + 1), i0.eq(i0 + R), *[s for r in range(R) for s in advance(qc[r], table[R])]]
                with m.Else():
                    m.d.sync += [b.eq(0), i0.eq(0)]
                    m.d.sync += [qc[r].eq(table[r]) for r in range(R)]
                    with m.If(head_last):
                        m.d.sync += w_valid.eq(0)
                    with m.Else():
                        m.d.sync += h.eq(h + 1)

        # --- the candidate key's mask column, one stage.
        global_key = Signal(range(L))
        m.d.comb += global_key.eq(global_tokens[gi] if G > 1 else global_tokens[0])
        key = Mux(phase == GLOBALS, global_key, j)
        k_global = Cat(*[(g < global_count) & (global_tokens[g] == j) for g in range(G)]).any()

        def within(x, y, bound):
            return Mux(x >= y, x - y, y - x) <= bound

        column = Signal(R)
        for r in range(R):
            base = Signal(name=f"base_{r}")
            if p["sparse"]:
                inside = (above[r] >= 0) & (below[r] >= 0)   # sign bits
                window_pair = inside & (qc[r].r == kc.r)   # δ divides i - j (the residues are 0 otherwise)
                grid_pair = within(qc[r].q, kc.q, half_h) & within(qc[r].r, kc.r, half_w)
                with m.Switch(pattern):
                    with m.Case(PATTERN_CODES["dense"]):
                        m.d.comb += base.eq(1)
                    with m.Case(PATTERN_CODES["window"], PATTERN_CODES["dilated"]):
                        m.d.comb += base.eq(window_pair)
                    with m.Case(PATTERN_CODES["grid"]):
                        m.d.comb += base.eq(grid_pair)
                    with m.Case(PATTERN_CODES["causal"], PATTERN_CODES["causal-window"]):
                        m.d.comb += base.eq(inside)
                in_range = base | q_global[r] | k_global
            else:
                in_range = 1
            # A global key taken after the range is attended by every query.
            m.d.comb += column[r].eq(Mux(phase == GLOBALS, 1, in_range) & rows_ok[r])
        outside = (global_key < lo) | (global_key >= hi)
        include = column.any() & ((phase == RANGE) | outside)

        # --- stage A: the candidate key, its column and flags.
        a_valid = Signal()
        a = Signal(data.StructLayout({"block": range(self.max_blocks), "key": range(L), "column": R,
                                      "include": 1, "block_end": 1, "run_end": 1, "scan": 1}), **quiet)
        a_take = Signal()
        m.d.comb += a_ready.eq(~a_valid | a_take)
        with m.If(w_step):
            m.d.sync += [a_valid.eq(1), a.block.eq(b), a.key.eq(key), a.column.eq(column), a.include.eq(include),
                         a.block_end.eq(block_end), a.run_end.eq(block_end & block_last & head_last & ~scan),
                         a.scan.eq(scan)]
        with m.Elif(a_take):
            m.d.sync += a_valid.eq(0)

        # --- packer: included keys fill a tile, lane by lane; a full tile is held until the next key
        # (or the block's end) shows whether it is the block's last.
        lane_keys = Signal(data.ArrayLayout(range(L), C), **quiet)
        lane_cols = Signal(data.ArrayLayout(R, C), **quiet)
        filled = Signal(range(C + 1))
        tile_block = Signal(range(self.max_blocks), **quiet)
        tile_run_end, tile_scan = Signal(**quiet), Signal(**quiet)
        closing, block_open = Signal(), Signal()
        out_free = ~self.tiles.valid | self.tiles.ready
        # Whether the tile is full and which lanes it uses, as flip-flops kept with `filled`: compared
        # with `filled`, they put a carry compare in front of the output register's enable and its
        # zeroing of unused lanes (160 flip-flops at 8x8).
        full, used = Signal(), Signal(C)
        m.d.comb += a_take.eq(a_valid & ~closing & (~(a.include & full) | out_free))
        emit_full = a_take & a.include & full
        emit_last = closing & out_free
        out = Signal(self.tile_layout, **quiet)
        m.d.comb += self.tiles.payload.eq(out)
        with m.If(emit_full | emit_last):
            m.d.sync += [self.tiles.valid.eq(1), out.block.eq(tile_block), out.count.eq(filled),
                         out.first.eq(~block_open), out.last.eq(emit_last), out.run_end.eq(emit_last & tile_run_end),
                         out.scan.eq(tile_scan),
                         block_open.eq(~emit_last)]
            for c in range(C):
                m.d.sync += out.keys[c].eq(Mux(used[c], lane_keys[c], 0))
                m.d.sync += [out.mask[r][c].eq(lane_cols[c][r] & used[c]) for r in range(R)]
        with m.Elif(self.tiles.ready):
            m.d.sync += self.tiles.valid.eq(0)
        with m.If(emit_last):
            m.d.sync += [filled.eq(0), full.eq(0), used.eq(0), closing.eq(0)]
        with m.If(a_take):
            with m.If(a.include):
                lane = Mux(full, 0, filled)
                for c in range(C):
                    with m.If(lane == c):
                        m.d.sync += [lane_keys[c].eq(a.key), lane_cols[c].eq(a.column)]
                m.d.sync += [filled.eq(lane + 1), full.eq(Mux(full, C == 1, filled == C - 1)),
                             used.eq(Mux(full, 1, Cat(1, used[:-1]))),
                             tile_block.eq(a.block), tile_run_end.eq(a.run_end),
                             tile_scan.eq(a.scan), closing.eq(a.block_end)]
            with m.Elif(a.block_end):
                m.d.sync += [closing.eq(1), tile_run_end.eq(a.run_end), tile_scan.eq(a.scan)]

        with m.If(self.tiles.valid & self.tiles.ready & self.tiles.payload.run_end):
            m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m
