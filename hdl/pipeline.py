"""Small pipelining helpers shared by the datapath blocks.

Each helper adds registers to a module in the ``sync`` domain and returns the
delayed value; the caller keeps track of stage numbers.  None of them has a
handshake: these are datapaths that advance every cycle, qualified by valid
bits that travel beside them.

The registers are reset-less unless the caller passes ``reset=True``: a
datapath value is don't-care until its valid bit says otherwise, and leaving
it out of the reset keeps the reset net's fan-out to the state that needs it
(valid bits, counters, state machines; docs/timing.md, *Reset*).  Pass
``reset=True`` for anything that qualifies other values.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, ResetSignal, Signal, Value
from amaranth.lib import data

__all__ = ["delayed", "register", "adder_tree", "kept_register", "kept_copy", "check_kept_target", "KEPT_TARGETS"]


def register(m: Module, value, name: str, *, reset: bool = False) -> Signal:
    """``value`` one cycle later; reset-less unless ``reset``."""
    # A View keeps its layout (a registered array of lanes must still index by lane).
    shape = value.shape() if isinstance(value, data.View) else Value.cast(value).shape()
    reg = Signal(shape, name=name, reset_less=not reset)
    m.d.sync += reg.eq(value)
    return reg


#: What :func:`kept_register` knows: ``ecp5`` keeps copies apart, ``generic`` lets synthesis merge them.
KEPT_TARGETS = ("generic", "ecp5")


def check_kept_target(target) -> str:
    """``target`` if it is one of :data:`KEPT_TARGETS`, else a ``ValueError`` naming it."""
    if target not in KEPT_TARGETS:
        raise ValueError(f"target must be one of {', '.join(KEPT_TARGETS)}, not {target!r}")
    return target


def kept_register(m: Module, value, name: str, *, target: str, reset: bool = False) -> Signal:
    """One bit ``value`` one cycle later in a flip-flop that synthesis keeps apart from its equals.

    Yosys merges flip-flops with the same input, so copies of a control bit made for
    placement (one per user, next to it) collapse back into one net that spans the die.
    With ``target == "ecp5"`` the flip-flop is a ``TRELLIS_FF`` instance, a cell type
    Yosys never merges (simulation needs ``hdl/models/TRELLIS_FF.v``); otherwise a
    plain register.  ``reset`` clears it synchronously with the domain's reset.
    """
    reg = Signal(name=name, reset_less=not reset)
    if target != "ecp5":
        m.d.sync += reg.eq(value)
        return reg
    m.submodules[f"{name}_ff"] = Instance(
        "TRELLIS_FF", p_GSR="DISABLED", p_CEMUX="1", p_CLKMUX="CLK", p_LSRMUX="LSR", p_SRMODE="LSR_OVER_CE",
        p_REGSET="RESET", p_LSRMODE="LSR",
        i_CLK=ClockSignal(), i_LSR=ResetSignal() if reset else Const(0), i_CE=Const(1), i_DI=value, o_Q=reg)
    return reg


def kept_copy(m: Module, value, name: str, *, target: str, reset: bool = False) -> Value:
    """``value`` (any width) one cycle later, each bit in a :func:`kept_register`: a copy of a
    multi-bit control for one group of its users."""
    value = Value.cast(value)
    return Cat(*[kept_register(m, value[k], f"{name}_{k}", target=target, reset=reset) for k in range(len(value))])


def delayed(m: Module, value, cycles: int, name: str, *, reset: bool = False):
    """``value`` ``cycles`` cycles later, through a chain of registers (``cycles`` may be 0);
    reset-less unless ``reset``."""
    for stage in range(cycles):
        value = register(m, value, f"{name}_d{stage + 1}", reset=reset)
    return value


def adder_tree(m: Module, terms: list, name: str, *, levels_per_stage: int = 1) -> tuple[Value, int]:
    """The sum of ``terms`` by a balanced tree of two-input adders, registered every
    ``levels_per_stage`` levels and after the last.

    Returns ``(sum, stages)``: the sum and how many cycles after the terms it is valid.
    Adders widen by one bit per level, so nothing overflows.
    """
    level, depth, stages = [Value.cast(t) for t in terms], 0, 0
    if len(level) == 1:
        return register(m, level[0], f"{name}_l0"), 1
    while len(level) > 1:
        pairs = [level[i] + level[i + 1] if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        depth += 1
        if depth % levels_per_stage == 0 or len(pairs) == 1:
            pairs = [register(m, v, f"{name}_l{depth}_{k}") for k, v in enumerate(pairs)]
            stages += 1
        level = pairs
    return level[0], stages
