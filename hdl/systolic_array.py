"""Output-stationary systolic MAC array that streams tiles back to back."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import boolean, positive_int, reject_unknown

from .credit_fifo import CreditFIFO, check_fifo_memory, fifo_latency
from .multiplier import check_multiplier, multiplier_latency
from .pe import ProcessingElement, accumulator_input_stages, accumulator_shape, operand_shape
from .pipeline import delayed, kept_register, register

__all__ = ["SystolicArray", "array_params", "ARRAY_DEFAULTS"]

#: Elaboration parameters of :class:`SystolicArray` and their defaults.
ARRAY_DEFAULTS = {
    "rows": 8,
    "cols": 8,
    "a_width": 8,
    "b_width": 8,
    "a_signed": True,
    "b_signed": True,
    "max_reduction": 64,
    "acc_width": None,
    "multiplier": "generic",
    "fifo_memory": "registers",
    "result_tiles": None,
    "sliding": False,
}


def _pe_latency(multiplier: str) -> int:
    # hand-off register, multiplier, accumulator, result register (ProcessingElement.latency)
    return 1 + multiplier_latency(multiplier) + accumulator_input_stages(multiplier) + 2


def _min_tile_spacing(rows: int, cols: int) -> int:
    return rows


def _result_latency(rows: int, cols: int, multiplier: str, fifo_memory: str) -> int:
    # input register + skew/hops to PE (R-1, C-1) + PE + drain-chain load + result FIFO
    return 1 + (rows - 1) + (cols - 1) + _pe_latency(multiplier) + 1 + fifo_latency(fifo_memory)


def _credit_hold(rows: int, cols: int, multiplier: str, fifo_memory: str) -> int:
    # A tile's result credits are held from its last step's admission until its rows have left
    # the FIFO, plus one for the release register.
    return _result_latency(rows, cols, multiplier, fifo_memory) + rows + 1


def array_params(**params) -> dict:
    """Validate :class:`SystolicArray` parameters; return them complete, defaults filled in.

    Raises ``ValueError`` naming the first bad parameter and its value, so that
    configuration files and CLI flags are rejected before any elaboration.
    """
    reject_unknown("array", params, ARRAY_DEFAULTS)
    p = {**ARRAY_DEFAULTS, **params}
    positive_int("rows", p["rows"], at_most=64)
    positive_int("cols", p["cols"], at_most=64)
    positive_int("a_width", p["a_width"], at_most=32)
    positive_int("b_width", p["b_width"], at_most=32)
    boolean("a_signed", p["a_signed"])
    boolean("b_signed", p["b_signed"])
    boolean("sliding", p["sliding"])
    positive_int("max_reduction", p["max_reduction"], at_most=1 << 24)
    check_multiplier(a_width=p["a_width"], b_width=p["b_width"], a_signed=p["a_signed"], b_signed=p["b_signed"],
                     target=p["multiplier"])
    check_fifo_memory(p["fifo_memory"])
    needed = accumulator_shape(p["a_width"], p["a_signed"], p["b_width"], p["b_signed"], p["max_reduction"]).width
    if p["acc_width"] is None:
        p["acc_width"] = needed
    else:
        positive_int("acc_width", p["acc_width"], at_most=needed)
        if p["acc_width"] < 2:
            raise ValueError(f"acc_width must be at least 2, not {p['acc_width']}")
    if p["result_tiles"] is None:
        # Enough buffered result tiles that tiles of max_reduction steps stream without waiting
        # for credits (shorter ones may wait; a deeper FIFO costs distributed RAM and routing).
        # (The cycle model confirms this is the smallest depth at which tiles of max_reduction
        # steps never wait.)
        held = _credit_hold(p["rows"], p["cols"], p["multiplier"], p["fifo_memory"])
        p["result_tiles"] = -(-held // p["max_reduction"])
    else:
        positive_int("result_tiles", p["result_tiles"], at_most=64)
    check_fifo_memory(p["fifo_memory"], p["rows"] * p["result_tiles"])
    return p


class SystolicArray(wiring.Component):
    """``C = A·B`` on a ``rows``×``cols`` grid of :class:`ProcessingElement`, tiles back to back.

    Each beat of ``a`` carries one column of ``A`` (``A[:, k]``, ``rows``
    values) and each beat of ``b`` one row of ``B`` (``B[k, :]``, ``cols``
    values); the two streams are joined, so a step ``k`` is accepted when both
    are valid.  ``a.payload.last`` marks the final step of a tile; the next
    beat opens the next tile.  The caller feeds the operands unskewed: row
    ``i`` is delayed by ``i`` and column ``j`` by ``j`` cycles inside.  Idle
    input cycles become bubbles that the PEs skip.

    Each PE keeps its finished sum in a shadow register while it accumulates
    the next tile, so tiles follow each other with no gap.  When a column
    finishes, its shadow registers load into a drain chain that shifts the
    rows up and out, one per cycle, into a result FIFO
    (:class:`~attn_rtl.hdl.credit_fifo.CreditFIFO`) that drives ``c``
    (``c.payload.last`` on row ``rows-1``).
    Backpressure on ``c`` reaches the inputs through credits: the last step
    of a tile is only accepted while the FIFO has room reserved for all its
    rows.  Two tiles'
    last steps are at least ``rows`` cycles apart (the drain chain needs
    that), so tiles shorter than that wait.

    ``acc_width`` narrower than the exact width makes every accumulation
    saturate: ``acc = clip(acc + a*b)`` to the accumulator's range.

    A ``sliding`` build also computes diagonal tiles (SALO's sliding-window
    dataflow, docs/sparse.md): while the ``sliding`` input is high, row ``i``
    is delayed by ``2i`` instead of ``i``, and a step with ``a.payload.diagonal``
    set passes ``b`` down-left instead of down: ``b`` carries ``rows + cols - 1``
    lanes and element ``(i, j)`` takes lane ``i + j``, so a tile of diagonal steps
    computes ``C[i, j] = sum_k A[i, k] * B[k, i + j]``.  Lanes ``cols`` and up
    enter at the right column; steps without ``diagonal`` read lanes
    ``0 … cols-1`` as before.  ``sliding`` may change only while no tile is in the
    array (between runs); while it is high, every step is ``diagonal`` or ``stationary``.

    It also runs P·V of that dataflow weight-stationary (SALO's): ``p`` loads a tile of
    weights ``W`` (``rows``×``cols``; beat ``j`` = ``W[:, j]``, ``cols`` beats), which a step with
    ``a.payload.load`` swaps in; a step with ``a.payload.stationary`` ignores ``a.payload.data``,
    takes ``b`` down-left like a diagonal step (lane ``i + j`` at PE ``(i, j)``), multiplies it by
    the held ``W[i, j]`` and passes the row's sum to the right, so step ``k`` of a stationary
    tile yields ``sum_j W[i, j] * B[k, i + j]`` for every row ``i``.  Its rows collect at the
    right edge: a tile of ``n <= cols`` steps leaves as ``rows`` beats on ``c`` like any tile, lane
    ``cols - n + k`` holding step ``k`` (lanes below are undefined).  ``p`` takes the next
    weights once the last swap has passed the whole array; a ``load`` step waits until they are
    all in, and the end of a tile of another kind waits until ``rows + cols - 1`` cycles after a
    stationary tile's end (its rows load the drain chains later).  So in a sliding build
    ``a.ready = b.valid & (~last | accepts_end & (stationary | gap elapsed)) & (~load | weights in)``.

    On a diagonal or stationary step with ``a.payload.global_column`` the last column takes
    ``b``'s last lane (lane ``rows + cols - 1``, a global key or its V) instead of lane
    ``i + cols - 1``, which still passes on down-left: element ``(i, cols - 1)`` of the tile is
    then ``sum_k A[i, k] * B[k, rows + cols - 1]`` (stationary: the term ``W[i, cols - 1]·B[k,
    rows + cols - 1]``).

    Parameters
    ----------
    rows, cols : int
        Array shape (1 to 64 each).
    a_width, b_width : int
        Operand widths in bits.
    a_signed, b_signed : bool
        Operand signedness (Q·Kᵀ: both signed; P·V: ``a`` unsigned).
    max_reduction : int
        Longest tile (reduction length ``K``) the exact accumulator width is derived for.
    acc_width : int or None
        Accumulator width; ``None`` derives the exact one, narrower saturates.
    multiplier : "generic" or "ecp5"
        Multiplier implementation (:class:`~attn_rtl.hdl.multiplier.Multiplier`).
    fifo_memory : "registers" or "ecp5"
        Storage of the result FIFO (:class:`~attn_rtl.hdl.credit_fifo.CreditFIFO`): flip-flops,
        or ECP5 block RAM with output registers (no wide read multiplexer).
    result_tiles : int or None
        Result FIFO depth in tiles (``rows`` entries each); ``None`` derives one
        deep enough for the shortest tiles to stream without credit stalls.
    sliding : bool
        Build the diagonal dataflow: the ``sliding`` input, the ``diagonal``, ``stationary``,
        ``load`` and ``global_column`` step flags, ``rows + cols`` lanes on ``b`` (the tile's and the
        global one) and the weights' stream ``p``.

    Attributes
    ----------
    latency : int
        Cycles from accepting the last step of a tile to its first row on ``c``.
    min_tile_spacing : int
        Fewest cycles between two tiles' last steps.
    acc_shape : Shape
        Shape of each element of ``C``.
    saturating : bool

    Ports
    -----
    a : In(stream.Signature(StructLayout({"data": ArrayLayout(a_shape, rows), "last": 1})))
        (a ``sliding`` build adds the fields ``"diagonal"``, ``"stationary"``, ``"load"`` and
        ``"global_column"``, 1 bit each)
    b : In(stream.Signature(ArrayLayout(b_shape, cols)))
        (``rows + cols`` lanes in a ``sliding`` build: the tile's ``rows + cols - 1``, then the global lane)
    sliding : In(1)
        Only in a ``sliding`` build: the run's mode.
    p : In(stream.Signature(ArrayLayout(a_shape, rows)))
        Only in a ``sliding`` build: the weights of stationary tiles, one column a beat.
    c : Out(stream.Signature(StructLayout({"data": ArrayLayout(acc_shape, cols), "last": 1})))
    accepts_end : Out(rows + cols)
        Copies of the flag that a step with ``last`` set is accepted in this cycle (``a.ready`` is
        ``b.valid & (~a.payload.last | accepts_end)`` in a plain build), one flip-flop each: a caller whose
        registers in front of the array hold while it refuses a step gives each row's and each
        column's registers a copy of their own, instead of fanning one flag out to all of them.
    """

    def __init__(self, **params):
        p = array_params(**params)
        self.params = p
        self.rows, self.cols = p["rows"], p["cols"]
        self._a_shape = operand_shape(p["a_width"], p["a_signed"])
        self._b_shape = operand_shape(p["b_width"], p["b_signed"])
        exact = accumulator_shape(p["a_width"], p["a_signed"], p["b_width"], p["b_signed"], p["max_reduction"])
        self.saturating = p["acc_width"] < exact.width
        self.acc_shape = operand_shape(p["acc_width"], exact.signed)
        self.sliding_build = p["sliding"]
        a_fields = {"data": data.ArrayLayout(self._a_shape, self.rows), "last": 1}
        # A sliding build's b: the tile's rows + cols - 1 lanes, then the global key's.
        b_lanes = self.cols + self.rows if self.sliding_build else self.cols
        ports = {
            "a": In(stream.Signature(data.StructLayout(
                {**a_fields, "diagonal": 1, "stationary": 1, "load": 1, "global_column": 1} if self.sliding_build
                else a_fields))),
            "b": In(stream.Signature(data.ArrayLayout(self._b_shape, b_lanes))),
            "c": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(self.acc_shape, self.cols), "last": 1}))),
            "accepts_end": Out(self.rows + self.cols),
        }
        if self.sliding_build:
            ports["sliding"] = In(1)
            ports["p"] = In(stream.Signature(data.ArrayLayout(self._a_shape, self.rows)))
        super().__init__(ports)

    @property
    def latency(self) -> int:
        return _result_latency(self.rows, self.cols, self.params["multiplier"], self.params["fifo_memory"])

    @property
    def credit_hold(self) -> int:
        """Cycles a tile's result FIFO entries stay reserved, from its last step's admission:
        tiles arriving at least this far apart never wait for credits with one tile of FIFO."""
        return _credit_hold(self.rows, self.cols, self.params["multiplier"], self.params["fifo_memory"])

    @property
    def min_tile_spacing(self) -> int:
        return _min_tile_spacing(self.rows, self.cols)

    @property
    def result_fifo_depth(self) -> int:
        return self.rows * self.params["result_tiles"]

    def run_cycles(self, depths, stationary=()) -> int:
        """Cycles from the first step accepted to the last result row sent, for tiles of
        reduction lengths ``depths`` offered back to back with ``c`` always ready (``stationary``:
        which tiles are weight-stationary, their weights loaded in time).

        A cycle-level model of the admission logic (tile spacing, result credits), so it is
        exact for any mix of tile lengths; tests compare it with RTL simulation.
        """
        rows, depth_fifo, spacing_min = self.rows, self.result_fifo_depth, self.min_tile_spacing
        kinds = list(stationary) + [False] * (len(depths) - len(stationary))
        steps = [(k == d - 1, s) for d, s in zip(depths, kinds) for k in range(d)]  # (last, stationary)
        gap = self.rows + self.cols - 1   # after a stationary tile, to the next other tile's end
        releases: dict[int, int] = {}
        reserved, credit, spacing, spaced, released = 0, True, 0, True, 0
        since, gap_spaced = 0, True
        cycle, step, last_out = 0, 0, 0
        while step < len(steps) or cycle <= last_out:
            last, kind = steps[step] if step < len(steps) else (False, False)
            fire = step < len(steps) and (not last or (spaced and credit and (kind or gap_spaced)))
            ends = fire and last
            since, gap_spaced = ((gap - 1, gap == 1) if ends and kind else (max(since - 1, 0), since <= 1))
            if ends:
                for r in range(rows):
                    releases[cycle + self.latency + r] = 1
                last_out = cycle + self.latency + rows - 1
            kept = reserved - released
            reserved, credit = kept + (rows if ends else 0), kept <= depth_fifo - (2 * rows if ends else rows)
            spacing, spaced = ((spacing_min - 1, spacing_min == 1) if ends else
                               (max(spacing - 1, 0), spacing <= 1))
            released = releases.pop(cycle, 0)
            if fire:
                step += 1
            cycle += 1
        return last_out + 1

    def elaborate(self, platform):
        m = Module()
        rows, cols, p = self.rows, self.cols, self.params

        stationary_pe = {"stationary": True} if self.sliding_build else {}
        pes = [[ProcessingElement(a_width=p["a_width"], b_width=p["b_width"], a_signed=p["a_signed"],
                                  b_signed=p["b_signed"], acc_shape=self.acc_shape, saturate=self.saturating,
                                  multiplier=p["multiplier"],
                                  **({**stationary_pe, "collect_delay": cols - 1 - j,
                                      "alternate_b": j == cols - 1} if stationary_pe else {}))
                for j in range(cols)] for i in range(rows)]
        for i in range(rows):
            for j in range(cols):
                m.submodules[f"pe_{i}_{j}"] = pes[i][j]
        m.submodules.results = results = CreditFIFO(width=len(self.c.payload.as_value()),
                                                    depth=self.result_fifo_depth, memory=p["fifo_memory"],
                                                    target=p["multiplier"])

        # --- admission: join of a and b, credits for the result FIFO, spacing of tile ends.
        # Both conditions meet in one registered flag computed from next-state values, so the
        # handshake is one gate level from flip-flops and the counters stay off the ready path.
        opens_tile = Signal(init=1)
        reserved = Signal(range(self.result_fifo_depth + 1))
        spacing_min = self.min_tile_spacing
        spacing = Signal(range(spacing_min))
        may_end = Signal(init=1)   # a tile may end in this cycle: spaced, and the FIFO has its rows
        may_accept = ~self.a.payload.last | may_end
        if self.sliding_build:
            # After a stationary tile, the next other tile waits longer (see _stationary_admission);
            # a step swapping in new weights waits until they are all loaded.
            stationary_spaced, weights_loaded = Signal(init=1), Signal()
            may_accept = ((~self.a.payload.last | (may_end & (self.a.payload.stationary | stationary_spaced)))
                          & (~self.a.payload.load | weights_loaded))
        fire = Signal()
        m.d.comb += [
            fire.eq(self.a.valid & self.b.valid & may_accept),
            self.a.ready.eq(self.b.valid & may_accept),
            self.b.ready.eq(self.a.valid & may_accept),
        ]
        ends_tile = fire & self.a.payload.last
        # Credits are reserved by a tile's last step: only then are its rows bound to come out,
        # and reserving no earlier keeps the FIFO one tile deep for long tiles.  Rows taken from
        # the FIFO return their credit a cycle late (safe, and it keeps c.ready off the counter).  Both
        # next-state terms are comparisons of registers, selected by ends_tile at the end.
        released = Signal()
        m.d.sync += released.eq(self.c.valid & self.c.ready)
        kept = Signal.like(reserved)
        m.d.comb += kept.eq(reserved - released)
        after_end = (kept <= self.result_fifo_depth - 2 * rows) & (self.min_tile_spacing == 1)
        otherwise = (kept <= self.result_fifo_depth - rows) & (spacing <= 1)
        may_end_next = Mux(ends_tile, after_end, otherwise)
        m.d.sync += [
            reserved.eq(kept + Mux(ends_tile, rows, 0)),
            spacing.eq(Mux(ends_tile, spacing_min - 1, Mux(spacing == 0, 0, spacing - 1))),
            may_end.eq(may_end_next),
        ]
        # The copies hold the complement, so that their reset (to 0) matches may_end's initial 1.
        for n in range(rows + cols):
            blocked = kept_register(m, ~may_end_next, f"end_blocked_{n}", target=p["multiplier"], reset=True)
            m.d.comb += self.accepts_end[n].eq(~blocked)
        with m.If(fire):
            m.d.sync += opens_tile.eq(self.a.payload.last)
        if self.sliding_build:
            weights = self._stationary_admission(m, fire, ends_tile, stationary_spaced, weights_loaded)

        # --- input register (operands taken every cycle, qualified by in_valid: no wide enable),
        # then skew: row i and its flags by i cycles, column j by j cycles.
        in_a = Signal.like(self.a.payload.data, reset_less=True)
        in_b = Signal.like(self.b.payload, reset_less=True)
        in_valid, in_first, in_last = Signal(), Signal(reset_less=True), Signal(reset_less=True)
        m.d.sync += [in_valid.eq(fire), in_first.eq(fire & opens_tile), in_last.eq(ends_tile),
                     in_a.eq(self.a.payload.data), in_b.eq(self.b.payload)]
        sliding = self.sliding if self.sliding_build else None

        def skew(value, i, name, reset=False):
            # Row i by i cycles; while sliding, by 2i (taps of one chain).
            once = delayed(m, value, i, name, reset=reset)
            if sliding is None or i == 0:
                return once
            return Mux(sliding, delayed(m, once, i, f"{name}_s", reset=reset), once)

        diagonal_at = None
        if sliding is not None:
            # Stationary steps take b (V) down-left like diagonal ones (K).  The swap is the one flag
            # with an effect of its own, so only an accepted step carries it: a load step waiting for
            # its weights, or a payload left on the port after it, swapped in a chain being refilled.
            in_diagonal, in_stationary = Signal(reset_less=True), Signal(reset_less=True)
            in_swap = Signal()
            m.d.sync += [in_diagonal.eq(self.a.payload.diagonal | self.a.payload.stationary),
                         in_stationary.eq(self.a.payload.stationary), in_swap.eq(self.a.payload.load & fire)]
            # The step's diagonal flag beside row i's operands, column by column: it selects where
            # each PE takes b from.
            diagonal_at = []
            for i in range(rows):
                row = [skew(in_diagonal, i, f"skew_d{i}")]
                for j in range(1, cols):
                    row.append(delayed(m, row[-1], 1, f"diagonal_{i}_{j}"))
                diagonal_at.append(row)
            # The global lane reaches row i's last PE with that row's lane cols - 1 + i (2i + cols - 1
            # cycles: taps of one chain), its flag with the row's operands.
            in_global = Signal(reset_less=True)
            m.d.sync += in_global.eq(self.a.payload.global_column)
            global_at = [delayed(m, skew(in_global, i, f"skew_g{i}"), cols - 1, f"global_at_{i}") for i in range(rows)]
            chain, global_lane = in_b[cols + rows - 1], []
            for i in range(rows):
                chain = delayed(m, chain, cols - 1 if i == 0 else 2, f"global_lane_{i}")
                global_lane.append(chain)

        for i in range(rows):
            pe = pes[i][0]
            m.d.comb += [
                pe.a_in.eq(skew(in_a[i], i, f"skew_a{i}")),
                pe.valid_in.eq(skew(in_valid, i, f"skew_v{i}", reset=True)),
                pe.first_in.eq(skew(in_first, i, f"skew_f{i}")),
                pe.last_in.eq(skew(in_last, i, f"skew_l{i}")),
            ]
            for j in range(1, cols):
                left = pes[i][j - 1]
                m.d.comb += [pes[i][j].a_in.eq(left.a_out), pes[i][j].valid_in.eq(left.valid_out),
                             pes[i][j].first_in.eq(left.first_out), pes[i][j].last_in.eq(left.last_out)]
            if sliding is not None:
                # Weight-stationary steps: flags along the row with the operands, the row's sum
                # moving right one PE a step, results collected from the right.
                m.d.comb += [pe.stationary_in.eq(skew(in_stationary, i, f"skew_s{i}")),
                             pe.swap_in.eq(skew(in_swap, i, f"skew_w{i}")), pe.psum_in.eq(0)]
                for j in range(cols):
                    here = pes[i][j]
                    m.d.comb += here.weight_in.eq(weights[i][j])
                    if j > 0:
                        left = pes[i][j - 1]
                        m.d.comb += [here.stationary_in.eq(left.stationary_out), here.swap_in.eq(left.swap_out),
                                     here.psum_in.eq(left.psum_out)]
                    m.d.comb += here.collect_in.eq(pes[i][j + 1].result if j + 1 < cols else here.psum_out)
                # The global column: the last column's PEs multiply the global lane instead of their own.
                m.d.comb += [pes[i][cols - 1].alt_b_in.eq(global_lane[i]),
                             pes[i][cols - 1].alt_select_in.eq(global_at[i])]
        for j in range(cols):
            m.d.comb += pes[0][j].b_in.eq(delayed(m, in_b[j], j, f"skew_b{j}"))
            for i in range(1, rows):
                down = pes[i - 1][j].b_out
                if diagonal_at is None:
                    m.d.comb += pes[i][j].b_in.eq(down)
                    continue
                # Diagonal steps: from the PE up and to the right, or, in the right column, lane
                # cols - 1 + i entering with the delay of row i's operands (2i) and of the column.
                if j + 1 < cols:
                    down_left = pes[i - 1][j + 1].b_out
                else:
                    down_left = delayed(m, in_b[cols - 1 + i], 2 * i + cols - 1, f"skew_e{i}")
                m.d.comb += pes[i][j].b_in.eq(Mux(diagonal_at[i][j] & sliding, down_left, down))

        if sliding is None:
            words, row_valid, row_last = self._drain_up(m, pes)
        else:
            words, row_valid, row_last = self._drain_down(m, pes, sliding)
        row_word = Cat(*words, row_last)
        m.d.comb += [results.w_data.eq(row_word), results.w_en.eq(row_valid)]
        m.d.comb += [self.c.payload.eq(results.r.payload), self.c.valid.eq(results.r.valid),
                     results.r.ready.eq(self.c.ready)]
        return m

    def _stationary_admission(self, m, fire, ends_tile, stationary_spaced, weights_loaded):
        """The weights' load chain, fed by ``p``, and the admission rules of stationary steps.

        Returns the weights waiting for the next swap, ``weights[i][j]`` beside PE ``(i, j)``.
        """
        rows, cols, target = self.rows, self.cols, self.params["multiplier"]
        # Beat j of a weight tile enters at the right and moves left; after cols beats, column j
        # holds it.  The chain shifts only once the previous swap has passed every PE (it reads
        # the chain as it goes by: row i, column j, 2i + j cycles after its step's admission).
        swap_cycles = 2 * rows + cols - 2
        received = Signal(range(cols + 1))
        busy = Signal(range(swap_cycles + 1))
        p_open = Signal(init=1)
        swaps = fire & self.a.payload.load
        p_fire = self.p.valid & p_open
        received_next = Mux(swaps, 0, received + p_fire)
        busy_next = Mux(swaps, swap_cycles, Mux(busy == 0, 0, busy - 1))
        m.d.comb += self.p.ready.eq(p_open)
        m.d.sync += [received.eq(received_next), busy.eq(busy_next), weights_loaded.eq(received_next == cols),
                     p_open.eq((received_next != cols) & (busy_next == 0))]
        in_p = register(m, self.p.payload, "in_p")
        weights = []
        for i in range(rows):
            row = [Signal(self._a_shape, name=f"weight_{i}_{j}", reset_less=True) for j in range(cols)]
            with m.If(kept_register(m, p_fire, f"weight_shift_{i}", target=target, reset=True)):
                m.d.sync += [row[j].eq(row[j + 1] if j + 1 < cols else in_p[i]) for j in range(cols)]
            weights.append(row)

        # A stationary tile's rows load the drain chains cols - 1 - j cycles later than a tile
        # ending at the same time would in column j: the next tile of another kind ends at least
        # rows + cols - 1 cycles later, so that its loads do not meet those rows in the chains (and
        # its sums do not replace a result the row is still collecting).
        gap = rows + cols - 1
        since = Signal(range(gap))
        ends_stationary = ends_tile & self.a.payload.stationary
        m.d.sync += [
            since.eq(Mux(ends_stationary, gap - 1, Mux(since == 0, 0, since - 1))),
            stationary_spaced.eq(Mux(ends_stationary, gap == 1, since <= 1)),
        ]
        return weights

    def _drain_up(self, m, pes):
        # Read-out without a row multiplexer: when the bottom PE of column j finishes a tile, the
        # whole column's shadow registers load into a drain chain that shifts up one row per
        # cycle, so row i leaves the top of column j i cycles later.  Columns leave j cycles
        # apart; delaying column j by cols-1-j aligns them into one row word.  Only
        # neighbour-to-neighbour wires: no hot spot where a whole tile converges.
        # The column loads when its bottom PE finishes.  Each row takes that moment from its own PE
        # (PE (i, j) finishes rows - 1 - i cycles before the bottom one), so the load enable is a
        # local flip-flop per row: one enable for the whole column was the ECP5 critical path
        # (9.8 ns of routing to ~200 flip-flops).  Data only, so not reset.
        rows, cols = self.rows, self.cols
        words = []
        for j in range(cols):
            chain = [Signal(self.acc_shape, name=f"drain_{i}_{j}", reset_less=True) for i in range(rows)]
            for i in range(rows):
                if i + 1 < rows:
                    m.d.sync += chain[i].eq(chain[i + 1])
                load = delayed(m, pes[i][j].result_valid, rows - 1 - i, f"load_{i}_{j}")
                with m.If(load):
                    m.d.sync += chain[i].eq(pes[i][j].result)
            words.append(delayed(m, chain[0], cols - 1 - j, f"deskew_{j}"))
        # Valid and last bits travel in a chain of their own beside column cols-1.
        row_valid, row_last = Signal(), Signal()
        flags = [(Signal(name=f"drain_valid_{i}"), Signal(name=f"drain_last_{i}", reset_less=True))
                 for i in range(rows)]
        for i, (v, l) in enumerate(flags):
            below = flags[i + 1] if i + 1 < rows else (0, 0)
            m.d.sync += [v.eq(below[0]), l.eq(below[1])]
            with m.If(pes[rows - 1][cols - 1].result_valid):
                m.d.sync += [v.eq(1), l.eq(i == rows - 1)]
        m.d.comb += [row_valid.eq(flags[0][0]), row_last.eq(flags[0][1])]
        return words, row_valid, row_last

    def _drain_down(self, m, pes, sliding):
        # A sliding build's drain shifts down and leaves at the bottom.  PE (i, j) finishes i + j
        # cycles after PE (0, 0) in dense tiles and 2i + j while sliding; row i loads its sum at
        # 2i + j (dense sums wait i cycles, diagonal ones none), so loads move down two rows a
        # cycle against the chain's one: a load never meets a row in transit, rows leave in order
        # 0 … rows-1 in consecutive cycles (as from the up-chain, the same cycles), and tile ends
        # need only be rows apart in both modes.  Data only, so not reset.
        rows, cols = self.rows, self.cols
        words, loads, bottoms = [], [], []
        for j in range(cols):
            chain = [Signal(self.acc_shape, name=f"drain_{i}_{j}", reset_less=True) for i in range(rows)]
            column_loads = []
            for i in range(rows):
                if i > 0:
                    m.d.sync += chain[i].eq(chain[i - 1])
                done = pes[i][j].result_valid
                # The last column's loads set the rows' valid flags: their delay lines are reset, or a
                # load pending at a reset (which may also change the mode) would send a stale row.
                load = (Mux(sliding, done, delayed(m, done, i, f"load_{i}_{j}", reset=j == cols - 1))
                        if i > 0 else done)
                column_loads.append(load)
                with m.If(load):
                    m.d.sync += chain[i].eq(pes[i][j].result)
            loads.append(column_loads)
            bottoms.append(chain[rows - 1])
            words.append(delayed(m, chain[rows - 1], cols - 1 - j, f"deskew_{j}"))
        # Valid and last bits travel in a chain of their own beside column cols-1, loaded with it,
        # and whether the row was collected by a stationary tile: then every column loaded when
        # column cols-1 did, and its row leaves the chains' bottoms undelayed.
        flags = [(Signal(name=f"drain_valid_{i}"), Signal(name=f"drain_last_{i}", reset_less=True),
                  Signal(name=f"drain_collected_{i}", reset_less=True)) for i in range(rows)]
        for i, (v, l, c) in enumerate(flags):
            above = flags[i - 1] if i > 0 else (0, 0, 0)
            m.d.sync += [v.eq(above[0]), l.eq(above[1]), c.eq(above[2])]
            with m.If(loads[cols - 1][i]):
                m.d.sync += [v.eq(1), l.eq(i == rows - 1), c.eq(pes[i][cols - 1].result_collected)]
        collected = flags[rows - 1][2]
        words = [Mux(collected, bottom, word) for bottom, word in zip(bottoms, words)]
        return words, flags[rows - 1][0], flags[rows - 1][1]
