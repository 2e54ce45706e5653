"""The attention engine behind an AXI4-Lite register file: start/busy/done, runtime registers, cycle counter."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, Module, ResetSignal, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .engine_top import AttentionEngineAxi

__all__ = ["Register", "register_map", "AttentionEngineAxiLite", "REGISTER_MAP_ID"]

#: Read-only value of register ``ID`` ("ATTN" in ASCII): software checks it before anything else.
REGISTER_MAP_ID = 0x4154544E
#: Version of the register map layout; bumped on any change of offsets or fields.
REGISTER_MAP_VERSION = 2


@dataclass(frozen=True)
class Register:
    """One 32-bit register of the map: ``port`` is the engine's ``ctrl_*`` input it drives (RW) or
    the value it reads (RO); ``bits`` of it are implemented, the rest read 0."""
    name: str
    offset: int
    access: str          # "RW", "RO", or "W1S/RO" (CTRL)
    bits: int
    description: str
    port: str | None = None
    index: int | None = None   # element of an array port (global tokens)
    target: str = "engine"     # whose port: the engine's, or the DMA's of the memory-mapped top


def axil_slave_members(addr_width: int) -> dict:
    """Signature members of the ``s_axil_*`` AXI4-Lite slave (32-bit data, ``addr_width``-bit addresses)."""
    return {"s_axil_awaddr": In(addr_width), "s_axil_awvalid": In(1), "s_axil_awready": Out(1),
            "s_axil_wdata": In(32), "s_axil_wstrb": In(4), "s_axil_wvalid": In(1), "s_axil_wready": Out(1),
            "s_axil_bresp": Out(2), "s_axil_bvalid": Out(1), "s_axil_bready": In(1),
            "s_axil_araddr": In(addr_width), "s_axil_arvalid": In(1), "s_axil_arready": Out(1),
            "s_axil_rdata": Out(32), "s_axil_rresp": Out(2), "s_axil_rvalid": Out(1), "s_axil_rready": In(1)}


def register_map(engine) -> list[Register]:
    """The register map of an engine build (an :class:`~attn_rtl.hdl.engine.AttentionEngine` or a top
    around one), in offset order (docs/registers generated from it)."""
    e = getattr(engine, "engine", engine)
    p = e.params

    def width(name):
        return len(Value.cast(getattr(e, name)))

    regs = [
        Register("ID", 0x00, "RO", 32, f"0x{REGISTER_MAP_ID:08X} (\"ATTN\")"),
        Register("VERSION", 0x04, "RO", 32, f"register map version {REGISTER_MAP_VERSION}"),
        Register("SHAPE", 0x08, "RO", 32, f"array rows (bits 0-7) = {e.rows}, cols (bits 8-15) = {e.cols}, "
                                          f"features (bits 16-18): sparse, importance, row_flags; bit 20: "
                                          f"sliding"),
        Register("CTRL", 0x0C, "W1S/RO", 4, "bit 0 START (write 1: start a run with the registers below), "
                                             "bit 1 BUSY, bit 2 DONE, bit 3 ERROR (read only)"),
        Register("CYCLES", 0x10, "RO", 32, "cycles since the run started (stops at done)", "cycles"),
    ]
    runtime = [("SEQ_LEN", "seq_len", "keys L (1 … max_seq_len)"),
               ("HEADS", "heads", "query heads H (1 … max_heads)"),
               ("KV_HEADS", "kv_heads", "K/V heads (H a multiple of it; 0: H)"),
               ("QUERY_LEN", "query_len", "queries, the newest of SEQ_LEN positions (0: SEQ_LEN)"),
               ("HEAD_DIM", "head_dim", "head dimension d (1 … max_head_dim)"),
               ("SCALE_MULT", "scale_mult", "score multiplier M (docs/numerics.md, section 3)"),
               ("SCALE_SHIFT", "scale_shift", "score shift s (at most max_shift)")]
    if p["sparse"]:
        runtime += [("PATTERN", "pattern", "0 dense, 1 window, 2 dilated, 3 grid, 4 causal, 5 causal-window "
                                           "(docs/sparse.md)"),
                    ("WINDOW", "window", "window w"), ("DILATION", "dilation", "dilation"),
                    ("GRID_H", "grid_h", "grid rows"), ("GRID_W", "grid_w", "grid columns"),
                    ("WINDOW_H", "window_h", "2-D window rows"), ("WINDOW_W", "window_w", "2-D window columns"),
                    ("GLOBAL_COUNT", "global_count", "global tokens in use")]
    if p["sliding"]:
        runtime.append(("DIAGONAL", "diagonal", "1: the next run takes the diagonal tiles (docs/sparse.md)"))
    if p["importance"]:
        runtime.append(("IMPORTANCE", "importance", "1: the next run is an importance run"))
    if p["row_flags"]:
        runtime.append(("THRESHOLD", "threshold", "largest-probability threshold, P fraction bits"))
    offset = 0x20
    for name, port, text in runtime:
        regs.append(Register(name, offset, "RW", width(port), text, port))
        offset += 4
    if p["sparse"]:
        element = len(Value.cast(e.global_tokens)) // p["max_globals"]
        for g in range(p["max_globals"]):
            regs.append(Register(f"GLOBAL_TOKEN_{g}", offset, "RW", element, f"global token {g}",
                                 "global_tokens", g))
            offset += 4
    return regs


class AttentionEngineAxiLite(wiring.Component):
    """:class:`~attn_rtl.hdl.engine_top.AttentionEngineAxi` with its control on an AXI4-Lite slave.

    The data streams are the AXI4-Stream ports of ``attention_engine``
    (``s_axis_q``, ``s_axis_k``, ``s_axis_v``, ``m_axis_o`` and, by build, the
    side streams); the ``ctrl_*`` ports become 32-bit registers at the offsets
    of :func:`register_map` (``attn-rtl generate`` writes the map as Markdown
    and a C header). Writing 1 to ``CTRL`` bit 0 starts a run with the
    registers' values, as ``ctrl_start`` does; ``irq`` is ``DONE``.

    AXI4-Lite: one transaction at a time per direction; a write takes its
    address and data together and honours ``wstrb`` byte by byte; an access
    outside the map, or a write to a read-only register, answers ``SLVERR``
    (reads return 0) and changes nothing. ``aresetn`` resets the registers
    to 0.

    Parameters are those of :class:`~attn_rtl.hdl.engine.AttentionEngine`.

    Attributes
    ----------
    registers : list of Register
        The register map (:func:`register_map`).
    addr_width : int
        Byte address bits of ``s_axil_awaddr`` and ``s_axil_araddr`` (at least 8).

    Ports
    -----
    aclk, aresetn : In(1)
    s_axil_aw*, s_axil_w*, s_axil_b*, s_axil_ar*, s_axil_r* :
        The AXI4-Lite slave (``addr_width``-bit addresses, 32-bit data, ``wstrb``, ``bresp``, ``rresp``).
    irq : Out(1)
        ``CTRL.DONE``.
    s_axis_*, m_axis_* :
        The data streams of :class:`~attn_rtl.hdl.engine_top.AttentionEngineAxi`.
    """

    def __init__(self, **params):
        # The AXI4-Stream wrapper lends its stream ports and their wiring; its engine is elaborated here.
        self.axis = AttentionEngineAxi(**params)
        self.axis._MustUse__silence = True
        self.params = self.axis.params
        self.registers = register_map(self.axis)
        #: Byte address bits: the map rounded up to a power of two, at least 256 bytes.
        self.addr_width = max(8, (self.registers[-1].offset + 3).bit_length())
        members = {"aclk": In(1), "aresetn": In(1), "irq": Out(1), **axil_slave_members(self.addr_width)}
        for name, member in self.axis.signature.members.items():
            if name.startswith(("s_axis_", "m_axis_")):
                members[name] = member
        super().__init__(members)

    def __getattr__(self, name):
        # Derived figures (memory_bits, array_figures, ...) are the engine's.
        if name.startswith("_") or name == "axis":
            raise AttributeError(name)
        return getattr(self.axis.engine, name)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.aclk), ResetSignal("sync").eq(~self.aresetn)]
        m.submodules.engine = core = self.axis.engine
        self.axis.connect_streams(m, self)
        status = Cat(Const(0, 1), core.busy, core.done, core.error)
        start = serve_registers(m, self, self.registers, {"engine": core}, read_only_registers(core, status))
        m.d.comb += [core.start.eq(start), self.irq.eq(core.done)]
        return m


def read_only_registers(core, status, features=()) -> dict:
    """Offset -> value of the read-only registers every map has (``features``: more SHAPE bits)."""
    p = core.params
    shape = Cat(Const(core.rows, 8), Const(core.cols, 8), Const(p["sparse"], 1), Const(p["importance"], 1),
                Const(p["row_flags"], 1), *features)
    if p["sliding"]:   # bit 19 is the memory-mapped top's
        shape = Cat(shape, Const(0, 20 - len(shape)), Const(1, 1))
    return {0x00: Const(REGISTER_MAP_ID, 32), 0x04: Const(REGISTER_MAP_VERSION, 32), 0x08: shape,
            0x0C: status, 0x10: core.cycles}


def serve_registers(m: Module, top, registers, targets: dict, read_only: dict) -> Value:
    """The AXI4-Lite slave of ``top`` (its ``s_axil_*`` ports) over ``registers``: each RW register a
    flip-flop driving its target's port, ``read_only`` offsets read as given.  Returns the START pulse
    (a write of 1 to ``CTRL`` bit 0)."""
    held = {}   # offset -> register signal of a RW register
    for reg in registers:
        if reg.access == "RW":
            held[reg.offset] = Signal(reg.bits, name=f"reg_{reg.name.lower()}")
            target = getattr(targets[reg.target], reg.port)
            if reg.index is None:
                m.d.comb += target.eq(held[reg.offset])
            else:
                m.d.comb += target[reg.index].eq(held[reg.offset])

    # The responses' valids are low in every reset cycle, not only from the first edge in reset (AXI
    # A3.1.2): their registers are gated by the reset (two gates on its net).
    write_answer, read_answer = Signal(name="write_answer_pending"), Signal(name="read_answer_pending")
    m.d.comb += [top.s_axil_bvalid.eq(write_answer & ~ResetSignal()),
                 top.s_axil_rvalid.eq(read_answer & ~ResetSignal())]

    # --- write channel: address and data together, then the response.
    start = Signal()
    take_write = top.s_axil_awvalid & top.s_axil_wvalid & ~write_answer
    word = top.s_axil_awaddr[2:]
    m.d.comb += [top.s_axil_awready.eq(take_write), top.s_axil_wready.eq(take_write)]
    mask = Cat(*[top.s_axil_wstrb[b].replicate(8) for b in range(4)])
    with m.If(take_write):
        m.d.sync += [write_answer.eq(1), top.s_axil_bresp.eq(0b10)]   # SLVERR unless matched
        with m.Switch(word):
            for offset, reg in held.items():
                with m.Case(offset >> 2):
                    merged = (reg & ~mask[:len(reg)]) | (top.s_axil_wdata & mask)[:len(reg)]
                    m.d.sync += [reg.eq(merged), top.s_axil_bresp.eq(0)]
            with m.Case(0x0C >> 2):
                m.d.sync += top.s_axil_bresp.eq(0)
                m.d.comb += start.eq(top.s_axil_wstrb[0] & top.s_axil_wdata[0])
    with m.Elif(top.s_axil_bready):
        m.d.sync += write_answer.eq(0)

    # --- read channel: one cycle from address to data.
    take_read = top.s_axil_arvalid & ~read_answer
    m.d.comb += top.s_axil_arready.eq(take_read)
    with m.If(take_read):
        m.d.sync += [read_answer.eq(1), top.s_axil_rdata.eq(0), top.s_axil_rresp.eq(0b10)]
        with m.Switch(top.s_axil_araddr[2:]):
            for offset, value in {**read_only, **held}.items():
                with m.Case(offset >> 2):
                    m.d.sync += [top.s_axil_rdata.eq(value), top.s_axil_rresp.eq(0)]
    with m.Elif(top.s_axil_rready):
        m.d.sync += read_answer.eq(0)
    return start
