"""A registered integer multiplier that fills one DSP block."""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import boolean, positive_int

from .pipeline import delayed

__all__ = ["Multiplier", "MULTIPLIER_TARGETS", "multiplier_latency", "check_multiplier"]

MULTIPLIER_TARGETS = ("generic", "ecp5")


#: Bits of ``a`` per MULT18X18D when ``a`` is split: unsigned low pieces, the top one keeps the sign.
_PIECE = 17


def _pieces(a_width: int, a_signed: bool) -> int:
    """MULT18X18D needed for ``a``: 17-bit unsigned pieces from the bottom, the top one with the sign."""
    top = 18 if a_signed else 17
    return 1 if a_width <= top else 1 + -(-(a_width - top) // _PIECE)


def multiplier_latency(target: str, a_width: int = 1, a_signed: bool = True) -> int:
    """Cycles from operands to product: input and product registers, plus one fabric register on
    ECP5, plus one per adder joining the partial products when ``a`` is split over several DSPs."""
    if target != "ecp5":
        return 2
    return 2 + _pieces(a_width, a_signed)


def check_multiplier(*, a_width: int, b_width: int, a_signed: bool, b_signed: bool, target: str,
                     split_a: bool | int = False) -> None:
    """Raise ``ValueError`` if ``target`` cannot multiply operands of these widths.

    With ``split_a``, an ``a`` too wide for one ECP5 DSP block is split over two (up to 35 bits
    signed, 34 unsigned), or over ``split_a`` blocks when it is a number.
    """
    if target not in MULTIPLIER_TARGETS:
        raise ValueError(f"multiplier must be one of {', '.join(MULTIPLIER_TARGETS)}, not {target!r}")
    if target == "ecp5":
        pieces_a = 2 if split_a is True else (split_a or 1)
        operands = [("a_width", a_width, a_signed, pieces_a), ("b_width", b_width, b_signed, 1)]
        for name, width, is_signed, pieces in operands:
            limit = (18 if is_signed else 17) + _PIECE * (pieces - 1)
            if width > limit:
                raise ValueError(f"{name} must be at most {limit} for the ecp5 multiplier "
                                 f"(MULT18X18D is 18x18 signed), not {width}")


class Multiplier(wiring.Component):
    """``product = a * b`` through input and output registers.

    ``generic`` describes the registers around a ``*``; Yosys packs them into
    the DSP48E1 (Xilinx 7) and SB_MAC16 (iCE40) by itself.  On ECP5 Yosys
    maps ``*`` onto an unregistered MULT18X18D and leaves every register in
    the fabric, so ``ecp5`` instantiates MULT18X18D with its input and output
    registers enabled, followed by one fabric register that absorbs the
    routing out of the DSP row.  An ``a`` wider than one DSP block (18 bits
    signed, 17 unsigned) is split over several (``max_pieces``), and one registered
    adder per further piece joins the partial products (a cycle each).  Both
    compute the same product; the ECP5 path takes one cycle more, and one per adder.  For simulation the ECP5 path needs
    ``hdl/models/MULT18X18D.v``.

    Parameters
    ----------
    a_width, b_width : int
    a_signed, b_signed : bool
    target : "generic" or "ecp5"
    max_pieces : int
        MULT18X18D an ``a`` may be split over on ECP5 (17 bits each, 18 for a signed top piece).

    Attributes
    ----------
    latency : int
        Cycles from ``a``/``b`` to ``product``.

    Ports
    -----
    a : In(a_width, a_signed)
    b : In(b_width, b_signed)
    product : Out(a_width + b_width, signed if either operand is)
    """

    def __init__(self, *, a_width: int, b_width: int, a_signed: bool, b_signed: bool, target: str = "generic",
                 max_pieces: int = 2):
        positive_int("a_width", a_width)
        positive_int("b_width", b_width)
        boolean("a_signed", a_signed)
        boolean("b_signed", b_signed)
        positive_int("max_pieces", max_pieces)
        check_multiplier(a_width=a_width, b_width=b_width, a_signed=a_signed, b_signed=b_signed, target=target,
                         split_a=max_pieces)
        self.target = target
        self._a_width, self._a_signed = a_width, a_signed
        self._signed_product = a_signed or b_signed
        width = a_width + b_width
        super().__init__({
            "a": In(signed(a_width) if a_signed else unsigned(a_width)),
            "b": In(signed(b_width) if b_signed else unsigned(b_width)),
            "product": Out(signed(width) if self._signed_product else unsigned(width)),
        })

    @property
    def latency(self) -> int:
        return multiplier_latency(self.target, self._a_width, self._a_signed)

    def elaborate(self, platform):
        m = Module()
        # A datapath: no register here is reset (the DSP's RST pins stay unconnected too).
        product = Signal.like(self.product, reset_less=True)
        m.d.comb += self.product.eq(product)
        if self.target == "generic":
            a_reg, b_reg = Signal.like(self.a, reset_less=True), Signal.like(self.b, reset_less=True)
            m.d.sync += [a_reg.eq(self.a), b_reg.eq(self.b), product.eq(a_reg * b_reg)]
            return m

        # ECP5: operands extended to 18-bit two's complement, multiplied signed.  An ``a`` wider
        # than one DSP takes two: the low 17 bits unsigned, the rest with the sign, then one
        # registered fabric adder.
        pieces = _pieces(self._a_width, self._a_signed)
        if pieces == 1:
            m.d.sync += product.eq(self._dsp(m, "dsp", self.a))
            return m
        # Each piece's product through a fabric register, then one registered adder per piece
        # added, lowest first (one adder each: two in one stage would chain their carries).
        partial = None
        for k in range(pieces):
            piece = self.a[_PIECE * k:] if k == pieces - 1 else self.a[_PIECE * k:_PIECE * (k + 1)]
            if k == pieces - 1 and self._a_signed:
                piece = piece.as_signed()
            name = {0: "dsp_low", pieces - 1: "dsp_high"}.get(k, f"dsp_{k}")
            p36 = self._dsp(m, name, piece)
            registered = Signal.like(p36, name=f"{name}_r", reset_less=True)
            m.d.sync += registered.eq(p36)
            # Pieces not yet added wait in registers as long as the adders before them take.
            term = delayed(m, registered, max(k - 1, 0), f"{name}_wait")
            if partial is None:
                partial = term
                continue
            total = product if k == pieces - 1 else Signal(signed(36 + _PIECE * k + 1), name=f"partial_{k}",
                                                                   reset_less=True)
            m.d.sync += total.eq(partial + (term << (_PIECE * k)))
            partial = total
        return m

    def _dsp(self, m: Module, name: str, a) -> Signal:
        """One MULT18X18D of ``a`` and ``self.b`` with input and output registers: its 36-bit
        product, two cycles after the operands."""
        a18, b18 = Signal(signed(18), name=f"{name}_a"), Signal(signed(18), name=f"{name}_b")
        p36 = Signal(signed(36), name=f"{name}_p")
        m.d.comb += [a18.eq(a), b18.eq(self.b)]
        m.submodules[name] = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
            p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
            p_REG_INPUTA_CE="CE0", p_REG_INPUTB_CE="CE0", p_REG_OUTPUT_CE="CE0",
            p_REG_INPUTA_RST="RST0", p_REG_INPUTB_RST="RST0", p_REG_OUTPUT_RST="RST0",
            p_CLK0_DIV="ENABLED", p_GSR="DISABLED", p_RESETMODE="SYNC", p_SOURCEB_MODE="B_SHIFT",
            p_MULT_BYPASS="DISABLED", p_CAS_MATCH_REG="FALSE", p_HIGHSPEED_CLK="NONE",
            # Only the pins in use are connected: every constant tied to a DSP pin is a route into
            # the crowded DSP row (tying all of them made the 8x8 array unroutable).  Unconnected
            # C, SOURCE, CLK1-3, CE1-3 and RST inputs default to inactive.
            **{f"i_A{i}": a18[i] for i in range(18)},
            **{f"i_B{i}": b18[i] for i in range(18)},
            i_SIGNEDA=Const(1), i_SIGNEDB=Const(1),
            i_CLK0=ClockSignal(), i_CE0=Const(1),
            **{f"o_P{i}": p36[i] for i in range(36)},
        )
        return p36
