"""AXI4-Stream top level of the fused attention engine, for FPGA flows."""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Module, ResetSignal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .engine import PATTERN_REGISTERS, AttentionEngine

__all__ = ["AttentionEngineAxi"]


class AttentionEngineAxi(wiring.Component):
    """:class:`~attn_rtl.hdl.engine.AttentionEngine` with AXI4-Stream ports, ``aclk`` and ``aresetn``.

    The streams are ``s_axis_q``, ``s_axis_k``, ``s_axis_v`` (slaves) and
    ``m_axis_o`` (master), each with ``tdata``, ``tvalid``, ``tready`` and
    ``tlast``.  ``tdata`` packs ``rows`` (Q) or ``cols`` (K, V, O) signed
    ``data_width``-bit lanes, lane 0 in the low bits.  Input ``tlast`` is not
    needed (the engine counts beats) and is ignored; output ``tlast`` marks the
    last beat of every query block.  The beat order is in docs/engine.md.
    ``aresetn`` is synchronous and active low.  The control interface
    (``ctrl_*``) is the engine's: ``ctrl_start`` with the runtime values
    ``ctrl_seq_len``, ``ctrl_heads``, ``ctrl_kv_heads``, ``ctrl_query_len``
    (decoder shapes; 0 stands for ``heads`` and ``seq_len``), ``ctrl_head_dim``,
    ``ctrl_scale_mult``, ``ctrl_scale_shift``; status ``ctrl_busy``, ``ctrl_done``, ``ctrl_error``
    and ``ctrl_cycles``.

    A sparse engine (``sparse=True``) adds the pattern registers
    ``ctrl_pattern``, ``ctrl_window``, ``ctrl_dilation``, ``ctrl_grid_h``,
    ``ctrl_grid_w``, ``ctrl_window_h``, ``ctrl_window_w``,
    ``ctrl_global_count``, ``ctrl_global_tokens`` (docs/sparse.md) and the
    master stream ``m_axis_kv_index``: one beat per key tile the engine will
    compute, in order: ``tdata`` holds ``cols`` key indices (lane ``c`` in bits
    ``[c·b, c·b + b)``, ``b`` = ``ceil(log2 max_seq_len)``), ``tkeep`` one bit per
    lane (lanes ``< count`` are keys; the others are 0 and must be sent as any
    value), ``tlast`` on a query block's last tile.  A DMA engine follows it,
    gathering K and V of exactly those keys (docs/sparse.md).  A ``sliding`` build adds
    ``ctrl_diagonal`` (a diagonal run when set at ``ctrl_start``); its K and V beats and
    ``m_axis_kv_index`` have ``rows + cols`` lanes (``tkeep`` the lanes holding a key), and
    ``m_axis_kv_index_tuser`` holds the block's ``rows`` query indices (``b`` bits each), their
    keep bits and, on top, whether the tile opens its block (docs/sparse.md, *Diagonal runs*).

    An engine built with ``importance=True`` adds ``ctrl_importance`` (an
    importance run when set at ``ctrl_start``) and two master streams, sent
    after the run's O: ``m_axis_token_importance`` (``ceil(L / cols)`` beats of
    ``cols`` unsigned importances, key ``j`` in lane ``j mod cols`` of beat
    ``j div cols``) and ``m_axis_head_importance`` (one beat per head),
    ``tlast`` on each one's final beat (docs/engine.md, *Importance runs*).
    An engine built with ``row_flags=True`` (progressive quantization) adds ``ctrl_threshold`` and the
    master stream ``m_axis_row_flags``: one beat per query block, bit ``r`` of
    ``tdata`` set when row ``r``'s largest probability is below the threshold
    (docs/engine.md, *Progressive quantization*).

    Parameters are those of :class:`~attn_rtl.hdl.engine.AttentionEngine`.
    """

    def __init__(self, **params):
        self.engine = AttentionEngine(**params)
        # Elaborated with this wrapper; only the wrapper warns when left unused.
        self.engine._MustUse__silence = True
        self.params = self.engine.params
        e = self.engine
        members = {"aclk": In(1), "aresetn": In(1)}
        for name in ("q", "k", "v"):
            width = len(getattr(e, name).payload.as_value())
            members.update({f"s_axis_{name}_tdata": In(width), f"s_axis_{name}_tvalid": In(1),
                            f"s_axis_{name}_tready": Out(1), f"s_axis_{name}_tlast": In(1)})
        members.update({"m_axis_o_tdata": Out(len(e.o.payload.data.as_value())), "m_axis_o_tvalid": Out(1),
                        "m_axis_o_tready": In(1), "m_axis_o_tlast": Out(1)})
        for name in self._control_inputs:
            members[f"ctrl_{name}"] = In(len(Value.cast(getattr(e, name))))
        for name in ("busy", "done", "error", "cycles"):
            members[f"ctrl_{name}"] = Out(len(getattr(e, name)))
        if self.params["sparse"]:
            members.update({"m_axis_kv_index_tdata": Out(len(e.kv_index.payload.keys.as_value())),
                            "m_axis_kv_index_tkeep": Out(e.kv_lanes),
                            "m_axis_kv_index_tvalid": Out(1), "m_axis_kv_index_tready": In(1),
                            "m_axis_kv_index_tlast": Out(1)})
            if e.sliding:
                members["m_axis_kv_index_tuser"] = Out(len(self._index_user(e.kv_index.payload)))
        for name, field in self._side_streams:
            port = getattr(e, name)
            members.update({f"m_axis_{name}_tdata": Out(len(Value.cast(getattr(port.payload, field)))),
                            f"m_axis_{name}_tvalid": Out(1), f"m_axis_{name}_tready": In(1),
                            f"m_axis_{name}_tlast": Out(1)})
        super().__init__(members)

    @property
    def _side_streams(self) -> list:
        """``(stream, payload field)`` of the master streams beside O that the build has."""
        p = self.engine.params
        return ([("token_importance", "data"), ("head_importance", "data")] if p["importance"] else []) + \
            ([("row_flags", "flags")] if p["row_flags"] else [])

    @staticmethod
    def _index_user(index) -> Value:
        """A sliding build's ``tuser`` of ``m_axis_kv_index``: the block's queries, their keep bits, and
        whether the tile opens its block."""
        return Cat(index.queries, index.query_keep, index.first)

    @property
    def _control_inputs(self) -> tuple:
        sparse = PATTERN_REGISTERS + (("diagonal",) if self.engine.sliding else ()) \
            if self.engine.params["sparse"] else ()
        importance = ("importance",) if self.engine.params["importance"] else ()
        progressive = ("threshold",) if self.engine.params["row_flags"] else ()
        return ("start", "seq_len", "heads", "kv_heads", "query_len", "head_dim", "scale_mult", "scale_shift",
                *sparse, *importance, *progressive)

    def __getattr__(self, name):
        # Derived figures (memory_bits, array_figures, ...) are the engine's.
        if name.startswith("_") or name == "engine":
            raise AttributeError(name)
        return getattr(self.engine, name)

    def connect_streams(self, m: Module, top) -> None:
        """Drive the engine's streams from ``top``'s AXI4-Stream ports of the same names as this
        wrapper's (``top`` is this wrapper, or another top level that copied them)."""
        e = self.engine
        for name in ("q", "k", "v"):
            port = getattr(e, name)
            m.d.comb += [port.payload.eq(getattr(top, f"s_axis_{name}_tdata")),
                         port.valid.eq(getattr(top, f"s_axis_{name}_tvalid")),
                         getattr(top, f"s_axis_{name}_tready").eq(port.ready)]
        m.d.comb += [top.m_axis_o_tdata.eq(e.o.payload.data), top.m_axis_o_tvalid.eq(e.o.valid),
                     top.m_axis_o_tlast.eq(e.o.payload.last), e.o.ready.eq(top.m_axis_o_tready)]
        if self.params["sparse"]:
            index = e.kv_index.payload
            m.d.comb += [top.m_axis_kv_index_tdata.eq(index.keys),
                         top.m_axis_kv_index_tkeep.eq(index.keep if e.sliding
                                                      else Cat(index.count > c for c in range(self.cols))),
                         top.m_axis_kv_index_tlast.eq(e.kv_index.payload.last),
                         top.m_axis_kv_index_tvalid.eq(e.kv_index.valid),
                         e.kv_index.ready.eq(top.m_axis_kv_index_tready)]
            if e.sliding:
                m.d.comb += top.m_axis_kv_index_tuser.eq(self._index_user(index))
        for name, field in self._side_streams:
            port = getattr(e, name)
            m.d.comb += [getattr(top, f"m_axis_{name}_tdata").eq(getattr(port.payload, field)),
                         getattr(top, f"m_axis_{name}_tlast").eq(port.payload.last),
                         getattr(top, f"m_axis_{name}_tvalid").eq(port.valid),
                         port.ready.eq(getattr(top, f"m_axis_{name}_tready"))]

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.aclk), ResetSignal("sync").eq(~self.aresetn)]
        m.submodules.engine = e = self.engine
        self.connect_streams(m, self)
        for name in self._control_inputs:
            m.d.comb += getattr(e, name).eq(getattr(self, f"ctrl_{name}"))
        for name in ("busy", "done", "error", "cycles"):
            m.d.comb += getattr(self, f"ctrl_{name}").eq(getattr(e, name))
        return m
