"""A pin wrapper that lets place and route time any block on a real package, reset included."""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Module, ResetSignal, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PinWrapper"]


class PinWrapper(wiring.Component):
    """Feeds every input of ``inner`` from a shift register and folds every output into one pin.

    A bare block has hundreds of ports, more than a package has pins.  Here
    all input bits of ``inner`` (payloads, valids, readies) come from one long
    chain of flip-flops fed from ``din`` (each stage the XOR of its neighbour
    and itself, so that none can be merged with a register inside ``inner``),
    and all its output bits are
    registered and then XOR-reduced by a tree with a register after every
    four-input level into ``dout``.  Every bit of logic stays observable, so
    synthesis keeps it, and every path into and out of ``inner`` starts and
    ends at a flip-flop: the Fmax that place and route reports is the
    block's own.

    The reset is a system's: with ``own_domain`` (the default) the wrapper drives the ``sync`` domain
    from its ``clk`` pin and takes its reset from a register (two flip-flops after the ``rst`` pin, as a
    reset synchronizer gives it), so the reset's fan-out to every flip-flop of ``inner`` is a timed
    clock-to-clock path.  A reset straight from a pin is not timed by nextpnr and hides that path.
    Without ``own_domain`` the surrounding design (a board platform) provides ``sync``.

    Parameters
    ----------
    inner : wiring.Component
        The block, clocked by the ``sync`` domain.
    own_domain : bool
        Drive ``sync`` from ``clk`` with a registered reset from ``rst``.

    Ports
    -----
    din : In(1)
    dout : Out(1)
    clk, rst : In(1)
        Only with ``own_domain``: the clock and the asynchronous reset request.

    Attributes
    ----------
    sync_reset : Signal or None
        With ``own_domain``: the registered reset of ``sync``.
    """

    def __init__(self, inner: wiring.Component, *, own_domain: bool = True):
        if not isinstance(own_domain, bool):
            self._MustUse__silence = True   # never built, so never "unused"
            raise ValueError(f"own_domain must be true or false, not {own_domain!r}")
        self._inner = inner
        self._own_domain = own_domain
        super().__init__({"din": In(1), "dout": Out(1), **({"clk": In(1), "rst": In(1)} if own_domain else {})})
        self.sync_reset = Signal(init=1) if own_domain else None

    def elaborate(self, platform):
        m = Module()
        if self._own_domain:
            m.domains.sync = ClockDomain("sync")
            # The synchronizer itself is never reset: it is what makes the reset.
            m.domains.reset_sync = ClockDomain("reset_sync", reset_less=True, local=True)
            m.d.comb += [ClockSignal("sync").eq(self.clk), ClockSignal("reset_sync").eq(self.clk)]
            request = Signal()
            m.d.reset_sync += [request.eq(self.rst), self.sync_reset.eq(request)]
            m.d.comb += ResetSignal("sync").eq(self.sync_reset)
        m.submodules.inner = inner = self._inner
        inputs, outputs = [], []
        for path, member, value in inner.signature.flatten(inner):
            (inputs if member.flow == wiring.In else outputs).append(Value.cast(value))

        width_in = sum(len(v) for v in inputs)
        # The wrapper's own registers are not reset: only ``inner``'s reset fan-out is measured.
        chain = Signal(width_in, reset_less=True)
        # Each stage XORs in its own old value: a plain shift register has flip-flops whose D is
        # the previous stage, exactly like the delay lines inside ``inner`` that its bits feed, and
        # synthesis merges such equal flip-flops, tying ``inner``'s pipelines to the chain across
        # the die (a wire that sets Fmax in the wrapper and would not exist in a real design).
        m.d.sync += chain.eq(Cat(self.din, chain[:-1]) ^ chain)
        offset = 0
        for v in inputs:
            m.d.comb += v.eq(chain[offset:offset + len(v)])
            offset += len(v)

        level = Signal(sum(len(v) for v in outputs), name="captured", reset_less=True)
        m.d.sync += level.eq(Cat(*outputs))
        depth = 0
        while len(level) > 1:
            bits = [level[i:i + 4].xor() for i in range(0, len(level), 4)]
            nxt = Signal(len(bits), name=f"xor_level{depth}", reset_less=True)
            m.d.sync += nxt.eq(Cat(*bits))
            level, depth = nxt, depth + 1
        m.d.sync += self.dout.eq(level)
        return m
