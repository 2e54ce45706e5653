"""A registered, replicated reset: each unit of a design gets its own flip-flop copy of ``sync``'s reset."""

from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal

from .pipeline import check_kept_target, kept_register

__all__ = ["ResetTree"]


class ResetTree:
    """Distributes ``sync``'s reset to the units of a design through one flip-flop per unit.

    In a user's system the reset comes from a register (a reset synchronizer), and one net from it
    to every flip-flop that needs a reset spans the die: on the 8×8 engine that net (1,300 loads)
    was the critical path (13.4 ns of routing, docs/timing.md).  A tree cuts it: the root drives
    one flip-flop per unit, and each copy drives its own unit's loads, placed beside them.

    Each unit moves to a clock domain of its own, clocked by ``sync`` and reset by its copy; the
    rest of the design (the *core*, given to :meth:`root`) gets a copy too.  Every copy is one
    register deep, so all units enter and leave reset on the same edge, :attr:`latency` cycles
    after ``sync``'s reset does.

    Parameters
    ----------
    target : str
        ``"ecp5"`` makes each copy a ``TRELLIS_FF`` that Yosys cannot merge with its equals
        (:func:`~attn_rtl.hdl.pipeline.kept_register`); ``"generic"`` a plain register.

    Attributes
    ----------
    raw : Signal
        ``sync``'s reset as it arrives, :attr:`latency` cycles before the units see it: for gating
        the design's ports in the cycle its state has not yet been reset.
    """

    #: Cycles from ``sync``'s reset to the units'.
    latency = 1

    def __init__(self, *, target: str):
        self.target = check_kept_target(target)
        self.raw = Signal()
        self._units: list[str] = []

    @staticmethod
    def domain(name: str) -> str:
        """The clock domain of unit ``name``."""
        return f"reset_{name}"

    def unit(self, name: str, elaboratable):
        """``elaboratable`` in unit ``name``'s domain (add the result as a submodule)."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"unit name must be an identifier, not {name!r}")
        if name in self._units:
            raise ValueError(f"unit {name!r} has a reset copy already")
        self._units.append(name)
        return DomainRenamer({"sync": self.domain(name)})(elaboratable)

    def root(self, core: Module, name: str = "core") -> Module:
        """A module holding ``core`` (whose own ``sync`` logic becomes unit ``name``), the units'
        domains and their reset copies: return it from ``elaborate``."""
        m = Module()
        m.submodules[name] = self.unit(name, core)
        m.d.comb += self.raw.eq(ResetSignal("sync"))
        for unit in self._units:
            domain = self.domain(unit)
            m.domains += ClockDomain(domain, local=True)
            copy = kept_register(m, ResetSignal("sync"), f"{domain}_copy", target=self.target)
            m.d.comb += [ClockSignal(domain).eq(ClockSignal("sync")), ResetSignal(domain).eq(copy)]
        return m
