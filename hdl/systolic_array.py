"""Output-stationary systolic MAC array with valid/ready streams."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import boolean, positive_int, reject_unknown
from .pe import ProcessingElement, accumulator_shape

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
}


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
    positive_int("max_reduction", p["max_reduction"])
    needed = accumulator_shape(p["a_width"], p["a_signed"], p["b_width"], p["b_signed"], p["max_reduction"]).width
    if p["acc_width"] is None:
        p["acc_width"] = needed
    else:
        positive_int("acc_width", p["acc_width"])
        if p["acc_width"] < needed:
            raise ValueError(
                f"acc_width={p['acc_width']} cannot hold the sum of max_reduction={p['max_reduction']} products "
                f"of {p['a_width']}-bit by {p['b_width']}-bit operands; it needs at least {needed} bits")
    return p


class SystolicArray(wiring.Component):
    """``C = A·B`` on a ``rows``×``cols`` grid of :class:`ProcessingElement`, one tile at a time.

    Each beat of ``a`` carries one column of ``A`` (``A[:, k]``, ``rows``
    values) and each beat of ``b`` one row of ``B`` (``B[k, :]``, ``cols``
    values); the two streams are joined, so a step ``k`` is accepted when both
    are valid.  ``a.payload.last`` marks the final step of a tile.  The caller
    feeds the operands unskewed; the array delays row ``i`` by ``i`` and
    column ``j`` by ``j`` cycles so that PE ``(i, j)`` meets ``A[i, k]`` and
    ``B[k, j]`` together.  Idle input cycles become bubbles that the PEs skip.

    After the last step the array lets the wavefront finish, then sends the
    ``rows`` rows of ``C`` on ``c`` (``c.payload.last`` on the final row),
    holding each under backpressure.  It accepts no operands while it flushes
    and drains, so consecutive tiles are separated by ``latency + rows``
    cycles; overlapping them is the job of the full array generator.

    Parameters
    ----------
    rows, cols : int
        Array shape (1 to 64 each).
    a_width, b_width : int
        Operand widths in bits.
    a_signed, b_signed : bool
        Operand signedness (Q·Kᵀ: both signed; P·V: ``a`` unsigned).
    max_reduction : int
        Longest reduction (tile depth ``K``) the accumulators hold without overflow.
    acc_width : int or None
        Accumulator width; ``None`` derives the exact width (it must not be narrower).

    Attributes
    ----------
    latency : int
        Cycles from accepting the last step of a tile to the first row of ``C`` being valid.
    acc_shape : Shape
        Shape of each element of ``C``.

    Ports
    -----
    a : In(stream.Signature(StructLayout({"data": ArrayLayout(a_shape, rows), "last": 1})))
    b : In(stream.Signature(ArrayLayout(b_shape, cols)))
    c : Out(stream.Signature(StructLayout({"data": ArrayLayout(acc_shape, cols), "last": 1})))
    """

    def __init__(self, **params):
        p = array_params(**params)
        self.params = p
        self.rows, self.cols = p["rows"], p["cols"]
        self._a_shape = signed(p["a_width"]) if p["a_signed"] else unsigned(p["a_width"])
        self._b_shape = signed(p["b_width"]) if p["b_signed"] else unsigned(p["b_width"])
        self.acc_shape = signed(p["acc_width"]) if (p["a_signed"] or p["b_signed"]) else unsigned(p["acc_width"])
        super().__init__({
            "a": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(self._a_shape, self.rows), "last": 1}))),
            "b": In(stream.Signature(data.ArrayLayout(self._b_shape, self.cols))),
            "c": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(self.acc_shape, self.cols), "last": 1}))),
        })

    @property
    def latency(self) -> int:
        # input register (1) + skew and hops to PE (R-1, C-1) (R-1 + C-1) + PE pipeline
        return 1 + (self.rows - 1) + (self.cols - 1) + 3

    def tile_cycles(self, depth: int) -> int:
        """Cycles one tile of reduction length ``depth`` occupies when no stream stalls.

        From its first step accepted to the first step of the next tile accepted
        (the last result row and the next first step share a cycle).
        """
        return depth + self.latency + self.rows - 1

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols

        pes = [[ProcessingElement(a_width=self.params["a_width"], b_width=self.params["b_width"],
                                  a_signed=self.params["a_signed"], b_signed=self.params["b_signed"],
                                  acc_shape=self.acc_shape)
                for j in range(cols)] for i in range(rows)]
        for i in range(rows):
            for j in range(cols):
                m.submodules[f"pe_{i}_{j}"] = pes[i][j]

        # Join of the two operand streams: a step moves when both are valid and the array is computing.
        computing = Signal(init=1)
        fire = Signal()
        m.d.comb += [
            fire.eq(self.a.valid & self.b.valid & computing),
            self.a.ready.eq(self.b.valid & computing),
            self.b.ready.eq(self.a.valid & computing),
        ]

        # Input register: one step, its valid bit, and whether it opens a tile.
        in_a = Signal.like(self.a.payload.data)
        in_b = Signal.like(self.b.payload)
        in_valid = Signal()
        in_first = Signal()
        opens_tile = Signal(init=1)
        m.d.sync += [in_valid.eq(fire), in_first.eq(fire & opens_tile)]
        with m.If(fire):
            m.d.sync += [in_a.eq(self.a.payload.data), in_b.eq(self.b.payload),
                         opens_tile.eq(self.a.payload.last)]

        # Skew: row i and its flags are delayed by i cycles, column j by j cycles.
        def delayed(value, cycles, name):
            for stage in range(cycles):
                reg = Signal.like(value, name=f"{name}_d{stage + 1}")
                m.d.sync += reg.eq(value)
                value = reg
            return value

        for i in range(rows):
            pe = pes[i][0]
            m.d.comb += [
                pe.a_in.eq(delayed(in_a[i], i, f"skew_a{i}")),
                pe.valid_in.eq(delayed(in_valid, i, f"skew_v{i}")),
                pe.first_in.eq(delayed(in_first, i, f"skew_f{i}")),
            ]
            for j in range(1, cols):
                m.d.comb += [pes[i][j].a_in.eq(pes[i][j - 1].a_out),
                             pes[i][j].valid_in.eq(pes[i][j - 1].valid_out),
                             pes[i][j].first_in.eq(pes[i][j - 1].first_out)]
        for j in range(cols):
            m.d.comb += pes[0][j].b_in.eq(delayed(in_b[j], j, f"skew_b{j}"))
            for i in range(1, rows):
                m.d.comb += pes[i][j].b_in.eq(pes[i - 1][j].b_out)

        # Flush until the last product of the tile has reached PE (R-1, C-1), then drain row by row.
        flush = Signal(range(self.latency + 1))
        row = Signal(range(rows))
        acc_rows = Array(Array(pes[i][j].acc for j in range(cols)) for i in range(rows))
        with m.FSM(name="phase"):
            with m.State("COMPUTE"):
                with m.If(fire & self.a.payload.last):
                    m.d.sync += [computing.eq(0), flush.eq(self.latency - 1)]
                    m.next = "FLUSH"
            with m.State("FLUSH"):
                m.d.sync += flush.eq(flush - 1)
                with m.If(flush == 1):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += [self.c.valid.eq(1), self.c.payload.last.eq(row == rows - 1)]
                for j in range(cols):
                    m.d.comb += self.c.payload.data[j].eq(acc_rows[row][j])
                with m.If(self.c.ready):
                    m.d.sync += row.eq(row + 1)
                    with m.If(row == rows - 1):
                        m.d.sync += [row.eq(0), computing.eq(1)]
                        m.next = "COMPUTE"
        return m
