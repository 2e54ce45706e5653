"""A four-pin wrapper that lets place and route time any block on a real package."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, Value
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

    Ports
    -----
    din : In(1)
    dout : Out(1)
    """

    def __init__(self, inner: wiring.Component):
        self._inner = inner
        super().__init__({"din": In(1), "dout": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self._inner
        inputs, outputs = [], []
        for path, member, value in inner.signature.flatten(inner):
            (inputs if member.flow == wiring.In else outputs).append(Value.cast(value))

        width_in = sum(len(v) for v in inputs)
        chain = Signal(width_in)
        # Each stage XORs in its own old value: a plain shift register has flip-flops whose D is
        # the previous stage, exactly like the delay lines inside ``inner`` that its bits feed, and
        # synthesis merges such equal flip-flops, tying ``inner``'s pipelines to the chain across
        # the die (a wire that sets Fmax in the wrapper and would not exist in a real design).
        m.d.sync += chain.eq(Cat(self.din, chain[:-1]) ^ chain)
        offset = 0
        for v in inputs:
            m.d.comb += v.eq(chain[offset:offset + len(v)])
            offset += len(v)

        level = Signal(sum(len(v) for v in outputs), name="captured")
        m.d.sync += level.eq(Cat(*outputs))
        depth = 0
        while len(level) > 1:
            bits = [level[i:i + 4].xor() for i in range(0, len(level), 4)]
            nxt = Signal(len(bits), name=f"xor_level{depth}")
            m.d.sync += nxt.eq(Cat(*bits))
            level, depth = nxt, depth + 1
        m.d.sync += self.dout.eq(level)
        return m
