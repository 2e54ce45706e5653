"""Sparse-window scheduler (SALO): the key tiles each query block computes, and their masks."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import boolean, positive_int, reject_unknown

__all__ = ["SparseScheduler", "SCHEDULER_DEFAULTS", "PATTERN_CODES", "scheduler_params"]

#: Runtime ``pattern`` register values (sim/sparse.py PATTERNS, in order).
PATTERN_CODES = {"dense": 0, "window": 1, "dilated": 2, "grid": 3}

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


class SparseScheduler(wiring.Component):
    """For every head and query block, the key tiles that hold an allowed pair, each with its mask.

    Query block ``b`` is queries ``[b·rows, b·rows + rows)``, key tile ``t``
    keys ``[t·cols, t·cols + cols)``.  The pattern rules are those of
    ``sim/sparse.py`` (docs/sparse.md): dense, sliding window ``|i−j| ≤ ⌊w/2⌋``,
    dilated window (``δ`` divides ``i−j`` and ``|i−j| ≤ δ·⌊w/2⌋``), 2-D window on
    an ``H×W`` raster grid, each with up to ``max_globals`` global tokens.
    A tile whose every pair is masked is never emitted: the engine neither
    fetches nor computes it.  Every block emits at least one tile (a query
    attends to itself), flagged ``first`` and ``last``.

    The walk visits one candidate tile per cycle (every key tile of every
    block, so ``ceil(L/cols)`` cycles per block), computes its ``rows × cols``
    mask from registered coordinates in one stage, and keeps the last
    non-empty tile back one step so it can be flagged ``last``.  Pair tests
    stay small: the distance ``i−j`` of pair ``(r, c)`` is ``i0−j0 + (r−c)``,
    ``rows + cols − 1`` comparisons per tile; residues mod ``δ`` and grid
    coordinates are carried per row and per lane and advanced by adding
    ``rows`` or ``cols`` in mixed radix, set up once at start by counting.

    Parameters
    ----------
    rows, cols : int
        Query block and key tile sizes (the array's).
    max_seq_len, max_heads : int
        Largest runtime ``seq_len`` and ``heads``.
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
        Cycles from ``start`` to the first candidate.

    Ports
    -----
    start : In(1)
        Takes the runtime registers and starts when not ``busy``; out-of-range
        values set ``error`` instead (seq_len or heads outside 1..max, window 0
        for window/dilated, dilation outside 1..max_dilation, grid not holding
        seq_len tokens or a 2-D window of 0, more than max_globals globals or
        one outside the sequence).
    seq_len, heads, pattern, window, dilation, grid_h, grid_w, window_h, window_w : In
        Runtime registers; ``pattern`` as in ``PATTERN_CODES``.
    global_count : In(range(max_globals + 1))
    global_tokens : In(ArrayLayout(range(max_seq_len), max_globals))
    busy, done, error : Out(1)
    config_ok : Out(1)
        The runtime registers are in range (combinational): ``start`` would start.
    tiles : Out(stream)
        ``block``, ``tile``, ``first``, ``last`` (of the block), ``run_end``
        (last tile of the run), ``mask`` (``rows`` words of ``cols`` bits,
        bit ``c`` of word ``r`` set when query ``b·rows+r`` attends key
        ``t·cols+c``; padding rows and keys are 0).
    """

    def __init__(self, **params):
        p = scheduler_params(**params)
        self.params = p
        self.rows, self.cols = p["rows"], p["cols"]
        L = p["max_seq_len"]
        self.max_blocks = -(-L // self.rows)
        self.max_tiles = -(-L // self.cols)
        self.tile_layout = data.StructLayout({
            "block": range(self.max_blocks), "tile": range(self.max_tiles), "first": 1, "last": 1,
            "run_end": 1, "mask": data.ArrayLayout(self.cols, self.rows)})
        super().__init__({
            "start": In(1),
            "seq_len": In(range(L + 1)),
            "heads": In(range(p["max_heads"] + 1)),
            "pattern": In(2),
            "window": In(range(2 * L + 1)),
            "dilation": In(range(p["max_dilation"] + 1)),
            "grid_h": In(range(L + 1)), "grid_w": In(range(L + 1)),
            "window_h": In(range(2 * L + 1)), "window_w": In(range(2 * L + 1)),
            "global_count": In(range(p["max_globals"] + 1)),
            "global_tokens": In(data.ArrayLayout(range(L), p["max_globals"])),
            "busy": Out(1), "done": Out(1), "error": Out(1), "config_ok": Out(1),
            "tiles": Out(stream.Signature(self.tile_layout)),
        })

    @property
    def setup_cycles(self) -> int:
        return max(self.rows, self.cols) + 3

    def elaborate(self, platform):
        m = Module()
        p = self.params
        R, C, L, G = self.rows, self.cols, p["max_seq_len"], p["max_globals"]
        span = max(R, C)

        # --- runtime registers, checked at start.
        seq_len, heads = Signal.like(self.seq_len), Signal.like(self.heads)
        pattern, window, dilation = Signal(2), Signal.like(self.window), Signal.like(self.dilation)
        grid_w = Signal.like(self.grid_w)
        half_h, half_w = Signal.like(self.window_h), Signal.like(self.window_w)
        global_count = Signal.like(self.global_count)
        global_tokens = Signal.like(self.global_tokens)
        is_dilated = self.pattern == PATTERN_CODES["dilated"]
        is_1d = (self.pattern == PATTERN_CODES["window"]) | is_dilated
        is_grid = self.pattern == PATTERN_CODES["grid"]
        globals_ok = Const(1)
        for g in range(G):
            globals_ok = globals_ok & ((g >= self.global_count) | (self.global_tokens[g] < self.seq_len))
        in_range = ((self.seq_len >= 1) & (self.seq_len <= L) & (self.heads >= 1) & (self.heads <= p["max_heads"])
                    & (self.global_count <= G) & globals_ok)
        if p["sparse"]:
            in_range = (in_range & (~is_1d | (self.window >= 1))
                        & (~is_dilated | ((self.dilation >= 1) & (self.dilation <= p["max_dilation"])))
                        & (~is_grid | ((self.grid_h * self.grid_w == self.seq_len) & (self.window_h >= 1)
                                       & (self.window_w >= 1))))
        else:
            in_range = in_range & (self.pattern == PATTERN_CODES["dense"]) & (self.global_count == 0)
        m.d.comb += self.config_ok.eq(in_range)
        started = Signal()
        m.d.comb += started.eq(self.start & ~self.busy & in_range)
        with m.If(self.start & ~self.busy):
            m.d.sync += self.error.eq(~in_range)
        with m.If(started):
            m.d.sync += [seq_len.eq(self.seq_len), heads.eq(self.heads), pattern.eq(self.pattern),
                         window.eq(self.window), dilation.eq(Mux(is_dilated, self.dilation, 1)),
                         grid_w.eq(Mux(is_grid, self.grid_w, 1)),
                         half_h.eq(self.window_h >> 1), half_w.eq(self.window_w >> 1),
                         global_count.eq(self.global_count), global_tokens.eq(self.global_tokens),
                         self.busy.eq(1), self.done.eq(0)]

        # The modulus of the mixed-radix coordinates: dilation (residues) or grid width (columns).
        modulus = Signal(range(max(L, p["max_dilation"]) + 1))
        m.d.comb += modulus.eq(Mux(pattern == PATTERN_CODES["grid"], grid_w, dilation))
        limit = Signal(range(p["max_dilation"] * L + 1))   # |i - j| bound of window/dilated
        m.d.sync += limit.eq(dilation * (window >> 1))

        # --- setup: count x = 0 .. span in (quotient, remainder) of modulus, recording each.
        coord = data.StructLayout({"q": range(L + 1), "r": range(max(L, p["max_dilation"]))})
        table = Signal(data.ArrayLayout(coord, span + 1))
        count = Signal(coord)
        setup_step = Signal(range(span + 2))
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
            with m.If(setup_step == span):
                m.d.sync += setting_up.eq(0)

        def advance(coords, by):
            """Statements adding the coordinates ``by`` to every element of ``coords`` (remainders
            stay below the modulus)."""
            statements = []
            for c in coords:
                total = c.r + by.r
                wrap = total >= modulus
                statements += [c.q.eq(Mux(wrap, c.q + by.q + 1, c.q + by.q)),
                               c.r.eq(Mux(wrap, total - modulus, total))]
            return statements

        # --- walker: head, block, tile; block base i0, tile base j0, per-row / per-lane coordinates.
        w_valid = Signal()
        h = Signal(range(p["max_heads"]))
        b, t = Signal(range(self.max_blocks)), Signal(range(self.max_tiles))
        i0, j0 = Signal(range(L + R)), Signal(range(L + C))
        qc = Signal(data.ArrayLayout(coord, R))
        kc = Signal(data.ArrayLayout(coord, C))
        first_setup = Signal()
        m.d.sync += first_setup.eq(setting_up & (setup_step == span))
        tile_last = j0 + C >= seq_len
        block_last = i0 + R >= seq_len
        head_last = h + 1 >= heads
        a_ready = Signal()
        w_step = w_valid & a_ready
        with m.If(first_setup):
            m.d.sync += [w_valid.eq(1), h.eq(0), b.eq(0), t.eq(0), i0.eq(0), j0.eq(0)]
            m.d.sync += [qc[r].eq(table[r]) for r in range(R)]
            m.d.sync += [kc[c].eq(table[c]) for c in range(C)]
        with m.Elif(w_step):
            with m.If(~tile_last):
                m.d.sync += [t.eq(t + 1), j0.eq(j0 + C), *advance([kc[c] for c in range(C)], table[C])]
            with m.Else():
                m.d.sync += [t.eq(0), j0.eq(0)]
                m.d.sync += [kc[c].eq(table[c]) for c in range(C)]
                with m.If(~block_last):
                    m.d.sync += [b.eq(b + 1), i0.eq(i0 + R), *advance([qc[r] for r in range(R)], table[R])]
                with m.Else():
                    m.d.sync += [b.eq(0), i0.eq(0)]
                    m.d.sync += [qc[r].eq(table[r]) for r in range(R)]
                    with m.If(head_last):
                        m.d.sync += w_valid.eq(0)
                    with m.Else():
                        m.d.sync += h.eq(h + 1)

        # --- the candidate's mask, one stage.
        mask = Signal(data.ArrayLayout(C, R))
        diff = Signal(signed(len(i0) + 1))
        m.d.comb += diff.eq(i0 - j0)
        near = {}
        for o in range(-(C - 1), R):          # pairs (r, c) with r - c = o share |i - j| = |diff + o|
            d_o = Signal(signed(len(diff) + 1), name=f"dist_{o + C - 1}")
            m.d.comb += d_o.eq(diff + o)
            near[o] = Signal(name=f"near_{o + C - 1}")
            m.d.comb += near[o].eq((d_o <= limit) & (d_o >= -limit))
        q_global, k_global = Signal(R), Signal(C)
        for r in range(R):
            hits = [(g < global_count) & (global_tokens[g] == i0 + r) for g in range(G)]
            m.d.comb += q_global[r].eq(Cat(*hits).any() if hits else 0)
        for c in range(C):
            hits = [(g < global_count) & (global_tokens[g] == j0 + c) for g in range(G)]
            m.d.comb += k_global[c].eq(Cat(*hits).any() if hits else 0)

        def within(x, y, bound):
            return Mux(x >= y, x - y, y - x) <= bound

        for r in range(R):
            for c in range(C):
                window_pair = near[r - c] & (qc[r].r == kc[c].r)     # residues equal: δ divides i - j
                grid_pair = within(qc[r].q, kc[c].q, half_h) & within(qc[r].r, kc[c].r, half_w)
                base = Signal(name=f"base_{r}_{c}")
                if not p["sparse"]:
                    m.d.comb += mask[r][c].eq((i0 + r < seq_len) & (j0 + c < seq_len))
                    continue
                with m.Switch(pattern):
                    with m.Case(PATTERN_CODES["dense"]):
                        m.d.comb += base.eq(1)
                    with m.Case(PATTERN_CODES["window"], PATTERN_CODES["dilated"]):
                        m.d.comb += base.eq(window_pair)
                    with m.Case(PATTERN_CODES["grid"]):
                        m.d.comb += base.eq(grid_pair)
                m.d.comb += mask[r][c].eq((base | q_global[r] | k_global[c])
                                          & (i0 + r < seq_len) & (j0 + c < seq_len))

        # --- stage A: the candidate's mask and position.
        a_valid = Signal()
        a = Signal(data.StructLayout({"block": range(self.max_blocks), "tile": range(self.max_tiles),
                                      "block_end": 1, "run_end": 1, "mask": data.ArrayLayout(C, R)}))
        a_take = Signal()
        m.d.comb += a_ready.eq(~a_valid | a_take)
        with m.If(w_step):
            m.d.sync += [a_valid.eq(1), a.block.eq(b), a.tile.eq(t), a.block_end.eq(tile_last),
                         a.run_end.eq(tile_last & block_last & head_last), a.mask.eq(mask)]
        with m.Elif(a_take):
            m.d.sync += a_valid.eq(0)

        # --- hold: the last non-empty tile, emitted once the next one (or the block's end) is known.
        hold = Signal(self.tile_layout)
        h_valid, h_closing, block_open = Signal(), Signal(), Signal()
        out_free = ~self.tiles.valid | self.tiles.ready
        a_nonempty = a.mask.as_value().any()
        close_now = h_valid & h_closing
        m.d.comb += a_take.eq(a_valid & ~close_now & (~(a_nonempty & h_valid) | out_free))
        emit = (close_now & out_free) | (a_take & a_nonempty & h_valid)
        with m.If(emit):
            m.d.sync += [self.tiles.valid.eq(1), self.tiles.payload.eq(hold),
                         self.tiles.payload.last.eq(close_now),
                         self.tiles.payload.run_end.eq(close_now & hold.run_end)]
        with m.Elif(self.tiles.ready):
            m.d.sync += self.tiles.valid.eq(0)
        with m.If(close_now & out_free):
            m.d.sync += [h_valid.eq(0), h_closing.eq(0)]
        with m.If(a_take):
            with m.If(a_nonempty):
                m.d.sync += [h_valid.eq(1), h_closing.eq(a.block_end), hold.block.eq(a.block),
                             hold.tile.eq(a.tile), hold.first.eq(~block_open), hold.run_end.eq(a.run_end),
                             hold.mask.eq(a.mask), block_open.eq(~a.block_end)]
            with m.Elif(a.block_end):
                m.d.sync += [h_closing.eq(1), hold.run_end.eq(a.run_end), block_open.eq(0)]

        with m.If(self.tiles.valid & self.tiles.ready & self.tiles.payload.run_end):
            m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m
