"""The fused attention engine: Q·Kᵀ, online softmax and P·V on one systolic array, scores kept on chip."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, ResetSignal, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.numerics import RESCALE_EXP_MAX, Numerics
from attn_rtl.params import boolean, positive_int, reject_unknown

from .block_ram import EBR_DEPTH, registered_ram
from .credit_fifo import check_fifo_memory
from .diagonal_scheduler import DiagonalScheduler, row_tile_fields
from .global_row import GlobalRow
from .head_importance import HeadImportance
from .importance import TokenImportance
from .multiplier import check_multiplier
from .output_accumulator import OutputAccumulator
from .pipeline import kept_copy, kept_register, register
from .register_slice import RegisterSlice
from .reset_tree import ResetTree
from .row_flags import RowFlags
from .softmax import SoftmaxUnit
from .sparse_scheduler import PATTERN_CODES, SparseScheduler, scheduler_params
from .systolic_array import SystolicArray

__all__ = ["AttentionEngine", "engine_params", "ENGINE_DEFAULTS", "PATTERN_REGISTERS"]

#: Runtime registers of a sparse engine's pattern (those of :class:`~attn_rtl.hdl.sparse_scheduler.SparseScheduler`).
PATTERN_REGISTERS = ("pattern", "window", "dilation", "grid_h", "grid_w", "window_h", "window_w",
                     "global_count", "global_tokens")

#: The diagonal scheduler's tile fields a global row reads (builds with ``global_row``).
ROW_TILE_FIELDS = tuple(row_tile_fields(1, 1))

#: Elaboration parameters of :class:`AttentionEngine` and their defaults.
ENGINE_DEFAULTS = {
    "rows": 8,
    "cols": 8,
    "max_seq_len": 1024,
    "max_head_dim": 128,
    "max_heads": 16,
    "prob_tiles": 3,
    "sparse": False,
    "sliding": False,
    "global_row": False,
    "importance": False,
    "row_flags": False,
    "max_dilation": 64,
    "max_globals": 4,
    "multiplier": "generic",
    "fifo_memory": "registers",
    "numerics": None,
}


def q_bank_beats(max_head_dim: int) -> int:
    """Beats in each of the two Q banks: ``max_head_dim`` rounded up to a power of two (the bank is
    then the address's top bit)."""
    return 1 << (max_head_dim - 1).bit_length()


def engine_params(**params) -> dict:
    """Validate :class:`AttentionEngine` parameters; return them complete, defaults filled in."""
    reject_unknown("engine", params, ENGINE_DEFAULTS)
    p = {**ENGINE_DEFAULTS, **params}
    positive_int("rows", p["rows"], at_most=64)
    positive_int("cols", p["cols"], at_most=64)
    positive_int("max_seq_len", p["max_seq_len"], at_most=1 << 24)
    positive_int("max_head_dim", p["max_head_dim"], at_most=4096)
    positive_int("max_heads", p["max_heads"], at_most=1 << 16)
    positive_int("prob_tiles", p["prob_tiles"], at_most=16)
    scheduler_params(rows=p["rows"], cols=p["cols"], max_seq_len=p["max_seq_len"], max_heads=p["max_heads"],
                     max_dilation=p["max_dilation"], max_globals=p["max_globals"], sparse=p["sparse"])
    boolean("sliding", p["sliding"])
    if p["sliding"] and not p["sparse"]:
        raise ValueError("sliding needs a sparse engine (sparse = true): its diagonal runs take the window, "
                         "dilated and grid patterns")
    boolean("global_row", p["global_row"])
    if p["global_row"] and not p["sliding"]:
        raise ValueError("global_row needs a sliding engine (sliding = true): the row takes its keys from "
                         "diagonal tiles")
    boolean("importance", p["importance"])
    boolean("row_flags", p["row_flags"])
    for feature in ("importance", "row_flags"):
        if p[feature] and p["sparse"]:
            raise ValueError(f"{feature} needs a dense engine (sparse = false): its runs take the dense "
                             f"pattern only")
    nm = Numerics.coerce(p["numerics"])
    p["numerics"] = dataclasses.asdict(nm)
    check_multiplier(a_width=nm.prob_width + 1, b_width=nm.data_width, a_signed=True, b_signed=True,
                     target=p["multiplier"])
    check_fifo_memory(p["fifo_memory"])
    if p["fifo_memory"] == "ecp5" and 2 * q_bank_beats(p["max_head_dim"]) > EBR_DEPTH:
        # The Q buffer's two banks of a power of two beats each, in DP16KD of EBR_DEPTH words.
        raise ValueError(f"with fifo_memory 'ecp5' max_head_dim must be at most {EBR_DEPTH // 2}, "
                         f"not {p['max_head_dim']}")
    return p


class AttentionEngine(wiring.Component):
    """Multi-head attention ``O = softmax(Q·Kᵀ·scale)·V`` of docs/numerics.md, fused (FLAT).

    One ``rows``×``cols`` :class:`~attn_rtl.hdl.systolic_array.SystolicArray` computes
    both products.  For every head and every block of ``rows`` queries, the
    block's Q is held on chip (two blocks: the next one loads while the current
    one computes) and the keys go by in tiles of ``cols``: a **score tile**
    (Q·Kᵀ, ``d`` steps, one ``k`` stream beat each) drains into the
    :class:`~attn_rtl.hdl.softmax.SoftmaxUnit`, whose probabilities fill one of
    ``prob_tiles`` probability buffers; a **value tile** (P·V, one step per key
    of the tile and ``v`` beat, once per chunk of ``cols`` output columns) then
    feeds the :class:`~attn_rtl.hdl.output_accumulator.OutputAccumulator`, which rescales,
    adds and, after the last key tile, normalizes and sends the block's output
    rows.  At every tile boundary the array takes a value tile whose
    probabilities are ready, else the next score tile if a probability buffer
    is free, so the softmax of one tile overlaps the array's work on others.
    On-chip memory depends on ``rows``, ``cols``, ``max_head_dim`` and
    ``prob_tiles`` only; ``max_seq_len`` sets counter and accumulator widths.

    Stream order (docs/engine.md): per K/V head, per query block ``qb`` (stacked rows
    ``qb … qb+rows-1``; the query rows themselves when ``kv_heads = heads``):

    * ``q``: ``d`` beats, beat ``k`` = ``Q[qb + r, k]`` for ``r < rows``;
    * ``k``: per key tile (dense: keys ``kt … kt+cols-1``; sparse: the keys named on
      ``kv_index``): ``d`` beats, beat ``k`` = ``K[key_c, k]``;
    * ``v``: per key tile, per column chunk ``cc``: one beat per key ``j`` of the
      tile (``j < L``; sparse: the tile's ``count`` keys), ``V[j, cc + c]``;
    * ``o``: per column chunk, per row ``qb + r < L``: ``O[qb + r, cc + c]``,
      ``last`` on the block's final beat.

    A diagonal run of a ``sliding`` build has streams of its own (docs/sparse.md, *Diagonal runs in the
    engine*): Q per block that has tiles, K and V of ``rows + cols`` lanes per diagonal tile, O of the
    rows each block computes.

    Lanes past ``L`` or ``d`` in an input beat are ignored (any value); in ``o``
    they are 0.

    Parameters
    ----------
    rows, cols : int
        Array shape: the query block and the key tile (and output column chunk).
    max_seq_len, max_head_dim, max_heads : int
        Largest runtime ``seq_len``, ``head_dim`` and ``heads``.
    prob_tiles : int
        Probability buffers (tiles of ``rows``×``cols``): how far score tiles may
        run ahead of value tiles.
    multiplier, fifo_memory : str
        Array options (:class:`~attn_rtl.hdl.systolic_array.SystolicArray`); the softmax unit, the
        output accumulator and the token-importance unit use the same multiplier target, the softmax
        unit the same FIFO memory, and with ``"ecp5"`` the Q buffer is DP16KD block RAM read through
        its output register.
    sliding : bool
        Adds SALO's sliding-window dataflow (needs ``sparse``): the sliding array, the
        :class:`~attn_rtl.hdl.diagonal_scheduler.DiagonalScheduler` and the ``diagonal`` register; K, V and
        ``kv_index`` get ``rows + cols`` lanes.
    global_row : bool
        Adds SALO's global PE row (needs ``sliding``): a diagonal run with one global token computes that
        token's query beside the array (:class:`~attn_rtl.hdl.global_row.GlobalRow`) instead of in
        blocks of its own (docs/sparse.md).
    importance : bool
        Adds importance runs (SpAtten; dense only): :class:`~attn_rtl.hdl.importance.TokenImportance`,
        :class:`~attn_rtl.hdl.head_importance.HeadImportance` and their output streams (docs/engine.md).
    row_flags : bool
        Adds progressive quantization's row flags (:class:`~attn_rtl.hdl.row_flags.RowFlags`; dense only).
    numerics : dict or Numerics
        Number formats (docs/numerics.md); ``data_width`` is Q, K, V and O.

    Attributes
    ----------
    memory_bits : int
        On-chip storage in bits: Q buffer, probability buffers, output accumulators
        (array and FIFOs excluded).
    start_latency : int
        Cycles from ``start`` to the run starting or ``error`` rising.
    reset_latency : int
        Cycles the engine's state lags the ``sync`` reset (its units reset from register copies of it,
        hdl/reset_tree.py); no stream transfers, and no ``start`` is taken, until they have passed.

    Ports
    -----
    start : In(1)
        When not ``busy``, takes the runtime values below (``busy`` rises the next cycle) and
        checks them over ``start_latency`` cycles: the run then starts, or ``error`` rises and
        ``busy`` falls.
    seq_len, heads, head_dim : In
        Runtime sizes, taken at ``start``: keys, query heads, head dimension.
    kv_heads, query_len : In
        Runtime decoder shape (docs/numerics.md, section 10), taken at ``start``; 0 stands for
        ``heads`` and ``seq_len``.  Query head ``h`` reads K/V head ``h // (heads / kv_heads)``
        (``heads`` a multiple of ``kv_heads``); the run's queries are the newest ``query_len`` of
        ``seq_len`` positions (fewer than ``seq_len`` with the dense and causal patterns only).
        Each K/V head's group is one stream of ``query_len·group`` stacked queries, position-major
        (row ``x`` is head ``x mod group`` of the group at query ``⌊x / group⌋``): every K and V beat
        serves the whole group.  Importance runs and row flags take ``kv_heads = heads``; other values set
        ``error``.
    scale_mult, scale_shift : In
        The score multiplier ``M`` and shift ``s`` (docs/numerics.md, section 3), taken at ``start``.
    busy, done, error : Out(1)
        ``done`` rises after the last output beat and stays until the next ``start``;
        ``error`` is set by a ``start`` with a runtime value out of range (no run starts) and
        cleared by the next ``start``.
    launched : Out(1)
        High for one cycle as a checked run starts (``start_latency`` cycles after its ``start``).
    group_size : Out
        The run's query heads per K/V head (``heads / kv_heads``), valid from ``launched`` to the next
        ``start``: a DMA engine stacks each group's queries with it.
    cycles : Out(32)
        Cycles since the run started, ``start_latency`` cycles after its ``start`` (stops at ``done``).
    q, k, v : In(stream.Signature(ArrayLayout(signed(w), rows or cols)))
    o : Out(stream.Signature(StructLayout({"data": ArrayLayout(signed(w), cols), "last": 1})))
    pattern, window, dilation, grid_h, grid_w, window_h, window_w, global_count, global_tokens : In
        Only with ``sparse``: the scheduler's pattern registers (docs/sparse.md), taken at ``start``.
    kv_index : Out(stream.Signature(StructLayout({"keys": ArrayLayout(range(max_seq_len), cols),
        "count": range(cols + 1), "last": 1})))
        Only with ``sparse``: the keys of every key tile, in the order K and V must arrive.  A ``sliding``
        build has ``rows + cols`` lanes and adds ``keep`` (a bit per lane holding a key), ``first`` (the
        tile opens its block), ``queries`` (the block's ``rows`` queries) and ``query_keep``; the last two
        are 0 in runs of gathered tiles.
    diagonal : In(1)
        Only with ``sliding``: the run takes the diagonal tiles of its window, dilated or grid pattern
        (taken at ``start``; another pattern, grouped heads or fewer queries than keys set ``error``).
    importance : In(1)
        Only with ``importance``: the run is an importance run (every block's K tiles come twice).
    token_importance : Out(stream.Signature(StructLayout({"data": ArrayLayout(unsigned(iw), cols), "last": 1})))
    head_importance : Out(stream.Signature(StructLayout({"data": unsigned(hw), "last": 1})))
        Only with ``importance``: sent by importance runs (docs/engine.md).
    threshold : In
        Only with ``row_flags``: the largest-probability threshold (``P`` fraction bits).
    row_flags : Out(stream.Signature(StructLayout({"flags": rows, "last": 1})))
        Only with ``row_flags``: one beat per query block, bit ``r`` for a row below the threshold.
    """

    def __init__(self, **params):
        p = engine_params(**params)
        self.params = p
        self.nm = nm = Numerics(**p["numerics"])
        self.rows, self.cols = R, C = p["rows"], p["cols"]
        self.max_chunks = -(-p["max_head_dim"] // C)
        w = nm.data_width
        self.score_width = nm.score_width(p["max_head_dim"])
        self.value_shape = signed(w)
        self.scheduler = self._scheduler()
        self.scheduler._MustUse__silence = True   # elaborated inside the engine
        sched = self.scheduler.signature.members
        pattern_ports = {name: sched[name] for name in PATTERN_REGISTERS} if p["sparse"] else {}
        self.sliding = S = p["sliding"]
        # K and V lanes: a diagonal tile's rows + cols - 1 keys and its global key.
        self.kv_lanes = R + C if S else C
        if p["sparse"]:
            index_fields = {"keys": data.ArrayLayout(range(p["max_seq_len"]), self.kv_lanes), "count": range(C + 1),
                            "last": 1}
            if S:
                index_fields.update({"keep": self.kv_lanes, "first": 1,
                                     "queries": data.ArrayLayout(range(p["max_seq_len"]), R), "query_keep": R})
            pattern_ports["kv_index"] = Out(stream.Signature(data.StructLayout(index_fields)))
        if S:
            pattern_ports["diagonal"] = In(1)
            self.diagonal_scheduler = self._diagonal_scheduler()
            self.diagonal_scheduler._MustUse__silence = True   # elaborated inside the engine
        importance_ports = {}
        if p["importance"]:
            self.token_importance_unit = self._token_importance()
            self.head_importance_unit = self._head_importance()
            for unit in (self.token_importance_unit, self.head_importance_unit):
                unit._MustUse__silence = True
            importance_ports = {
                "importance": In(1),
                "token_importance": Out(self.token_importance_unit.signature.members["out"].signature),
                "head_importance": Out(self.head_importance_unit.signature.members["out"].signature),
            }
        if p["row_flags"]:
            importance_ports.update({
                "threshold": In(nm.prob_width),
                "row_flags": Out(stream.Signature(data.StructLayout({"flags": R, "last": 1}))),
            })
        super().__init__({
            **pattern_ports,
            **importance_ports,
            "start": In(1),
            "seq_len": In(range(p["max_seq_len"] * 2 + 1)),
            "heads": In(range(p["max_heads"] * 2 + 1)),
            "kv_heads": In(range(p["max_heads"] * 2 + 1)),
            "query_len": In(range(p["max_seq_len"] * 2 + 1)),
            "head_dim": In(range(p["max_head_dim"] * 2 + 1)),
            "scale_mult": In(nm.mult_width),
            "scale_shift": In(range(64)),
            "busy": Out(1), "done": Out(1), "error": Out(1),
            "launched": Out(1), "group_size": Out(range(p["max_heads"] * 2 + 1)),
            "cycles": Out(32),
            "q": In(stream.Signature(data.ArrayLayout(self.value_shape, R))),
            "k": In(stream.Signature(data.ArrayLayout(self.value_shape, self.kv_lanes))),
            "v": In(stream.Signature(data.ArrayLayout(self.value_shape, self.kv_lanes))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(self.value_shape, C), "last": 1}))),
        })
        self._array_params = dict(
            rows=R, cols=C, a_width=nm.prob_width + 1, a_signed=True, b_width=w, b_signed=True,
            max_reduction=max(p["max_head_dim"], C), multiplier=p["multiplier"], fifo_memory=p["fifo_memory"],
            **({"sliding": True} if S else {}))
        # Value tiles are cols steps long: enough result FIFO for them to stream back to back.
        probe = SystolicArray(**self._array_params, result_tiles=1)
        probe._MustUse__silence = True
        held = probe.credit_hold
        self._array_params["result_tiles"] = -(-held // max(R, min(C, p["max_head_dim"])))

    # Each block of the engine is built by one method, used by elaborate and by blocks().
    def _scheduler(self) -> SparseScheduler:
        p = self.params
        return SparseScheduler(rows=self.rows, cols=self.cols, max_seq_len=p["max_seq_len"], max_heads=p["max_heads"],
                               max_dilation=p["max_dilation"], max_globals=p["max_globals"], sparse=p["sparse"])

    def _diagonal_scheduler(self) -> DiagonalScheduler:
        p = self.params
        return DiagonalScheduler(rows=self.rows, cols=self.cols, max_seq_len=p["max_seq_len"], max_heads=p["max_heads"],
                                 max_dilation=p["max_dilation"], max_globals=p["max_globals"], global_row=p["global_row"])

    def _global_row(self) -> GlobalRow:
        p = self.params
        return GlobalRow(rows=self.rows, cols=self.cols, max_head_dim=p["max_head_dim"], max_seq_len=p["max_seq_len"],
                         score_width=self.array_figures["acc_width"], tiles=p["prob_tiles"], multiplier=p["multiplier"],
                         memory=self._ram_kind, numerics=self.nm)

    def _token_importance(self) -> TokenImportance:
        p = self.params
        return TokenImportance(lanes=self.cols, slots=self.rows, max_seq_len=p["max_seq_len"],
                               max_heads=p["max_heads"], multiplier=p["multiplier"], numerics=self.nm)

    def _head_importance(self) -> HeadImportance:
        p = self.params
        return HeadImportance(lanes=self.cols, rows=self.rows, data_width=self.nm.data_width,
                              max_seq_len=p["max_seq_len"], max_head_dim=p["max_head_dim"], max_heads=p["max_heads"])

    def _softmax(self) -> SoftmaxUnit:
        p = self.params
        return SoftmaxUnit(lanes=self.cols, slots=self.rows, score_width=self.score_width,
                           max_seq_len=p["max_seq_len"], multiplier=p["multiplier"], fifo_memory=p["fifo_memory"],
                           numerics=self.nm)

    def _row_flags(self) -> RowFlags:
        return RowFlags(rows=self.rows, max_seq_len=self.params["max_seq_len"], max_heads=self.params["max_heads"],
                        numerics=self.nm)

    def blocks(self) -> dict:
        """Fresh instances of the engine's blocks at the engine's own parameters (name -> component), for
        timing each alone (``attn-rtl bench timing --units``): the array, the softmax unit, the output
        accumulator (with its input slice), the scheduler, the register slice in front of softmax, and the
        importance and row-flag units of builds that have them."""
        array = SystolicArray(**self._array_params)
        softmax, acc = self._softmax(), self._accumulator(array.acc_shape.width)
        found = {"array": array, "softmax": softmax, "output_accumulator": acc, "scheduler": self._scheduler(),
                 "softmax_slice": RegisterSlice(softmax.scores.payload.shape(), target=self.params["multiplier"])}
        if self.sliding:
            found["diagonal_scheduler"] = self._diagonal_scheduler()
        if self.params["global_row"]:
            found["global_row"] = self._global_row()
        if self.params["importance"]:
            found.update(token_importance=self._token_importance(), head_importance=self._head_importance())
        if self.params["row_flags"]:
            found["row_flags"] = self._row_flags()
        return found

    def _accumulator(self, partial_width: int) -> OutputAccumulator:
        return OutputAccumulator(lanes=self.cols, rows=self.rows, chunks=self.max_chunks,
                                 partial_width=partial_width, max_seq_len=self.params["max_seq_len"],
                                 numerics=self.nm, multiplier=self.params["multiplier"],
                                 memory=self._ram_kind)

    @property
    def _ram_kind(self) -> str:
        """The Q buffer's and the accumulator's RAMs: DP16KD with ECP5 FIFOs, else inferred."""
        return "ecp5" if self.params["fifo_memory"] == "ecp5" else "inferred"

    @property
    def array_figures(self) -> dict:
        """The array's derived parameters (operand and accumulator widths, latency, FIFO depth)."""
        probe = SystolicArray(**self._array_params)
        probe._MustUse__silence = True
        return {**self._array_params, "acc_width": probe.acc_shape.width, "latency": probe.latency,
                "result_fifo_depth": probe.result_fifo_depth}

    @property
    def output_acc_width(self) -> int:
        return self.nm.out_acc_width(self.params["max_seq_len"])

    @property
    def _group_steps(self) -> int:
        """Cycles of the check's division ``heads / kv_heads``: one per bit of ``heads``."""
        return len(self.heads)

    @property
    def start_latency(self) -> int:
        return self._group_steps + SparseScheduler.config_latency + 1

    @property
    def reset_latency(self) -> int:
        """Cycles the engine's state lags the ``sync`` reset, both ways: each unit resets from a register
        copy of it (:class:`~attn_rtl.hdl.reset_tree.ResetTree`).  The stream ports neither accept nor
        send while either is high, and a ``start`` is taken only ``reset_latency`` cycles after the
        reset falls."""
        return ResetTree.latency

    @property
    def memory_bits(self) -> int:
        p, nm = self.params, self.nm
        q_bits = 2 * q_bank_beats(p["max_head_dim"]) * self.rows * nm.data_width
        prob_bits = p["prob_tiles"] * self.rows * (self.cols * nm.prob_width + nm.prob_width + 6)
        acc_bits = self.rows * self.max_chunks * self.cols * nm.out_acc_width(p["max_seq_len"])
        importance_bits = 0
        if p["importance"]:
            tok, heads = self.token_importance_unit, self.head_importance_unit
            importance_bits = tok.words * self.cols * tok.width + p["max_heads"] * (heads.width + 1)
        return q_bits + prob_bits + acc_bits + importance_bits

    def _merged_tiles(self, m, sched, dsched, diag_run, taken):
        """A sliding build's tiles: one registered stream of either scheduler's (the run's), each tile in
        the layout the engine queues (returned) and with what ``kv_index`` tells the DMA: the lanes' keys
        and keep bits and, in diagonal runs, the block's queries.  Returns ``(layout, stream)``."""
        p = self.params
        R, C, L, G, U = self.rows, self.cols, p["max_seq_len"], p["max_globals"], self.kv_lanes
        tile = data.StructLayout({"count": range(C + 1), "first": 1, "last": 1, "run_end": 1, "scan": 1,
                                  "mask": data.ArrayLayout(C, R), "emit": R, "global_column": 1,
                                  **(row_tile_fields(R, C) if p["global_row"] else {})})
        merged = data.StructLayout({"tile": tile, "keys": data.ArrayLayout(range(L), U), "keep": U,
                                    "queries": data.ArrayLayout(range(L), R), "query_keep": R})
        out = SimpleNamespace(valid=Signal(name="merged_tiles_valid"), ready=Signal(name="merged_tiles_ready"),
                              payload=Signal(merged, name="merged_tiles", reset_less=True))
        # Lane u of a diagonal tile is key base + s·u (s the dilation, else 1, and 1 in global blocks):
        # s·u per lane is a run constant, each in a register.
        stride = Signal(range(p["max_dilation"] + 1), name="diagonal_stride", reset_less=True)
        m.d.sync += stride.eq(Mux(taken["pattern"] == PATTERN_CODES["dilated"], taken["dilation"], 1))
        lane_offset = []
        for u in range(U - 1):
            offset = Signal(range(u * p["max_dilation"] + 1), name=f"lane_offset_{u}", reset_less=True)
            m.d.sync += offset.eq(stride * u)
            lane_offset.append(offset)
        gathered, diagonal = sched.tiles, dsched.tiles
        free = ~out.valid | out.ready
        m.d.comb += [gathered.ready.eq(~diag_run & free), diagonal.ready.eq(diag_run & free)]
        d, g, o = diagonal.payload, gathered.payload, out.payload
        with m.If(free):
            m.d.sync += out.valid.eq(Mux(diag_run, diagonal.valid, gathered.valid))
            with m.If(diag_run):
                token = 0
                for k in range(G):
                    token = Mux(d.global_key == k, taken["global_tokens"][k], token)
                m.d.sync += [
                    o.tile.count.eq(C), o.tile.first.eq(d.first), o.tile.last.eq(d.last),
                    o.tile.run_end.eq(d.run_end), o.tile.scan.eq(0), o.tile.mask.eq(d.mask), o.tile.emit.eq(d.emit),
                    o.tile.global_column.eq(d.global_column),
                    *([getattr(o.tile, name).eq(getattr(d, name)) for name in ROW_TILE_FIELDS]
                      if p["global_row"] else []),
                    # (A global block's tiles have stride 1.)
                    *[o.keys[u].eq(Mux(d.keep[u], d.base + Mux(d.global_block, u, lane_offset[u]), 0))
                      for u in range(U - 1)],
                    o.keys[U - 1].eq(Mux(d.global_column, token, 0)),
                    o.keep.eq(Cat(d.keep, d.global_column)), o.queries.eq(d.queries), o.query_keep.eq(d.real),
                ]
            with m.Else():
                m.d.sync += [
                    o.tile.count.eq(g.count), o.tile.first.eq(g.first), o.tile.last.eq(g.last),
                    o.tile.run_end.eq(g.run_end), o.tile.scan.eq(g.scan), o.tile.mask.eq(g.mask),
                    o.tile.emit.eq(Cat(*[g.block * R + r < sched.queries for r in range(R)])),
                    o.tile.global_column.eq(0),
                    *([getattr(o.tile, name).eq(0) for name in ROW_TILE_FIELDS] if p["global_row"] else []),
                    *[o.keys[u].eq(g.keys[u] if u < C else 0) for u in range(U)],
                    o.keep.eq(Cat(*[g.count > u for u in range(C)])), o.queries.eq(0), o.query_keep.eq(0),
                ]
        return tile, out

    def elaborate(self, platform):
        m = Module()
        p, nm = self.params, self.nm
        R, C, NB = self.rows, self.cols, p["prob_tiles"]
        d_max, L_max = p["max_head_dim"], p["max_seq_len"]

        # Each unit resets from a flip-flop copy of the reset of its own (hdl/reset_tree.py); the ports
        # accept and send nothing while the copies or the reset they come from are high.  Only the
        # ports are gated: a handshake the logic behind them sees then is undone by the reset a
        # cycle later (gating the accumulator's out.ready put the reset into its credit count, the
        # 4x4 proxy's critical path at 2b82c40).
        tree = ResetTree(target=p["multiplier"])
        live = ~(ResetSignal() | tree.raw)

        def forward(source, port):
            """A unit's output stream to the engine's port of the same signature, held while resetting."""
            m.d.comb += [port.payload.eq(source.payload), port.valid.eq(source.valid & live),
                         source.ready.eq(port.ready)]

        array, softmax = SystolicArray(**self._array_params), self._softmax()
        acc, sched = self._accumulator(array.acc_shape.width), self.scheduler
        for name, unit in (("array", array), ("softmax", softmax), ("accumulator", acc), ("scheduler", sched)):
            m.submodules[name] = tree.unit(name, unit)
        S = self.sliding
        if S:
            # Both schedulers are compared against the same checked start; their configuration checks
            # must settle in the same cycles.
            assert DiagonalScheduler.config_latency == SparseScheduler.config_latency
            dsched = self.diagonal_scheduler
            m.submodules.diagonal_scheduler = tree.unit("diagonal_scheduler", dsched)
        GR = p["global_row"]
        if GR:
            grow = self._global_row()
            m.submodules.global_pe_row = tree.unit("global_pe_row", grow)
        # --- control: start, runtime registers, busy/done/error, cycle counter.
        # A start takes the runtime registers into flip-flops (busy rises), checks them from there
        # over the scheduler's config_latency cycles and one more, then starts the run or raises
        # error (busy falls): no comparison, and no multiplier of the sparse check, lies between a
        # register port and the run's many start-time loads.
        # The port's full width: a register of range(L_max + 1) would wrap an out-of-range value into range.
        seq_len, query_len = Signal.like(self.seq_len), Signal.like(self.query_len)
        heads, kv_heads = Signal.like(self.heads), Signal.like(self.kv_heads)
        head_dim = Signal.like(self.head_dim)
        # The last index of a head's row, for the score tiles' "last step" as an equality (no carry
        # chain in front of the issue logic); a run with head_dim 0 never starts.
        head_dim_last = Signal(range(d_max))
        scale_mult, scale_shift = Signal(nm.mult_width), Signal(range(64))
        taken = {name: Signal.like(getattr(self, name), name=f"taken_{name}")
                 for name in (PATTERN_REGISTERS if p["sparse"] else ()) + (("diagonal",) if S else ())
                 + (("importance",) if p["importance"] else ()) + (("threshold",) if p["row_flags"] else ())}
        # Query heads per K/V head, heads / kv_heads, by restoring division over the check's first
        # cycles (one quotient bit each, from the top): `group` ends as the quotient, `spare` the remainder.
        group, spare = Signal.like(self.heads), Signal.like(self.kv_heads)
        steps = self._group_steps
        m.d.comb += [sched.seq_len.eq(seq_len), sched.query_len.eq(query_len), sched.heads.eq(kv_heads),
                     sched.group.eq(group)]
        if p["sparse"]:
            m.d.comb += [getattr(sched, name).eq(taken[name]) for name in PATTERN_REGISTERS]
        if S:
            m.d.comb += [getattr(dsched, name).eq(taken[name]) for name in PATTERN_REGISTERS]
            m.d.comb += [dsched.seq_len.eq(seq_len), dsched.heads.eq(kv_heads)]
        imp = p["importance"]
        imp_run = Signal()   # this run ranks tokens and heads
        meta_ok = Signal(init=1)             # room to queue a score tile's figures (importance)
        awaiting_sums = Signal(range(3))     # scan passes whose reciprocals have not all left the softmax
        started = Signal()
        take = self.start & ~self.busy
        checking = Signal(steps + sched.config_latency + 1)
        m.d.sync += checking.eq(Cat(take, checking[:-1]))
        with m.If(take):
            m.d.sync += [spare.eq(0), group.eq(self.heads)]
        with m.Elif(checking[:steps].any()):
            trial = Cat(group[-1], spare)
            fits = trial >= kv_heads
            m.d.sync += [spare.eq(Mux(fits, trial - kv_heads, trial)), group.eq(Cat(fits, group[:-1]))]
        own_ok = Signal()
        # Importance runs and row flags take ungrouped heads (fewer queries than keys, a recomputation, they take).
        m.d.sync += own_ok.eq((seq_len >= 1) & (seq_len <= L_max) & (heads >= 1) & (heads <= p["max_heads"])
                              & (kv_heads >= 1) & (kv_heads <= heads) & (spare == 0)
                              & (query_len >= 1) & (query_len <= seq_len)
                              & (head_dim >= 1) & (head_dim <= d_max) & (scale_shift <= nm.max_shift)
                              & (~taken["importance"] | (group == 1) if p["importance"] else 1)
                              & ((group == 1) if p["row_flags"] else 1)
                              # Diagonal runs: one query head per K/V head, every position a query.
                              & (~taken["diagonal"] | ((group == 1) & (query_len == seq_len)) if S else 1))
        checked = checking[-1]
        diag_run = Signal()   # this run takes the diagonal tiles (a sliding build's diagonal run)
        if S:
            config_ok = Mux(taken["diagonal"], dsched.config_ok, sched.config_ok)
            m.d.comb += [started.eq(checked & own_ok & config_ok), sched.start.eq(started & ~taken["diagonal"]),
                         dsched.start.eq(started & taken["diagonal"]),
                         self.launched.eq(started), self.group_size.eq(group)]
            with m.If(started):
                m.d.sync += diag_run.eq(taken["diagonal"])
        else:
            m.d.comb += [started.eq(checked & own_ok & sched.config_ok), sched.start.eq(started),
                         self.launched.eq(started), self.group_size.eq(group)]
        # This run's global query is the global row's (a diagonal run with one global token and a plain
        # query): the diagonal scheduler decides the same from the same registers and sends no global block.
        row_run = Signal()
        if GR:
            m.d.comb += [dsched.global_row.eq(1), grow.start.eq(started), grow.head_dim.eq(head_dim),
                         grow.scale_mult.eq(scale_mult), grow.scale_shift.eq(scale_shift)]
            with m.If(started):
                m.d.sync += row_run.eq(taken["diagonal"] & (taken["global_count"] == 1) & (seq_len > 1))
        if imp:
            m.d.comb += sched.importance.eq(taken["importance"])
            with m.If(started):
                m.d.sync += imp_run.eq(taken["importance"])
        with m.If(take):
            # query_len and kv_heads 0 stand for seq_len and heads (a driver that never writes them).
            m.d.sync += [seq_len.eq(self.seq_len), query_len.eq(Mux(self.query_len == 0, self.seq_len, self.query_len)),
                         heads.eq(self.heads), kv_heads.eq(Mux(self.kv_heads == 0, self.heads, self.kv_heads)),
                         head_dim.eq(self.head_dim), head_dim_last.eq(self.head_dim - 1),
                         scale_mult.eq(self.scale_mult), scale_shift.eq(self.scale_shift),
                         self.busy.eq(1), self.done.eq(0), self.error.eq(0)]
            m.d.sync += [reg.eq(getattr(self, name)) for name, reg in taken.items()]
        with m.If(checked & ~started):
            m.d.sync += [self.busy.eq(0), self.error.eq(1)]
        running = Signal()   # busy, and past the check: the run's state is set up
        with m.If(started):
            m.d.sync += [self.cycles.eq(0), running.eq(1)]
        with m.Elif(running):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        m.d.comb += [softmax.scale_mult.eq(scale_mult), softmax.scale_shift.eq(scale_shift)]

        def walker(name, levels, lasts=None, registered=False):
            """Nested loop counters ``[(name, step, bound), ...]`` (outermost first): returns the
            signals, a dict of "is last" flags (``lasts`` gives a level's flag instead of the
            compare with its bound) and, if ``registered``, each level's look-ahead bound for
            :func:`advance`.  ``registered``: each level's flag is a flip-flop, set at the start and
            as the level moves (its compare looks one step ahead), so no carry chain lies between a
            counter and what its flags decide."""
            lasts = lasts or {}
            sig = {lvl: Signal(range(bound_max + step), name=f"{name}_{lvl}") for lvl, step, _, bound_max in levels}
            last = {lvl: Signal(name=f"{name}_{lvl}_last") for lvl, _, _, _ in levels}
            ahead = {}
            for lvl, step, bound, _ in levels:
                if registered:
                    # The bound less two steps, a register (the bounds hold still through a run, and a
                    # run starts cycles after they are taken): the flag's look-ahead is then one compare,
                    # not an adder and a compare in a row.
                    ahead[lvl] = Signal(signed(len(sig[lvl]) + 2), name=f"{name}_{lvl}_ahead", reset_less=True)
                    m.d.sync += ahead[lvl].eq(bound - 2 * step)
                    with m.If(started):
                        m.d.sync += last[lvl].eq(step >= bound)
                else:
                    m.d.comb += last[lvl].eq(lasts[lvl] if lvl in lasts else sig[lvl] + step >= bound)
            return sig, last, ahead

        def advance(sig, last, levels, done=None, ahead=None):
            """Statements (in an m.If context) that step the innermost counter, carrying outwards;
            ``done`` (if given) rises when the whole nest wraps; ``ahead`` (from a registered
            :func:`walker`) moves the flags with the counters."""
            ahead = ahead or {}
            carry = 1
            for lvl, step, bound, _ in reversed(levels):
                with m.If(carry):
                    with m.If(last[lvl]):
                        m.d.sync += sig[lvl].eq(0)
                        if lvl in ahead:
                            m.d.sync += last[lvl].eq(step >= bound)
                    with m.Else():
                        m.d.sync += sig[lvl].eq(sig[lvl] + step)
                        if lvl in ahead:
                            m.d.sync += last[lvl].eq(sig[lvl] >= ahead[lvl])
                carry = carry & last[lvl]
            if done is not None:
                with m.If(carry):
                    m.d.sync += done.eq(1)

        # Loop nests (outermost first): (name, step, bound, largest bound).
        # Q loads every block in order; score and value tiles follow the scheduler's key tiles
        # (every tile when dense): score tiles take them from `score_tiles`, and each score tile
        # queues what its value tile needs in `value_tiles`.
        # Per K/V head, the blocks of its group's stacked queries (the scheduler's `queries`).
        q_levels = [("h", 1, kv_heads, p["max_heads"]), ("qb", R, sched.queries, sched.max_queries),
                    ("k", 1, head_dim, d_max)]
        s_levels = [("k", 1, head_dim, d_max)]
        # The Q load's flags are flip-flops: its beat counter's carry compares into the block and head
        # counters were the 8x8 engine's critical path at f5cd90a (seed 2, 3.3 ns logic, 9.3 ns routing).
        ql, ql_last, ql_ahead = walker("qload", q_levels, registered=True)
        sc_k_last = Signal(name="score_k_is_last")
        sc, sc_last, _ = walker("score", s_levels, {"k": sc_k_last})
        m.d.comb += sc_k_last.eq(sc["k"] == head_dim_last)
        ql_done, sc_done, vl_done = Signal(), Signal(), Signal()

        def remaining(base, bound, size):
            return Mux(bound - base >= size, size, bound - base)

        tile_layout = sched.tile_layout
        if S:
            tile_layout, tile_in = self._merged_tiles(m, sched, dsched, diag_run, taken)
        else:
            tile_in = sched.tiles
        m.submodules.score_tiles = score_tiles = fifo.SyncFIFOBuffered(width=tile_layout.size, depth=5)
        # Room for a tile as a flip-flop an entry early (the scheduler writes at most one a cycle; the
        # FIFO is an entry deeper for it): its own w_rdy, a level compare, led into the scheduler's
        # packer and its output register's enable (six LUT levels estimated at 84a1671).  A level of at
        # most depth - 1 leaves room: with its output register empty, the FIFO holds at most one entry
        # behind it.
        score_room = Signal(init=1)
        m.d.sync += score_room.eq(score_tiles.level < score_tiles.depth - 1)
        sd = data.View(tile_layout, score_tiles.r_data)
        index_ready = self.kv_index.ready if p["sparse"] else 1
        tile_room = score_room
        if p["sparse"]:
            # A kv_index beat, once offered, stays until taken (AXI4-Stream), though score_room may fall
            # behind it: while it waits nothing else enters the FIFO, whose level can only fall, so the
            # room it was offered with is still there when the DMA takes it.
            index_waiting = Signal(name="kv_index_waiting")
            m.d.sync += index_waiting.eq(self.kv_index.valid & ~self.kv_index.ready)
            tile_room = score_room | index_waiting
        if GR:
            # The row's Q of a head loads before the Q of the head's first block: one such load waits at a time,
            # so the next head's first tile waits while one does (once a head).
            row_pending = Signal(name="row_q_pending")
            row_ahead = Signal(range(score_tiles.depth + 4), name="row_q_blocks_ahead")   # block loads before it
            # (row_pending is only ever set in a row run: four flip-flops, one LUT, in front of the tiles' ready.)
            tile_room = tile_room & ~(row_pending & tile_in.payload.tile.head_first)
        m.d.comb += [score_tiles.w_en.eq(tile_in.valid & index_ready & tile_room),
                     tile_in.ready.eq(tile_room & index_ready)]
        queued_tile = tile_in.payload.tile if S else tile_in.payload   # what score_tiles keeps
        if p["sparse"]:
            m.d.comb += [self.kv_index.valid.eq(tile_in.valid & tile_room & live),
                         self.kv_index.payload.keys.eq(tile_in.payload.keys),
                         self.kv_index.payload.count.eq(queued_tile.count),
                         self.kv_index.payload.last.eq(queued_tile.last)]
        if S:
            m.d.comb += [getattr(self.kv_index.payload, name).eq(getattr(tile_in.payload, name))
                         for name in ("keep", "queries", "query_keep")]
            m.d.comb += self.kv_index.payload.first.eq(queued_tile.first)
        m.d.comb += score_tiles.w_data.eq(queued_tile)
        sd_keys = sd.count

        # keys_last: the tile's last key (count - 1), so its value tile's last step is an equality.
        # Which rows of the block emit and end it: a count of rows, or (sliding builds) a bit per row.
        row_fields = {"emit": R, "end_row": R, "global_column": 1} if S else {"rows": range(R + 1)}
        if GR:
            row_fields["head_end"] = 1   # a row run's O of a head ends with this tile's (the row's follows)
        value_layout = data.StructLayout({"keys_last": range(C), **row_fields, "first": 1, "last": 1,
                                          "run_end": 1})
        m.submodules.value_tiles = value_tiles = fifo.SyncFIFOBuffered(width=value_layout.size, depth=NB + 1)
        vd = data.View(value_layout, value_tiles.r_data)
        v_levels = [("cc", C, head_dim, d_max), ("j", 1, vd.keys_last + 1, C)]
        # The last chunk as a flip-flop, set as the chunk counter moves (its compare with head_dim, a
        # carry chain, fed the value tile's last step and from it the issue logic: the 8x8 engine's
        # critical path at a3202b3, seed 2); the last key an equality with the tile's keys_last.
        cc_last, vl_j_last = Signal(name="value_cc_is_last"), Signal(name="value_j_is_last")
        vl, vl_last, _ = walker("value", v_levels, {"cc": cc_last, "j": vl_j_last})
        m.d.comb += vl_j_last.eq(vl["j"] == vd.keys_last)
        vl_chunk = Signal(range(self.max_chunks))

        with m.If(started):
            for sigs in (ql, sc, vl):
                m.d.sync += [s.eq(0) for s in sigs.values()]
            m.d.sync += [vl_chunk.eq(0), ql_done.eq(0), sc_done.eq(0)]

        # --- Q buffer: two banks of max_head_dim beats; the loader fills one while scores read the other.
        # The bank is the address's top bit (a bank holds a power of two beats), so an address is
        # wiring, not an adder.  Q is read a cycle ahead of the operand stage and its data registered
        # again (the DP16KD's output register with fifo_memory "ecp5"): the RAM's unregistered output
        # drove the array's inputs through the operand multiplexer, 5.8 ns of clock-to-output before
        # any routing (the 8x8 engine's critical path at 18b3e93, seed 1).  Two copies are read, one
        # at the current score step and one at the step after it, both addressed by flip-flops, and
        # a flip-flop picks the one the stage needs: addressed by the next-state step, the issue
        # decision reached the block RAMs' address pins (6a0052e, seed 2: 9.4 ns of routing).
        q_beat_bits = q_bank_beats(d_max).bit_length() - 1
        q_waddr, q_fire, q_ready, q_operand_enable = Signal(q_beat_bits + 1), Signal(), Signal(), Signal()
        q_reads = {}
        for copy in ("same", "next"):
            address = Signal(q_beat_bits + 1, name=f"q_{copy}_address")
            q_reads[copy] = address, data.View(
                data.ArrayLayout(self.value_shape, R), registered_ram(
                    m, f"q_mem_{copy}", kind=self._ram_kind,
                    depth=2 << q_beat_bits, w_addr=q_waddr, w_data=self.q.payload, w_en=q_fire, r_addr=address,
                    r_enable=q_operand_enable))
        q_pick_next = Signal()   # the stage's Q is the "next" copy's: the score step moved on
        q_full = Signal(2)
        q_wbank, q_rbank = Signal(), Signal()
        loads_left = ~ql_done
        if S:
            # A diagonal run loads the Q of each block that has tiles, as its first tile is queued (blocks
            # of global queries only have none, and dilated blocks go residue by residue): blocks queued
            # and not yet loaded.
            blocks_waiting = Signal(range(score_tiles.depth + 3))
            loads_left = Mux(diag_run, blocks_waiting != 0, ~ql_done)
        row_turn = Const(0)
        if GR:
            row_turn = row_pending & (row_ahead == 0)
            row_k = Signal(range(d_max), name="row_q_k")
            m.d.comb += [grow.q.valid.eq(self.q.valid & running & row_turn), grow.q.payload.eq(self.q.payload[0])]
            with m.If(grow.q.valid & grow.q.ready):
                m.d.sync += row_k.eq(Mux(row_k == head_dim_last, 0, row_k + 1))
                with m.If(row_k == head_dim_last):
                    m.d.sync += row_pending.eq(0)
        m.d.comb += [
            q_ready.eq(running & loads_left & ~q_full.bit_select(q_wbank, 1) & ~row_turn),
            self.q.ready.eq((q_ready | (running & row_turn & (grow.q.ready if GR else 0))) & live),
            q_fire.eq(self.q.valid & q_ready),
            q_waddr.eq(Cat(ql["k"][:q_beat_bits], q_wbank)),
        ]
        q_loaded, q_released = Signal(), Signal()
        q_loaded_late = register(m, q_loaded, "q_loaded_late", reset=True)
        q_filled_bank = register(m, q_wbank, "q_filled_bank")
        with m.If(q_fire):
            advance(ql, ql_last, q_levels, ql_done, ahead=ql_ahead)
            with m.If(ql_last["k"]):
                m.d.comb += q_loaded.eq(1)
                m.d.sync += q_wbank.eq(~q_wbank)
        if S:
            announced = score_tiles.w_en & tile_in.payload.tile.first & diag_run
            with m.If(started):
                m.d.sync += blocks_waiting.eq(0)
            with m.Else():
                m.d.sync += blocks_waiting.eq(blocks_waiting + announced - (q_loaded & diag_run))
            if GR:
                with m.If(announced & tile_in.payload.tile.head_first & row_run):
                    m.d.sync += [row_pending.eq(1), row_ahead.eq(blocks_waiting - (q_loaded & diag_run))]
                with m.Elif(q_loaded & diag_run & (row_ahead != 0)):
                    m.d.sync += row_ahead.eq(row_ahead - 1)
                with m.If(started):
                    m.d.sync += [row_pending.eq(0), row_ahead.eq(0), row_k.eq(0)]

        # --- probability buffers: written row by row by the softmax, read column by column by value tiles.
        prob_shape = unsigned(nm.prob_width)
        factor_layout = data.StructLayout({"mant": nm.prob_width, "exp": range(RESCALE_EXP_MAX + 1)})
        # One small memory per query row, a word per buffer (the row's probabilities and its rescale
        # factor), read asynchronously: on ECP5 distributed RAM, compact beside its row's read
        # multiplexer.  As flip-flops (1,536 at 8x8) the buffers spread over the die, and a row's
        # selectors -> its 24-way read multiplexer -> the operand stage was the 8x8 engine's
        # critical path (a3202b3, seed 1: 12.0 ns of routing).  p_complete says which hold a whole tile.
        p_word = data.StructLayout({"p": data.ArrayLayout(prob_shape, C), "factor": factor_layout})
        p_reads = []
        p_complete = Signal(NB)
        p_wptr, p_rptr = Signal(range(NB)), Signal(range(NB))
        p_rptr_next = Signal.like(p_rptr)
        p_reserved = Signal(range(NB + 1))

        def ring_next(ptr):
            return Mux(ptr == NB - 1, 0, ptr + 1)

        probs = softmax.probs
        m.d.comb += probs.ready.eq(1)   # a buffer was reserved when the score tile started
        p_completed = Signal()
        kept = Const(1)
        if imp:
            # What the probabilities of each score tile are for, queued as it starts, read with its
            # last row; the queue's depth bounds the score tiles in flight.
            meta_layout = data.StructLayout({"scan": 1, "word": range(self.token_importance_unit.words),
                                             "fresh": 1, "block_last": 1, "run_end": 1})
            m.submodules.prob_meta = prob_meta = fifo.SyncFIFOBuffered(width=meta_layout.size, depth=8)
            meta_head = data.View(meta_layout, prob_meta.r_data)
            m.d.comb += [prob_meta.r_en.eq(probs.valid & (probs.payload.slot == R - 1)),
                         meta_ok.eq(prob_meta.w_rdy)]
            kept = ~meta_head.scan   # a scan tile's probabilities are not used
        # Rows land in the buffers a cycle after they arrive: each row's memory has its own registered
        # write enable and address (kept_register copies), and the row a register of its own; one
        # enable decoded from the softmax's valid was the 4x4 engine's critical path (12.3 ns of
        # routing to the buffers).  A buffer is complete a cycle later accordingly.
        # (A kept copy of the word per row, 1,200 flip-flops, made one 8x8 engine seed run over 40
        # minutes without finishing at a455140, against 12 before: not kept.)
        load_reads = []   # sliding builds: the weight loader's read ports
        word_in = register(m, Cat(probs.payload.p, probs.payload.scale_mant, probs.payload.scale_exp), "p_word_in")
        for r in range(R):
            m.submodules[f"p_buf_{r}"] = row_mem = memory.Memory(shape=p_word, depth=NB, init=[])
            write, read = row_mem.write_port(), row_mem.read_port(domain="comb")
            m.d.comb += [
                write.en.eq(kept_register(m, probs.valid & kept & (probs.payload.slot == r), f"p_write_{r}",
                                          target=p["multiplier"], reset=True)),
                write.addr.eq(kept_copy(m, p_wptr, f"p_waddr_{r}", target=p["multiplier"])),
                write.data.eq(word_in),
            ]
            p_reads.append(read)
            if S:
                load_reads.append(row_mem.read_port(domain="comb"))
        with m.If(probs.valid & kept):
            with m.If(probs.payload.slot == R - 1):
                m.d.comb += p_completed.eq(1)
                m.d.sync += p_wptr.eq(ring_next(p_wptr))

        # --- tile scheduling onto the array, one step per cycle.
        control_fields = {"value": 1, "first": 1, "last": 1, "chunk": range(self.max_chunks),
                          "chunk_last": 1, "emit_rows": R, "end_row": R, "lanes": range(C + 1), "run_end": 1}
        data_fields = {"factors": data.ArrayLayout(factor_layout, R), "mask": data.ArrayLayout(C, R)}
        tag_layout = data.StructLayout({**control_fields, **data_fields})
        # A tile's tag in FIFOs written and read together.  Its data fields (factors, mask: 240 bits at
        # 8x8) fall through from distributed RAM, read combinationally by a pointer, not loaded into an
        # output register whose enable (on c.ready) reached all of them; a FIFO per row, each with a
        # read pointer of its own next to its few RAM cells (one pointer reaching all 60 of them was
        # a single 8.4 ns net, the 8x8 engine's critical path at f5cd90a and at 84a1671, seed 1).
        # Its control fields (where the rows go, chunk and flags: 30 bits) leave an output register:
        # read through the RAM they reached the accumulator's arrival compares, the 8x8 engine's
        # critical path at c941458 (seed 2, 11.5 ns of routing).
        row_data_layout = data.StructLayout({"factor": factor_layout, "mask": C})
        tag_rows = [fifo.SyncFIFO(width=row_data_layout.size, depth=16) for _ in range(R)]
        for r, row_fifo in enumerate(tag_rows):
            m.submodules[f"tags_row{r}"] = row_fifo
        tags = tag_rows[0]   # its level stands for all of them
        m.submodules.tag_controls = tag_controls = fifo.SyncFIFOBuffered(
            width=data.StructLayout(control_fields).size, depth=16)
        # Room for a tag, as a flip-flop two entries early (at most one tag is written per cycle, a
        # cycle after its issue): the FIFO's own w_rdy put its level compare, and the FIFO's place
        # near the array's output, in the issue decision's loop (the 8x8 engine's critical path at
        # ffebe36, 13.4 ns of routing).
        tags_room = Signal(init=1)
        m.d.sync += tags_room.eq(tags.level < tags.depth - 2)

        in_tile, tile_value = Signal(), Signal()
        # A flip-flop computed from the next-state values of vl_done, p_complete and p_rptr (below):
        # the same flag, one LUT level and a long route fewer in front of the issue decision.
        value_ready = Signal()
        # A block holds its reciprocals in the accumulator from its last score tile to its last
        # value tile, and the accumulator holds two blocks': a third block's scores wait.
        blocks_open = Signal(range(3))
        # In an importance run the softmax opens and closes a row in the scan pass; the computing
        # pass continues it (its maximum is final, so every rescale is the identity).
        sm_first = sd.first & (sd.scan | ~imp_run)
        sm_last = sd.last & (sd.scan | ~imp_run)
        opens_block = sm_first
        # The computing pass needs the reciprocals of its scan pass for the importance: its first
        # tile waits until they have left the softmax.
        # A score tile leaves `score_tiles` the cycle after its first step (`score_popping`), by a
        # flip-flop: read by the issue decision, the FIFO's read enable was the 8x8 engine's critical
        # path at 3f439bd (seed 1, 11.9 ns of routing).  Its head is stale in that cycle, so no score
        # tile starts then (a bubble only between tiles of one step, head_dim 1).
        score_popping = Signal()
        # Room for a probability buffer and for a block, and the scan pass still awaited, as
        # flip-flops of the counters a cycle late: no score tile starts in the cycle after one
        # starts (score_popping), and the counters take a start into account in that cycle, so a
        # flag a cycle late has seen every start before the next one can use it; a buffer or a block
        # freed is seen a cycle later.  (Compared in the issue decision, these three carry
        # compares put it 11 LUT levels deep.)
        # Recomputed every cycle, and no tile starts within cycles of a reset: reset-less.
        p_room, blocks_room, scan_awaited = (Signal(name=name, reset_less=True)
                                             for name in ("p_room", "blocks_room", "scan_awaited"))
        m.d.sync += [p_room.eq(p_reserved < NB), blocks_room.eq(blocks_open < 2),
                     scan_awaited.eq(awaiting_sums != 0)]
        score_ready = (~sc_done & score_tiles.r_rdy & ~score_popping & q_full.bit_select(q_rbank, 1)
                       & (sd.scan | p_room) & meta_ok
                       & (~opens_block | blocks_room)
                       & ~(imp_run & sd.first & ~sd.scan & scan_awaited)
                       & ((grow.loaded | ~row_run) if GR else 1))
        # Which operand the next step takes, Mux(in_tile, tile_value, value_ready), kept as a flip-flop
        # from the next-state values (below): it selects 64 operand bits and every tag field.
        sel_value, sel_next = Signal(), Signal()
        sel_ok = in_tile | ((value_ready | score_ready) & tags_room)
        st_valid, st_value, st_last = Signal(), Signal(reset_less=True), Signal(reset_less=True)
        st_b = Signal(data.ArrayLayout(self.value_shape, self.kv_lanes), reset_less=True)   # qualified by st_valid
        st_p = Signal(data.ArrayLayout(prob_shape, R), reset_less=True)
        stage_free = ~st_valid | array.a.ready
        # Diagonal runs: a value tile's last column chunk is padded to cols stationary steps, which take
        # no v beat (v_pad: the step's head-dimension column is past head_dim).
        v_pad = Signal(name="value_step_padding") if S else Const(0)
        operand_ok = Mux(sel_value, self.v.valid | v_pad if S else self.v.valid, self.k.valid)
        issue = Signal()
        m.d.comb += issue.eq(running & sel_ok & operand_ok & stage_free)
        issue_value, issue_score = issue & sel_value, issue & ~sel_value
        step_last = Mux(sel_value, vl_last["j"], sc_last["k"])

        # The operand stage holds while the array refuses a tile's last step.  One enable for its
        # ~200 flip-flops, and one K/V select for its 64 operand bits, spanned the die (19.3 and
        # 12.5 ns of routing on the 8x8 engine): each column and each row of the stage has its own
        # copies of the select, of st_valid and st_last, and of the array's accepts_end
        # (kept_register flip-flops from the same next-state values), so its enable is one LUT
        # next to it.
        st_valid_next, st_last_next, st_value_next = Signal(), Signal(), Signal()
        m.d.comb += [st_valid_next.eq(Mux(stage_free, issue, st_valid)),
                     st_last_next.eq(Mux(stage_free, step_last, st_last)),
                     st_value_next.eq(Mux(stage_free, sel_value, st_value))]

        def stage_copy(name, accepts_end):
            valid = kept_register(m, st_valid_next, f"st_valid_{name}", target=p["multiplier"], reset=True)
            last = kept_register(m, st_last_next, f"st_last_{name}", target=p["multiplier"])
            return ~valid | ~last | accepts_end

        if S:
            # The sliding array also refuses steps that do not end a tile (a weight swap before its
            # weights are in) and tile ends it holds for other reasons (after a stationary tile), which
            # accepts_end does not say: the stage's registers hold on stage_free itself.
            column_free, row_free = [stage_free] * self.kv_lanes, [stage_free] * R
            column_sel = [kept_register(m, sel_next, f"sel_value_c{c}", target=p["multiplier"], reset=True)
                          for c in range(self.kv_lanes)]
        else:
            column_free = [stage_copy(f"c{c}", array.accepts_end[c]) for c in range(C)]
            column_sel = [kept_register(m, sel_next, f"sel_value_c{c}", target=p["multiplier"], reset=True)
                          for c in range(C)]
            row_free = [stage_copy(f"r{r}", array.accepts_end[C + r]) for r in range(R)]
        row_value = [kept_register(m, st_value_next, f"st_value_r{r}", target=p["multiplier"]) for r in range(R)]

        # The operand stage (and the Q read) load whenever the stage is free, not only on issue: a
        # step not issued leaves st_valid low and its data unused, and the wide enables hang on
        # stage_free (flip-flops and the array's ready) instead of on the issue decision.
        # Each row reads its probability through its own copy of the selectors (p_rptr, j), made from
        # their next-state values: one copy fanned out to every probability bit of the buffers was
        # the engine's ECP5 critical path (13.6 ns of routing).  Copies are kept_register flip-flops,
        # which synthesis does not merge back on ECP5.  (Copies per group of four probability bits, 160
        # flip-flops fed from j's next state, made that next state the 8x8 engine's critical path at
        # 58e1aea: 17.3 ns of routing, 48.6 MHz.)
        # The counters' successors are registers of their own, so that no carry chain lies between
        # the issue decision and the selector copies and Q's read address (sc["k"] + 1 did:
        # 6a0052e, seed 2).
        vl_j_succ, sc_k_succ = Signal.like(vl["j"], name="value_j_succ"), Signal.like(sc["k"], name="score_k_succ")
        with m.If(started):
            m.d.sync += [vl_j_succ.eq(1), sc_k_succ.eq(1)]
        with m.If(issue_value):
            m.d.sync += vl_j_succ.eq(Mux(vl_last["j"], 1, vl_j_succ + 1))
        with m.If(issue_score):
            m.d.sync += sc_k_succ.eq(Mux(sc_last["k"], 1, sc_k_succ + 1))
        j_next = Signal.like(vl["j"], name="value_j_next")   # below, with the buffers' next state
        selectors = Cat(p_rptr_next, j_next)
        row_rptr, row_j = [], []
        for r in range(R):
            copy = Cat(*[kept_register(m, selectors[k], f"p_select_{r}_{k}", target=p["multiplier"], reset=True)
                         for k in range(len(selectors))])
            row_rptr.append(copy[:len(p_rptr)])
            row_j.append(copy[len(p_rptr):])
        m.d.comb += [
            self.k.ready.eq(issue_score & live), self.v.ready.eq((issue_value & ~v_pad if S else issue_value) & live),
            q_operand_enable.eq(stage_free),
        ]
        m.d.sync += [st_valid.eq(st_valid_next), st_value.eq(st_value_next), st_last.eq(st_last_next)]
        for c in range(self.kv_lanes):
            with m.If(column_free[c]):
                m.d.sync += st_b[c].eq(Mux(column_sel[c], self.v.payload[c], self.k.payload[c]))
        for r in range(R):
            m.d.comb += p_reads[r].addr.eq(row_rptr[r])
            with m.If(row_free[r]):
                m.d.sync += st_p[r].eq(p_reads[r].data.p[row_j[r]])
        with m.If(issue):
            m.d.sync += [in_tile.eq(~step_last), tile_value.eq(sel_value)]

        if GR:
            # The row takes every step of a row run as it issues (a value tile's first step opens its chunks).
            first_step = ~in_tile & (~sel_value | (vl_chunk == 0))
            m.d.comb += [
                grow.step_valid.eq(issue & row_run),
                grow.step.value.eq(sel_value), grow.step.first.eq(first_step),
                grow.step.last.eq(Mux(sel_value, vl_last["j"] & vl_last["cc"], sc_last["k"])),
                grow.step.pad.eq(v_pad), grow.step.lanes.eq(Mux(sel_value, self.v.payload, self.k.payload)),
                *[getattr(grow.step, name).eq(getattr(sd, name)) for name in (*ROW_TILE_FIELDS, "run_end")],
            ]

        # Tag of every tile, written with its first step.
        tag = Signal(tag_layout)
        run_end = (Mux(row_run, vd.head_end, vd.run_end) if GR else vd.run_end) & vl_last["cc"]
        m.d.comb += [
            tag.value.eq(sel_value),
            tag.first.eq(Mux(sel_value, vd.first, sm_first)),
            tag.last.eq(Mux(sel_value, vd.last, sm_last)),
            tag.chunk.eq(vl_chunk), tag.chunk_last.eq(vl_last["cc"]),
            # Which rows emit and which ends the block, as a bit per row: the result router picks its
            # row's bit instead of comparing the row with the count (a carry chain after the tag FIFO's
            # distributed RAM: the 8x8 engine's critical path at 3f439bd, seed 2).
            tag.emit_rows.eq(vd.emit if S else Cat(*[vd.rows > r for r in range(R)])),
            tag.end_row.eq(vd.end_row if S else Cat(*[vd.rows == r + 1 for r in range(R)])),
            tag.lanes.eq(remaining(vl["cc"], head_dim, C)),
            tag.run_end.eq(run_end),
            # Each row's factor is selected by that row's copy of p_rptr (p_rptr drove 557 LUTs).
            *[tag.factors[r].eq(p_reads[r].data.factor) for r in range(R)],
            tag.mask.eq(sd.mask),
        ]
        # The tag is written a cycle after its issue (the array's latency is far longer): the FIFO sits
        # by the array's output, a long way from the issue logic.
        issued = register(m, tag, "tag_issued")
        issued_valid = register(m, issue & ~in_tile, "tag_issued_valid", reset=True)
        m.d.comb += [tag_controls.w_data.eq(Cat(*[issued[name] for name in control_fields])),
                     tag_controls.w_en.eq(issued_valid)]
        for r, row_fifo in enumerate(tag_rows):
            m.d.comb += [row_fifo.w_data.eq(Cat(issued.factors[r], issued.mask[r])), row_fifo.w_en.eq(issued_valid)]

        score_starts = issue_score & ~in_tile
        value_frees = issue_value & vl_last["j"] & vl_last["cc"]
        m.d.sync += [p_reserved.eq(p_reserved + (score_starts & ~sd.scan) - value_frees),
                     blocks_open.eq(blocks_open + (score_starts & opens_block) - acc.block_done)]
        p_completed_late = register(m, p_completed, "p_completed_late", reset=True)
        p_wptr_late = register(m, p_wptr, "p_wptr_late")

        if S:
            # The weight loader's state (below): a value tile starts only once its weights have left its
            # buffer (a tile of one step frees the buffer as it issues), seen from the flip-flops a cycle
            # after the last column is read: from the loader's read itself it was the 4x4 proxy's critical
            # path (the loader's pointer -> its buffer's state -> the issue's select copies, 11.4 ns).
            loading = Signal(range(NB), name="weights_buffer")
            loaded = Signal(NB, name="weights_loaded")   # read out of the buffer, which is not yet freed

        def after(issued):
            """The buffer state, the operand select and the selectors' key a step issued (``issued``
            1) or not (0) leaves behind, from flip-flops alone, as the bits of p_rptr_next,
            p_complete_next, vl_done_next, value_ready_next, sel_next and j_next."""
            frees = Const(issued) & sel_value & vl_last["j"] & vl_last["cc"]
            rptr = Mux(frees, ring_next(p_rptr), p_rptr)[:len(p_rptr)]
            complete = []
            for b in range(NB):
                landed = p_completed_late & (p_wptr_late == b)
                complete.append(Mux(landed | (frees & (p_rptr == b)), landed, p_complete[b]))
            complete = Cat(*complete)
            done = Mux(started, 0, vl_done | (frees & vd.run_end))
            ready = ~done & complete.bit_select(rptr, 1)
            if S:
                weights = Cat(*[loaded[b] & ~(frees & (p_rptr == b)) for b in range(NB)])
                ready = ready & (weights.bit_select(rptr, 1) | ~diag_run)
            if GR:
                # A value tile starts only with the row's probabilities for it (its later chunks need nothing
                # of the row); value_room is a flip-flop's view: a value tile starting now has not left it.
                starts_value = Const(issued) & sel_value & ~in_tile & (vl_chunk == 0)
                next_opens = Mux(Const(issued) & sel_value & vl_last["j"], vl_last["cc"], vl_chunk == 0)
                ready = ready & ((grow.value_room & ~starts_value) | ~next_opens | ~row_run)
            select = Mux(~step_last if issued else in_tile, sel_value if issued else tile_value, ready)
            key = Mux(started, 0, Mux(Const(issued) & sel_value, Mux(vl_last["j"], 0, vl_j_succ), vl["j"]))
            return Cat(rptr, complete, done[0], ready[0], select[0], key[:len(j_next)])

        # Both outcomes of the issue decision made ahead of it and chosen by it: the decision is then
        # one multiplexer in front of these registers and the selector copies, not the start of the
        # buffers' next-state logic (st_last -> issue -> value_frees -> p_complete -> value_ready ->
        # sel_value, nine LUT levels estimated at 84a1671).
        chosen = Signal(len(after(0)))
        m.d.comb += chosen.eq(Mux(issue, after(1), after(0)))
        p_complete_next, vl_done_next, value_ready_next = Signal.like(p_complete), Signal(), Signal()
        m.d.comb += Cat(p_rptr_next, p_complete_next, vl_done_next, value_ready_next, sel_next, j_next).eq(chosen)
        m.d.sync += [p_rptr.eq(p_rptr_next), p_complete.eq(p_complete_next), vl_done.eq(vl_done_next),
                     value_ready.eq(value_ready_next), sel_value.eq(sel_next)]

        # A score tile queues its value tile's figures as it starts, and leaves the scheduler's
        # queue with its last step.
        queued = Signal(value_layout)
        if S:
            if GR:
                m.d.comb += queued.head_end.eq(sd.head_last)
            m.d.comb += [queued.emit.eq(sd.emit), queued.global_column.eq(sd.global_column),
                         queued.end_row.eq(Cat(*[sd.emit[r] & ~sd.emit[r + 1:].any() for r in range(R)]))]
        else:
            m.d.comb += queued.rows.eq(remaining(sd.block * R, sched.queries, R))
        m.d.comb += [
            queued.keys_last.eq(sd_keys - 1),
            queued.first.eq(sd.first), queued.last.eq(sd.last), queued.run_end.eq(sd.run_end),
            value_tiles.w_data.eq(queued),
            value_tiles.w_en.eq(score_starts & ~sd.scan),
            score_tiles.r_en.eq(score_popping),
            value_tiles.r_en.eq(value_frees),
        ]
        # What a score tile's last step needs of its head, kept from its first step (the head has
        # left the FIFO by then unless the first step is the last).
        tile_ends = Signal(2, reset_less=True)
        starting_ends = Cat(sd.run_end, sd.last & ~sd.scan)
        m.d.sync += score_popping.eq(score_starts)
        with m.If(score_starts):
            m.d.sync += tile_ends.eq(starting_ends)
        tile_end_flags = Mux(in_tile, tile_ends, starting_ends)
        ends_run, ends_block = tile_end_flags[0], tile_end_flags[1]
        q_step_after = Mux(started, Cat(Const(0, q_beat_bits), q_rbank),
                           Mux(sc_last["k"], Cat(Const(0, q_beat_bits), q_rbank ^ ends_block),
                               Cat(sc_k_succ[:q_beat_bits], q_rbank)))
        m.d.comb += [q_reads["same"][0].eq(Cat(sc["k"][:q_beat_bits], q_rbank)), q_reads["next"][0].eq(q_step_after)]
        q_moved = register(m, issue_score | started, "q_moved", reset=True)
        with m.If(stage_free):
            m.d.sync += q_pick_next.eq(q_moved)
        with m.If(issue_score):
            advance(sc, sc_last, s_levels)
            with m.If(sc_last["k"] & ends_run):
                m.d.sync += sc_done.eq(1)
            with m.If(sc_last["k"] & ends_block):
                m.d.comb += q_released.eq(1)
                m.d.sync += q_rbank.eq(~q_rbank)
        one_chunk = head_dim <= C
        with m.If(started):
            m.d.sync += cc_last.eq(one_chunk)
        with m.If(issue_value):
            advance(vl, vl_last, v_levels)
            with m.If(vl_last["j"]):
                m.d.sync += [vl_chunk.eq(Mux(vl_last["cc"], 0, vl_chunk + 1)),
                             cc_last.eq(Mux(vl_last["cc"], one_chunk, vl["cc"] + 2 * C >= head_dim))]
        for b in range(2):
            # A bank counts as full a cycle after its last beat is written: Q is read a cycle ahead
            # of its step, so a step issued as the bank fills (head_dim 1: its only beat) would read
            # the word being written (the old one).
            landed = q_loaded_late & (q_filled_bank == b)
            with m.If(landed | (q_released & (q_rbank == b))):
                m.d.sync += q_full[b].eq(landed)

        if imp:
            tile_word, block_done_once = Signal.like(meta_head.word), Signal()
            meta = Signal(meta_layout)
            m.d.comb += [
                meta.scan.eq(sd.scan), meta.word.eq(tile_word), meta.fresh.eq(~block_done_once),
                meta.block_last.eq(sd.last), meta.run_end.eq(sd.run_end),
                prob_meta.w_data.eq(meta), prob_meta.w_en.eq(score_starts),
            ]
            with m.If(started):
                m.d.sync += [tile_word.eq(0), block_done_once.eq(0), awaiting_sums.eq(0)]
            with m.Else():
                with m.If(score_starts):
                    m.d.sync += tile_word.eq(Mux(sd.last, 0, tile_word + 1))
                    with m.If(sd.last & ~sd.scan):
                        m.d.sync += block_done_once.eq(1)
                sums_taken = softmax.sums.valid & softmax.sums.ready
                m.d.sync += awaiting_sums.eq(awaiting_sums + (score_starts & sd.scan & sd.last)
                                             - (sums_taken & imp_run & (softmax.sums.payload.slot == R - 1)))

            tok = self.token_importance_unit
            m.submodules.token_importance = tree.unit("token_importance", tok)
            m.d.comb += [
                tok.start.eq(started), tok.seq_len.eq(seq_len),
                tok.probs.valid.eq(probs.valid & kept & imp_run),
                tok.probs.payload.p.eq(probs.payload.p), tok.probs.payload.slot.eq(probs.payload.slot),
                tok.probs.payload.word.eq(meta_head.word), tok.probs.payload.fresh.eq(meta_head.fresh),
                tok.probs.payload.block_last.eq(meta_head.block_last),
                tok.probs.payload.run_end.eq(meta_head.run_end),
                tok.recips.valid.eq(softmax.sums.valid & softmax.sums.ready & imp_run),
                tok.recips.payload.slot.eq(softmax.sums.payload.slot),
                tok.recips.payload.recip.eq(softmax.sums.payload.recip),
                tok.recips.payload.recip_exp.eq(softmax.sums.payload.recip_exp),
            ]
            forward(tok.out, self.token_importance)

        # Array operands: a is Q (signed) for score tiles, the probability column (unsigned) for value tiles.
        for r in range(R):
            q_operand = Mux(q_pick_next, q_reads["next"][1][r], q_reads["same"][1][r])
            m.d.comb += array.a.payload.data[r].eq(Mux(row_value[r], st_p[r], q_operand))
        m.d.comb += [
            array.a.payload.last.eq(st_last), array.a.valid.eq(st_valid),
            array.b.payload.eq(st_b), array.b.valid.eq(st_valid),
        ]

        # --- sliding builds: the step flags (diagonal score steps; stationary value steps, the first of a
        # value tile swapping its weights in; the global column), the padding of a value tile's last
        # chunk, and the weight loader: each probability buffer, once complete, goes to the array's p
        # column by column (the value tile's load step waits for it in the array).
        if S:
            # A score tile's global column, kept from its first step (its head leaves the queue then).
            score_global = Signal(name="score_global_column", reset_less=True)
            with m.If(score_starts):
                m.d.sync += score_global.eq(sd.global_column)
            # The step's flags as the array takes them, each a flip-flop of the stage (the run's mode folded
            # in ahead): they feed the array's admission, and from it the issue decision (the 4x4 proxy's
            # critical path with the mode, 87.7 MHz, began at the mode's register).
            flags = {name: Signal(name=f"st_{name}", reset_less=True)
                     for name in ("diagonal", "stationary", "load", "global_column")}
            m.d.sync += [flags["diagonal"].eq(diag_run & ~st_value_next),
                         flags["stationary"].eq(diag_run & st_value_next)]
            with m.If(stage_free):
                m.d.sync += [flags["load"].eq(diag_run & sel_value & ~in_tile & (vl_chunk == 0)),
                             flags["global_column"].eq(diag_run & Mux(sel_value, vd.global_column,
                                                                      Mux(in_tile, score_global, sd.global_column)))]
            m.d.comb += [array.sliding.eq(diag_run), *[getattr(array.a.payload, name).eq(flag)
                                                       for name, flag in flags.items()]]
            # Padding: the step's head-dimension column (cc + j, consecutive in diagonal runs) past head_dim.
            column = Signal(range(self.max_chunks * C + 1), name="value_column")
            with m.If(started):
                m.d.sync += [column.eq(0), v_pad.eq(0)]
            with m.Elif(issue_value):
                following = Mux(vl_last["j"] & vl_last["cc"], 0, column + 1)
                m.d.sync += [column.eq(following), v_pad.eq(diag_run & (following >= head_dim))]
            # The weight loader, in ring order from the buffer the run's first value tile reads.
            column_of = Signal(range(C), name="weights_column")
            out_valid = Signal(name="weights_valid")
            out = Signal(array.p.payload.shape(), name="weights", reset_less=True)
            m.d.comb += [array.p.valid.eq(out_valid), array.p.payload.eq(out)]
            m.d.comb += [read.addr.eq(loading) for read in load_reads]
            can_load = diag_run & p_complete.bit_select(loading, 1) & ~loaded.bit_select(loading, 1)
            with m.If(value_frees):
                m.d.sync += loaded.bit_select(p_rptr, 1).eq(0)
            with m.If(~out_valid | array.p.ready):
                m.d.sync += [out_valid.eq(can_load), *[out[r].eq(load_reads[r].data.p[column_of]) for r in range(R)]]
                with m.If(can_load):
                    m.d.sync += column_of.eq(Mux(column_of == C - 1, 0, column_of + 1))
                    with m.If(column_of == C - 1):
                        m.d.sync += [loading.eq(Mux(loading == NB - 1, 0, loading + 1)),
                                     loaded.bit_select(loading, 1).eq(1)]
            with m.If(started):
                m.d.sync += [loading.eq(p_rptr), column_of.eq(0), loaded.eq(0)]

        # --- results: the head tag says where each tile's rows go.
        head = data.View(data.StructLayout(control_fields), tag_controls.r_data)
        tag_ready = tag_controls.r_rdy   # written with tags, a cycle later readable: tags hold it too
        row = Signal(range(R))
        head_row = data.View(row_data_layout,
                             Cat(*[row_fifo.r_data for row_fifo in tag_rows]).word_select(row, row_data_layout.size))
        c = array.c
        tile_out = c.valid & c.ready & c.payload.last   # a tile's last row leaves: the tag FIFOs move on
        # A register slice in front of each consumer: c.ready is then two flip-flops and the tag, and
        # what the tag FIFO's distributed RAM gives (the row's factor and mask) lands in flip-flops by
        # the array's output (read straight into the accumulator's own input slices, its read address
        # was the 8x8 engine's critical path at f5cd90a, seed 1: one 8.4 ns net, 12.0 ns of routing).
        softmax_slice = RegisterSlice(softmax.scores.payload.shape(), target=p["multiplier"])
        accumulator_slice = RegisterSlice(acc.partials.payload.shape(), target=p["multiplier"])
        m.submodules.softmax_slice = tree.unit("softmax_slice", softmax_slice)
        m.submodules.accumulator_slice = tree.unit("accumulator_slice", accumulator_slice)
        wiring.connect(m, softmax_slice.o, softmax.scores)
        wiring.connect(m, accumulator_slice.o, acc.partials)
        to_softmax, to_acc = softmax_slice.i, accumulator_slice.i
        m.d.comb += [
            to_softmax.valid.eq(c.valid & tag_ready & ~head.value),
            to_acc.valid.eq(c.valid & tag_ready & head.value),
            c.ready.eq(tag_ready & Mux(head.value, to_acc.ready, to_softmax.ready)),
            *[row_fifo.r_en.eq(tile_out) for row_fifo in tag_rows], tag_controls.r_en.eq(tile_out),
            to_softmax.payload.slot.eq(row),
            to_softmax.payload.first.eq(head.first), to_softmax.payload.last.eq(head.last),
            to_acc.payload.row.eq(row), to_acc.payload.chunk.eq(head.chunk),
            to_acc.payload.first.eq(head.first), to_acc.payload.last.eq(head.last),
            to_acc.payload.chunk_last.eq(head.chunk_last),
            to_acc.payload.scale_mant.eq(head_row.factor.mant),
            to_acc.payload.scale_exp.eq(head_row.factor.exp),
            to_acc.payload.lanes_valid.eq(head.lanes),
            to_acc.payload.emit.eq(head.emit_rows.bit_select(row, 1)),
            to_acc.payload.block_end.eq(head.chunk_last & head.end_row.bit_select(row, 1)),
            to_acc.payload.run_end.eq(head.run_end & head.end_row.bit_select(row, 1)),
        ]
        for lane in range(C):
            m.d.comb += [
                to_softmax.payload.score[lane].eq(c.payload.data[lane]),
                to_softmax.payload.mask[lane].eq(head_row.mask[lane]),
                to_acc.payload.data[lane].eq(c.payload.data[lane]),
            ]
        with m.If(c.valid & c.ready):
            m.d.sync += row.eq(Mux(c.payload.last, 0, row + 1))

        # --- row sums -> reciprocals; outputs.
        room = Const(1)
        if p["row_flags"]:
            flags_unit = self._row_flags()
            m.submodules.row_flags = tree.unit("row_flags", flags_unit)
            room = flags_unit.room
            m.d.comb += [
                flags_unit.start.eq(started), flags_unit.query_len.eq(query_len),
                flags_unit.heads.eq(kv_heads), flags_unit.threshold.eq(taken["threshold"]),
                flags_unit.sums.valid.eq(softmax.sums.valid & softmax.sums.ready),
                flags_unit.sums.payload.slot.eq(softmax.sums.payload.slot),
                flags_unit.sums.payload.recip.eq(softmax.sums.payload.recip),
                flags_unit.sums.payload.recip_exp.eq(softmax.sums.payload.recip_exp),
            ]
            forward(flags_unit.out, self.row_flags)
        m.d.comb += [
            acc.recips.valid.eq(softmax.sums.valid & room),
            acc.recips.payload.recip.eq(softmax.sums.payload.recip),
            acc.recips.payload.recip_exp.eq(softmax.sums.payload.recip_exp),
            softmax.sums.ready.eq(acc.recips.ready & room),
        ]
        if GR:
            # A row run's O: per head the blocks' (the accumulator's, run_end flagging the head's last), then
            # the global query's (the row's, last on its final beat).
            o_from_row = Signal(name="o_from_row")
            main_head_end = Signal(name="o_main_head_end")
            m.d.comb += main_head_end.eq(acc.out.valid & acc.out.ready & acc.out.payload.run_end)
            row_beat = grow.o.valid & grow.o.ready
            with m.If(started):
                m.d.sync += o_from_row.eq(0)
            with m.Elif(main_head_end & row_run):
                m.d.sync += o_from_row.eq(1)
            with m.Elif(row_beat & grow.o.payload.last):
                m.d.sync += o_from_row.eq(0)
            m.d.comb += [
                self.o.valid.eq(Mux(o_from_row, grow.o.valid, acc.out.valid) & live),
                self.o.payload.data.eq(Mux(o_from_row, grow.o.payload.data, acc.out.payload.data)),
                self.o.payload.last.eq(Mux(o_from_row, grow.o.payload.last, acc.out.payload.last)),
                acc.out.ready.eq(self.o.ready & ~o_from_row), grow.o.ready.eq(self.o.ready & o_from_row),
            ]
            o_end = Mux(row_run, row_beat & grow.o.payload.run_end, main_head_end)
        else:
            m.d.comb += [
                self.o.valid.eq(acc.out.valid & live),
                self.o.payload.data.eq(acc.out.payload.data),
                self.o.payload.last.eq(acc.out.payload.last),
                acc.out.ready.eq(self.o.ready),
            ]
            o_end = acc.out.valid & acc.out.ready & acc.out.payload.run_end
        if imp:
            heads_unit = self.head_importance_unit
            m.submodules.head_importance = tree.unit("head_importance", heads_unit)
            m.d.comb += [
                heads_unit.start.eq(started), heads_unit.seq_len.eq(query_len), heads_unit.heads.eq(kv_heads),
                heads_unit.o.valid.eq(acc.out.valid & acc.out.ready & imp_run),
                heads_unit.o.payload.data.eq(acc.out.payload.data),
                heads_unit.o.payload.last.eq(acc.out.payload.last),
            ]
            forward(heads_unit.out, self.head_importance)

        # A run is done when O and every side stream it sends have ended: (end, sent this run).
        def stream_end(port):
            return port.valid & port.ready & port.payload.last

        ends = [(o_end, Const(1))]
        if imp:
            ends += [(stream_end(self.token_importance), taken["importance"]),
                     (stream_end(self.head_importance), taken["importance"])]
        if p["row_flags"]:
            ends.append((stream_end(self.row_flags), Const(1)))
        finished = Signal(len(ends))
        now = finished | Cat(end for end, _ in ends)
        with m.If(started):
            m.d.sync += finished.eq(Cat(~sent for _, sent in ends))
        with m.Elif(running):
            m.d.sync += finished.eq(now)
            with m.If(now.all()):
                m.d.sync += [self.busy.eq(0), running.eq(0), self.done.eq(1)]
        return tree.root(m)
