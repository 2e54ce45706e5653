"""Processing element of the output-stationary systolic array."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .params import boolean, positive_int

__all__ = ["ProcessingElement", "accumulator_shape"]


def accumulator_shape(a_width: int, a_signed: bool, b_width: int, b_signed: bool, max_reduction: int) -> Shape:
    """The narrowest shape that holds any sum of ``max_reduction`` products exactly.

    A product of an ``a_width``-bit and a ``b_width``-bit operand fits
    ``a_width + b_width`` bits (signed when either operand is); each doubling
    of the number of terms adds one bit.
    """
    width = a_width + b_width + (max_reduction - 1).bit_length()
    return signed(width) if (a_signed or b_signed) else unsigned(width)


class ProcessingElement(wiring.Component):
    """A pipelined multiply-accumulate cell: ``acc = a*b`` on the first step, ``acc += a*b`` after.

    Operands enter on ``a_in``/``b_in`` and leave, one cycle later, on
    ``a_out``/``b_out`` for the neighbours to the right and below; ``valid``
    and ``first`` travel with ``a``.  The multiply sits between the operand
    registers and a product register and the accumulator is registered, the
    register layout of a DSP block (input, product, accumulator), so the
    cell reaches the DSP's clock rate.

    Parameters
    ----------
    a_width, b_width : int
        Operand widths.
    a_signed, b_signed : bool
        Operand signedness.
    acc_shape : Shape
        Accumulator shape; the caller sizes it so the sum cannot overflow.

    Attributes
    ----------
    latency : int
        Cycles from an operand on ``a_in``/``b_in`` to its product being in ``acc``.

    Ports
    -----
    a_in, b_in, valid_in, first_in : In
        Operands and flags from the left (``a``, flags) and from above (``b``).
    a_out, b_out, valid_out, first_out : Out
        The same, registered, to the neighbours.
    acc : Out(acc_shape)
        The running sum.
    """

    def __init__(self, *, a_width: int, b_width: int, a_signed: bool, b_signed: bool, acc_shape: Shape):
        positive_int("a_width", a_width)
        positive_int("b_width", b_width)
        boolean("a_signed", a_signed)
        boolean("b_signed", b_signed)
        a_shape = signed(a_width) if a_signed else unsigned(a_width)
        b_shape = signed(b_width) if b_signed else unsigned(b_width)
        self._acc_shape = Shape.cast(acc_shape)
        super().__init__({
            "a_in": In(a_shape), "b_in": In(b_shape), "valid_in": In(1), "first_in": In(1),
            "a_out": Out(a_shape), "b_out": Out(b_shape), "valid_out": Out(1), "first_out": Out(1),
            "acc": Out(self._acc_shape),
        })

    @property
    def latency(self) -> int:
        return 3

    def elaborate(self, platform):
        m = Module()
        product = Signal(self._acc_shape)
        product_valid = Signal()
        product_first = Signal()
        m.d.sync += [
            self.a_out.eq(self.a_in),
            self.b_out.eq(self.b_in),
            self.valid_out.eq(self.valid_in),
            self.first_out.eq(self.first_in),
            product.eq(self.a_out * self.b_out),
            product_valid.eq(self.valid_out),
            product_first.eq(self.first_out),
        ]
        with m.If(product_valid):
            m.d.sync += self.acc.eq(Mux(product_first, product, self.acc + product))
        return m
