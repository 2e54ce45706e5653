"""Processing element of the output-stationary systolic array."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import boolean, positive_int

from .multiplier import Multiplier
from .pipeline import delayed, kept_register, register

__all__ = ["ProcessingElement", "accumulator_input_stages", "accumulator_shape", "operand_shape"]


def operand_shape(width: int, is_signed: bool) -> Shape:
    return signed(width) if is_signed else unsigned(width)


def accumulator_shape(a_width: int, a_signed: bool, b_width: int, b_signed: bool, max_reduction: int) -> Shape:
    """The narrowest shape that holds any sum of ``max_reduction`` products exactly.

    A product of an ``a_width``-bit and a ``b_width``-bit operand fits
    ``a_width + b_width`` bits (signed when either operand is); each doubling
    of the number of terms adds one bit.
    """
    width = a_width + b_width + (max_reduction - 1).bit_length()
    return signed(width) if (a_signed or b_signed) else unsigned(width)


def accumulator_input_stages(multiplier: str) -> int:
    return 1 if multiplier == "ecp5" else 0


class ProcessingElement(wiring.Component):
    """A pipelined multiply-accumulate cell with a shadow result register.

    On each valid step the product ``a*b`` enters the accumulator: loaded on
    the step flagged ``first``, added otherwise.  One cycle after the step
    flagged ``last`` the finished sum moves into ``result``, where it stays
    until the next tile finishes, while the accumulator already works on the
    next tile: tiles follow each other without a gap.

    ``a`` and the flags leave to the right and ``b`` leaves downwards one
    cycle after they arrive (the systolic hand-off).  The multiplier is a
    :class:`~attn_rtl.hdl.multiplier.Multiplier` (operand and product registers, so it
    fills a DSP block); the accumulator is registered.

    With ``saturate`` the accumulator clips every partial sum to its range
    (``acc = clip(acc + a*b)``); otherwise the caller sizes it so that no sum
    overflows.

    A ``stationary`` PE also runs weight-stationary steps (P·V of the sliding-window dataflow,
    docs/mac-array.md): on a step flagged ``stationary`` the multiplier takes the held ``weight``
    instead of ``a`` (``weight`` loads ``weight_in`` on a step flagged ``swap``, as the step passes),
    and the accumulator takes ``psum_in + a*b`` (the left neighbour's sum of the same step) instead
    of adding to itself: the row's sum moves right one PE a step.  ``result`` then collects the
    row's sums: ``collect_delay`` cycles after each stationary step's sum (so that every PE of a
    row shifts in the same cycle), ``result`` takes ``collect_in`` (the right neighbour's
    ``result``, or the row's last sum); ``result_valid`` follows the ``last`` step's shift, with
    ``result_collected`` high.

    Parameters
    ----------
    a_width, b_width : int
    a_signed, b_signed : bool
    acc_shape : Shape
    saturate : bool
    multiplier : str
        ``"generic"`` or ``"ecp5"`` (see :class:`~attn_rtl.hdl.multiplier.Multiplier`).
    stationary : bool
        Build the weight-stationary steps (ports below).
    collect_delay : int
        Cycles from this PE's stationary sum to its row's shift (``cols - 1 - j`` in column ``j``).
    alternate_b : bool
        (With ``stationary``.) The multiplier takes ``alt_b_in`` instead of ``b_in`` on steps with
        ``alt_select_in`` (the global column: a global key or its V), while ``b_out`` passes ``b_in`` on.

    Attributes
    ----------
    latency : int
        Cycles from a ``last`` step on ``a_in``/``b_in`` to its tile's sum in ``result``.

    Ports
    -----
    a_in, b_in, valid_in, first_in, last_in : In
    a_out, b_out, valid_out, first_out, last_out : Out
    result : Out(acc_shape)
    result_valid : Out(1)
        High in the first cycle ``result`` holds a new tile's sum.
    stationary_in, swap_in, weight_in, psum_in, collect_in : In
        Only in a ``stationary`` PE (with ``stationary_out``, ``swap_out``, ``psum_out`` and
        ``result_collected``, out).
    alt_b_in, alt_select_in : In
        Only with ``alternate_b``, beside ``b_in``.
    """

    def __init__(self, *, a_width: int, b_width: int, a_signed: bool, b_signed: bool, acc_shape: Shape,
                 saturate: bool = False, multiplier: str = "generic", stationary: bool = False,
                 collect_delay: int = 0, alternate_b: bool = False):
        positive_int("a_width", a_width)
        positive_int("b_width", b_width)
        boolean("a_signed", a_signed)
        boolean("b_signed", b_signed)
        boolean("saturate", saturate)
        self._stationary = boolean("stationary", stationary)
        if not isinstance(collect_delay, int) or isinstance(collect_delay, bool) or collect_delay < 0:
            raise ValueError(f"collect_delay must be a non-negative integer, not {collect_delay!r}")
        self._collect_delay = collect_delay
        self._alternate_b = boolean("alternate_b", alternate_b)
        if alternate_b and not stationary:
            raise ValueError("alternate_b needs a stationary PE (the global column of a sliding array)")
        self._mul = Multiplier(a_width=a_width, b_width=b_width, a_signed=a_signed, b_signed=b_signed,
                               target=multiplier)
        self._acc_shape = Shape.cast(acc_shape)
        self._saturate = saturate
        a_shape, b_shape = operand_shape(a_width, a_signed), operand_shape(b_width, b_signed)
        ports = {
            "a_in": In(a_shape), "b_in": In(b_shape),
            "valid_in": In(1), "first_in": In(1), "last_in": In(1),
            "a_out": Out(a_shape), "b_out": Out(b_shape),
            "valid_out": Out(1), "first_out": Out(1), "last_out": Out(1),
            "result": Out(self._acc_shape), "result_valid": Out(1),
        }
        if stationary:
            ports.update({
                "stationary_in": In(1), "swap_in": In(1), "weight_in": In(a_shape),
                "psum_in": In(self._acc_shape), "collect_in": In(self._acc_shape),
                "stationary_out": Out(1), "swap_out": Out(1), "psum_out": Out(self._acc_shape),
                "result_collected": Out(1),
            })
        if alternate_b:
            ports.update({"alt_b_in": In(b_shape), "alt_select_in": In(1)})
        super().__init__(ports)

    @property
    def latency(self) -> int:
        # hand-off register, multiplier pipeline, accumulator, result register
        return 1 + self._mul.latency + accumulator_input_stages(self._mul.target) + 1 + 1

    def _clip(self, value):
        shape = self._acc_shape
        lo = -(1 << (shape.width - 1)) if shape.signed else 0
        hi = (1 << (shape.width - 1)) - 1 if shape.signed else (1 << shape.width) - 1
        return Mux(value > hi, hi, Mux(value < lo, lo, value))

    def elaborate(self, platform):
        m = Module()
        m.submodules.multiplier = mul = self._mul

        # Only the valid bits are reset: operands, flags and sums are don't-care until a valid
        # step or a result_valid says otherwise (ports cannot be reset-less, hence the copies).
        a_out, b_out = Signal.like(self.a_out, reset_less=True), Signal.like(self.b_out, reset_less=True)
        first_out, last_out = Signal(reset_less=True), Signal(reset_less=True)
        m.d.sync += [
            a_out.eq(self.a_in), b_out.eq(self.b_in),
            self.valid_out.eq(self.valid_in), first_out.eq(self.first_in), last_out.eq(self.last_in),
        ]
        m.d.comb += [self.a_out.eq(a_out), self.b_out.eq(b_out), self.first_out.eq(first_out),
                     self.last_out.eq(last_out)]
        stationary = None
        if self._stationary:
            # The held weight loads as the swapping step passes, so that step already multiplies it.
            # The flags select this PE's operands: flip-flops of its own (kept_register), since along a
            # row they equal the neighbours' pipeline copies, and merged with those they reached this
            # multiplier's inputs from two PEs away (ECP5: 5.4 ns of routing, 140 MHz).
            weight = Signal.like(self.weight_in, reset_less=True)
            stationary = kept_register(m, self.stationary_in, "stationary", target=self._mul.target)
            swap = kept_register(m, self.swap_in, "swap", target=self._mul.target)
            m.d.comb += [self.stationary_out.eq(stationary), self.swap_out.eq(swap)]
            with m.If(self.swap_in):
                m.d.sync += weight.eq(self.weight_in)
            b_operand = self.b_out
            if self._alternate_b:
                # The multiplier's b from a lane of its own, while the register passing b on keeps its lane.
                alt_b = Signal.like(self.alt_b_in, reset_less=True)
                m.d.sync += alt_b.eq(self.alt_b_in)
                alt_select = kept_register(m, self.alt_select_in, "alt_select", target=self._mul.target)
                b_operand = Mux(alt_select, alt_b, self.b_out)
            m.d.comb += [mul.a.eq(Mux(stationary, weight, self.a_out)), mul.b.eq(b_operand)]
        else:
            m.d.comb += [mul.a.eq(self.a_out), mul.b.eq(self.b_out)]

        # Flags ride along the multiplier pipeline so they meet their product.  (All PEs on one
        # anti-diagonal see the same flags at the same time; Yosys merges their registers, so
        # the flags reach the accumulators late in the path: the multiplexer after the adder.)
        valid, first, last = self.valid_out, self.first_out, self.last_out
        for stage in range(mul.latency):
            v = Signal(name=f"valid_m{stage}")
            f, l = Signal(name=f"first_m{stage}", reset_less=True), Signal(name=f"last_m{stage}", reset_less=True)
            m.d.sync += [v.eq(valid), f.eq(first), l.eq(last)]
            valid, first, last = v, f, l
            if stationary is not None:
                stationary = register(m, stationary, f"stationary_m{stage}")

        # On ECP5 the product register sits by the DSP row, far from the accumulator; one more
        # register lets the placer put the accumulator's operand beside its carry chain.
        # The accumulator's enable and select, and the result's load, are this PE's own flip-flops
        # (kept_register): merged across an anti-diagonal, one flip-flop drove the accumulators of
        # up to eight PEs spread over the array (ECP5 critical path: 7.9 ns of routing).
        target = mul.target
        product = mul.product
        for stage in range(accumulator_input_stages(target)):
            p = Signal.like(product, name=f"product_a{stage}", reset_less=True)
            m.d.sync += p.eq(product)
            product = p
            valid = kept_register(m, valid, f"valid_a{stage}", target=target, reset=True)
            first = kept_register(m, first, f"first_a{stage}", target=target)
            last = kept_register(m, last, f"last_a{stage}", target=target)
            if stationary is not None:
                stationary = kept_register(m, stationary, f"stationary_a{stage}", target=target)

        acc = Signal(self._acc_shape, reset_less=True)
        result = Signal(self._acc_shape, reset_less=True)
        if stationary is None:
            finished = kept_register(m, valid & last, "finished", target=target, reset=True)
            total = Mux(first, product, acc + product)
            m.d.sync += self.result_valid.eq(finished)
        else:
            finished = kept_register(m, valid & last & ~stationary, "finished", target=target, reset=True)
            # One adder for both kinds of step: its other operand is chosen (one LUT4 a bit).
            total = Mux(stationary, self.psum_in, Mux(first, 0, acc)) + product
            # The row shifts its sums into the results together: each PE waits for the rightmost.
            shift = delayed(m, kept_register(m, valid & stationary, "collect", target=target, reset=True),
                            self._collect_delay, "collect", reset=True)
            shift_last = delayed(m, register(m, last, "collect_last"), self._collect_delay, "collect_last")
            collected = shift & shift_last
            m.d.sync += [self.result_valid.eq(finished | collected), self.result_collected.eq(collected)]
            m.d.comb += self.psum_out.eq(acc)
        with m.If(valid):
            m.d.sync += acc.eq(self._clip(total) if self._saturate else total)
        with m.If(finished):
            m.d.sync += result.eq(acc)
        if stationary is not None:
            with m.If(shift):
                m.d.sync += result.eq(self.collect_in)
        m.d.comb += self.result.eq(result)
        return m
