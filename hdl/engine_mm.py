"""The memory-mapped attention accelerator: the engine, its DMA on one AXI4 master, registers on AXI4-Lite, ``irq``."""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import int_in_range, positive_int, reject_unknown

from .engine import ENGINE_DEFAULTS, AttentionEngine, engine_params
from .engine_axil import Register, axil_slave_members, read_only_registers, register_map, serve_registers
from .engine_dma import TENSORS, EngineDMA

__all__ = ["AttentionEngineMM", "MEMORY_DEFAULTS", "mm_params", "mm_register_map"]

#: Build parameters of the memory-mapped top beside the engine's.
MEMORY_DEFAULTS = {"bus_width": 64, "addr_width": 32, "id_width": 4, "kv_buffer_keys": 0, "outstanding": 16}
_INCR, _OKAY = 1, 0


def mm_params(**params) -> dict:
    """Validate the parameters of :class:`AttentionEngineMM`; return them complete."""
    reject_unknown("memory-mapped engine", params, {**ENGINE_DEFAULTS, **MEMORY_DEFAULTS})
    memory_params = {k: params.pop(k, v) for k, v in MEMORY_DEFAULTS.items()}
    p = engine_params(**params)
    if p["sliding"]:
        raise ValueError("the memory-mapped top's DMA gathers the gathered tiles only: sliding must be false "
                         "(a sliding build's diagonal runs take the stream top, docs/sparse.md)")
    if p["numerics"]["data_width"] != 8:
        raise ValueError(f"the memory-mapped top moves int8 tensors: data_width must be 8, "
                         f"not {p['numerics']['data_width']}")
    int_in_range("addr_width", memory_params["addr_width"], 12, 32)
    int_in_range("id_width", memory_params["id_width"], 1, 16)
    positive_int("outstanding", memory_params["outstanding"], at_most=64)
    return {**p, **memory_params}


def mm_register_map(engine: AttentionEngine) -> list[Register]:
    """The register map of the memory-mapped top: the engine's (:func:`register_map`), its byte counters,
    and every tensor's base address, row stride and head stride."""
    regs = register_map(engine)
    regs = [Register("CTRL", 0x0C, "W1S/RO", 6, "bit 0 START, bit 1 BUSY, bit 2 DONE, bit 3 ERROR (a runtime value "
                     "out of range), bit 4 READ_ERROR, bit 5 WRITE_ERROR (an AXI4 response other than OKAY)")
            if r.name == "CTRL" else r for r in regs]
    regs += [Register("BYTES_READ", 0x14, "RO", 32, "tensor bytes read by the run", "bytes_read", target="dma"),
             Register("BYTES_WRITTEN", 0x18, "RO", 32, "tensor bytes written by the run", "bytes_written",
                      target="dma")]
    offset = max(r.offset for r in regs) + 4
    names = {"q": "Q", "k": "K", "v": "V", "o": "O"}
    for t in TENSORS:
        for field, text in (("base", "byte address of head 0, row 0"), ("row_stride", "bytes from a row to the next"),
                            ("head_stride", "bytes from a head to the next")):
            regs.append(Register(f"{names[t]}_{field.upper()}", offset, "RW", 32, f"{names[t]}: {text}",
                                 f"{t}_{field}", target="dma"))
            offset += 4
    p = engine.params
    extra = []
    if p["importance"] or p["row_flags"]:
        extra += [("LISTS", 3, "bit 0: Q and O rows by the token list (query i is token TOKEN_LIST[i]); bit 1: "
                               "K and V rows by it (key j is token TOKEN_LIST[j]); bit 2: heads by the head list "
                               "(KV_HEADS 0 or HEADS, else ERROR)", "lists"),
                  ("TOKEN_LIST_BASE", 32, "byte address of the token list (uint16 little-endian indices)",
                   "token_list_base"),
                  ("HEAD_LIST_BASE", 32, "byte address of the head list (uint16 little-endian indices)",
                   "head_list_base")]
    if p["importance"]:
        extra += [("TOKEN_IMPORTANCE_BASE", 32, "importance run: byte address of the token importances (one unsigned "
                                                "little-endian word per key, docs/system.md)", "token_importance_base"),
                  ("HEAD_IMPORTANCE_BASE", 32, "importance run: byte address of the head importances (one word per "
                                               "head)", "head_importance_base")]
    if p["row_flags"]:
        extra += [("ROW_FLAGS_BASE", 32, "byte address of the row flags (one byte per query row, 1: below "
                                         "THRESHOLD), heads after each other", "row_flags_base"),
                  ("K_MSB_BITS", 4, "0 or 8: K in full; 1, 2, 4: K_BASE and strides describe K's MSB plane "
                                    "(that many bits per element, packed from bit 0); others: ERROR", "k_msb_bits")]
    for name, bits, text, port in extra:
        regs.append(Register(name, offset, "RW", bits, text, port, target="dma"))
        offset += 4
    return sorted(regs, key=lambda r: r.offset)


class AttentionEngineMM(wiring.Component):
    """The attention engine as a memory-mapped accelerator: tensors in memory, one AXI4 master, ``irq``.

    Software writes the runtime registers (as for ``attention_engine_axil``)
    and, per tensor, a base address, a row stride and a head stride
    (:func:`mm_register_map`), then sets ``CTRL.START``. The
    :class:`~attn_rtl.hdl.engine_dma.EngineDMA` reads Q, K and V through the
    AXI4 master, feeds the engine and writes O back; ``CTRL.DONE`` (and
    ``irq``) rise when the last write is answered.  ``BYTES_READ`` and
    ``BYTES_WRITTEN`` count the bytes moved.  Builds with ``importance`` or
    ``row_flags`` (SpAtten) add the list registers (pruned layers, a
    progressive recomputation's query list), where importances and row flags
    are written, and ``K_MSB_BITS`` (docs/system.md); a start with a DMA
    register out of range raises ``CTRL.ERROR`` and nothing runs.

    The AXI4 master: INCR bursts of whole bus words (``bus_width`` bits, 32 …
    512), at most 256 beats and never across 4 KB, reads and writes each with
    up to ``outstanding`` rows in flight, all on ID 0 (``id_width`` bits);
    ``wstrb`` covers exactly the bytes of O.  ``aresetn`` is synchronous,
    active low, and resets registers and DMA.

    Parameters
    ----------
    Those of :class:`~attn_rtl.hdl.engine.AttentionEngine` (int8), and
    bus_width, addr_width, id_width, kv_buffer_keys, outstanding :
        :class:`~attn_rtl.hdl.engine_dma.EngineDMA`'s and the master's (:data:`MEMORY_DEFAULTS`).

    Ports
    -----
    aclk, aresetn : In(1)
    s_axil_* :
        The AXI4-Lite slave of the registers (as ``attention_engine_axil``).
    m_axi_aw*, m_axi_w*, m_axi_b*, m_axi_ar*, m_axi_r* :
        The AXI4 master.
    irq : Out(1)
        ``CTRL.DONE``.
    """

    def __init__(self, **params):
        self._MustUse__silence = True   # a refused build is never elaborated; a built one may warn again below
        p = mm_params(**params)
        self.params = p
        engine_only = {k: v for k, v in p.items() if k not in MEMORY_DEFAULTS}
        self.engine = AttentionEngine(**engine_only)
        self.engine._MustUse__silence = True
        self.dma = EngineDMA(rows=p["rows"], cols=p["cols"], max_seq_len=p["max_seq_len"], max_heads=p["max_heads"],
                             max_head_dim=p["max_head_dim"], prob_tiles=p["prob_tiles"],
                             addr_width=p["addr_width"], bus_width=p["bus_width"],
                             kv_buffer_keys=p["kv_buffer_keys"], outstanding=p["outstanding"], sparse=p["sparse"],
                             importance_widths=(self.engine.token_importance_unit.width,
                                                self.engine.head_importance_unit.width) if p["importance"] else None,
                             row_flags=p["row_flags"], lists=p["importance"] or p["row_flags"])
        self.registers = mm_register_map(self.engine)
        self.addr_width = max(8, (self.registers[-1].offset + 3).bit_length())
        A, D, I = p["addr_width"], p["bus_width"], p["id_width"]
        members = {"aclk": In(1), "aresetn": In(1), "irq": Out(1), **axil_slave_members(self.addr_width)}
        for ch in ("aw", "ar"):
            members.update({f"m_axi_{ch}id": Out(I), f"m_axi_{ch}addr": Out(A), f"m_axi_{ch}len": Out(8),
                            f"m_axi_{ch}size": Out(3), f"m_axi_{ch}burst": Out(2), f"m_axi_{ch}lock": Out(1),
                            f"m_axi_{ch}cache": Out(4), f"m_axi_{ch}prot": Out(3), f"m_axi_{ch}qos": Out(4),
                            f"m_axi_{ch}valid": Out(1), f"m_axi_{ch}ready": In(1)})
        members.update({"m_axi_wdata": Out(D), "m_axi_wstrb": Out(D // 8), "m_axi_wlast": Out(1),
                        "m_axi_wvalid": Out(1), "m_axi_wready": In(1),
                        "m_axi_bid": In(I), "m_axi_bresp": In(2), "m_axi_bvalid": In(1), "m_axi_bready": Out(1),
                        "m_axi_rid": In(I), "m_axi_rdata": In(D), "m_axi_rresp": In(2), "m_axi_rlast": In(1),
                        "m_axi_rvalid": In(1), "m_axi_rready": Out(1)})
        super().__init__(members)
        self._MustUse__silence = False

    def __getattr__(self, name):
        # Derived figures (memory_bits, start_latency, ...) are the engine's.
        if name.startswith("_") or name in ("engine", "dma"):
            raise AttributeError(name)
        return getattr(self.engine, name)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.aclk), ResetSignal("sync").eq(~self.aresetn)]
        m.submodules.engine = core = self.engine
        m.submodules.dma = dma = self.dma
        wiring.connect(m, dma.q, core.q)
        wiring.connect(m, dma.k, core.k)
        wiring.connect(m, dma.v, core.v)
        wiring.connect(m, core.o, dma.o)
        if self.params["sparse"]:
            wiring.connect(m, core.kv_index, dma.kv_index)
        for name in ("seq_len", "heads", "kv_heads", "query_len", "head_dim"):
            m.d.comb += getattr(dma, name).eq(getattr(core, name))
        m.d.comb += [dma.launch.eq(core.launched), dma.group_size.eq(core.group_size)]
        refusals = Const(0)
        if self.params["importance"]:
            m.d.comb += dma.importance.eq(core.importance)
            wiring.connect(m, core.token_importance, dma.token_importance)
            wiring.connect(m, core.head_importance, dma.head_importance)
        if self.params["row_flags"]:
            wiring.connect(m, core.row_flags, dma.row_flags)
            msb = dma.k_msb_bits
            refusals = ~((msb == 0) | (msb == 1) | (msb == 2) | (msb == 4) | (msb == 8))

        if self.params["importance"] or self.params["row_flags"]:
            # Lists place rows of ungrouped heads only.
            grouped = (core.kv_heads != 0) & (core.kv_heads != core.heads)
            refusals = refusals | ((dma.lists != 0) & grouped)

        busy = core.busy | dma.busy
        refused = Signal()   # a DMA register out of range: no run starts
        status = Cat(Const(0, 1), busy, dma.done, core.error | refused, dma.read_error, dma.write_error)
        read_only = read_only_registers(core, status, features=(Const(1, 1),))
        read_only.update({r.offset: getattr(dma, r.port) for r in self.registers if r.target == "dma" and
                          r.access == "RO"})
        start = serve_registers(m, self, self.registers, {"engine": core, "dma": dma}, read_only)
        take = start & ~busy
        # The DMA takes every start (DONE falls); it moves only once the engine launches.
        m.d.comb += [core.start.eq(take & ~refusals), dma.start.eq(take), self.irq.eq(dma.done)]
        with m.If(take):
            m.d.sync += refused.eq(refusals)

        # --- the AXI4 master: INCR bursts of full bus words, one ID.  Its valids are low in every reset
        # cycle (AXI A3.1.2), the first included, when the DMA's registers still hold their last values.
        live = ~ResetSignal()
        size = Const((self.params["bus_width"] // 8 - 1).bit_length(), 3)
        for ch, port in (("ar", dma.ar), ("aw", dma.aw)):
            m.d.comb += [getattr(self, f"m_axi_{ch}addr").eq(port.payload.addr),
                         getattr(self, f"m_axi_{ch}len").eq(port.payload.len),
                         getattr(self, f"m_axi_{ch}size").eq(size), getattr(self, f"m_axi_{ch}burst").eq(_INCR),
                         getattr(self, f"m_axi_{ch}cache").eq(0b0011),    # normal, bufferable
                         getattr(self, f"m_axi_{ch}valid").eq(port.valid & live),
                         port.ready.eq(getattr(self, f"m_axi_{ch}ready") & live)]
        m.d.comb += [self.m_axi_wdata.eq(dma.w.payload.data), self.m_axi_wstrb.eq(dma.w.payload.strb),
                     self.m_axi_wlast.eq(dma.w.payload.last), self.m_axi_wvalid.eq(dma.w.valid & live),
                     dma.w.ready.eq(self.m_axi_wready & live),
                     dma.b.payload.resp.eq(self.m_axi_bresp), dma.b.valid.eq(self.m_axi_bvalid),
                     self.m_axi_bready.eq(dma.b.ready),
                     dma.r.payload.data.eq(self.m_axi_rdata), dma.r.payload.resp.eq(self.m_axi_rresp),
                     dma.r.payload.last.eq(self.m_axi_rlast), dma.r.valid.eq(self.m_axi_rvalid),
                     self.m_axi_rready.eq(dma.r.ready)]
        # IDs, lock, prot and qos stay 0.
        return m
