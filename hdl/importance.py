"""Token importance (SpAtten): per key, the normalized attention probabilities summed over queries and heads."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.numerics import Numerics, clog2
from attn_rtl.params import positive_int

from .multiplier import Multiplier, check_multiplier, multiplier_latency
from .pipeline import delayed, register

__all__ = ["TokenImportance"]


class TokenImportance(wiring.Component):
    """Accumulates ``importance[j] = Σ_heads Σ_rows rne(p_j · r, max(R + e − P, 1))`` (docs/numerics.md, §6).

    Fed by the fused engine's softmax during the computing pass of an
    importance run, when every row's maximum is already final: a ``probs``
    beat is one row (``slot``) of one key tile, ``lanes`` unnormalized
    probabilities ``p_j`` against that final maximum; ``recips`` brings each
    row's reciprocal ``(r, e)`` of its online row sum before the row's first
    ``probs`` beat.  Per lane the unit multiplies ``p_j · r``, rounds half to
    even by ``R + e − P`` bits (``P`` fraction bits of probability), sums the
    tile's rows, and adds the column sums into word ``word`` of an importance
    memory of ``ceil(max_seq_len / lanes)`` words (key ``j`` is lane ``j mod
    lanes`` of word ``j div lanes``); a ``fresh`` tile (first head, first
    block) overwrites instead, so no clearing pass is needed.  After the beat
    flagged ``run_end`` the memory streams out on ``out``, ``ceil(seq_len /
    lanes)`` words, ``last`` on the final one, with backpressure.

    Reciprocals are kept for two blocks (the writer's parity flips after slot
    ``slots − 1``, the reader's after the last row of a ``block_last`` tile),
    so the next block's may arrive while this block's beats are still coming.

    Parameters
    ----------
    lanes, slots : int
        Keys per tile and rows per block (the array's ``cols`` and ``rows``).
    max_seq_len, max_heads : int
        Set the memory depth and the accumulator width.
    multiplier : str
        Target of the ``lanes`` multipliers (:class:`~attn_rtl.hdl.multiplier.Multiplier`).
    numerics : Numerics

    Attributes
    ----------
    width : int
        Bits of one importance value: ``P + 1 + ceil(log2(max_seq_len · max_heads))``.
    latency : int
        Cycles from a tile's last ``probs`` beat to the cycle its memory write is enabled.

    Ports
    -----
    start : In(1)
        Clears the block parity; ``seq_len`` is taken.  A drain under way goes on (its waiting beat stays).
    seq_len : In(range(max_seq_len + 1))
    probs : In(stream.Signature(StructLayout({"p": ArrayLayout(P + 1, lanes), "slot", "word", "fresh",
        "block_last", "run_end"}), always_ready=True))
        ``block_last`` marks the beats of a block's last tile, ``run_end`` those of the run's last.
    recips : In(stream.Signature(StructLayout({"slot", "recip": R + 1, "recip_exp"}), always_ready=True))
    out : Out(stream.Signature(StructLayout({"data": ArrayLayout(width, lanes), "last": 1})))
    """

    def __init__(self, *, lanes: int, slots: int, max_seq_len: int, max_heads: int, multiplier: str = "generic",
                 numerics: Numerics = Numerics()):
        self.lanes = positive_int("lanes", lanes, at_most=256)
        self.slots = positive_int("slots", slots, at_most=1024)
        self.max_seq_len = positive_int("max_seq_len", max_seq_len, at_most=1 << 24)
        self.max_heads = positive_int("max_heads", max_heads, at_most=1 << 16)
        self.nm = nm = Numerics.coerce(numerics)
        check_multiplier(a_width=nm.prob_width, b_width=nm.recip_bits + 1, a_signed=False, b_signed=False,
                         target=multiplier)
        self.multiplier = multiplier
        self.words = -(-max_seq_len // lanes)
        self.sum_width = nm.row_sum_width(max_seq_len)
        self.width = nm.prob_width + clog2(max_seq_len * max_heads)
        self.probs_layout = data.StructLayout({
            "p": data.ArrayLayout(unsigned(nm.prob_width), lanes), "slot": range(slots),
            "word": range(self.words), "fresh": 1, "block_last": 1, "run_end": 1})
        self.recip_layout = data.StructLayout({
            "slot": range(slots), "recip": nm.recip_bits + 1, "recip_exp": range(self.sum_width)})
        super().__init__({
            "start": In(1),
            "seq_len": In(range(max_seq_len + 1)),
            "probs": In(stream.Signature(self.probs_layout, always_ready=True)),
            "recips": In(stream.Signature(self.recip_layout, always_ready=True)),
            "out": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(unsigned(self.width), lanes), "last": 1}))),
        })

    @property
    def _multiplier_latency(self) -> int:
        return multiplier_latency(self.multiplier, self.nm.prob_width, False)

    @property
    def latency(self) -> int:
        # Registered beat and reciprocal (1), multiplier, bias (1), shift (1), column sum (1),
        # memory read (1): the write is enabled in the cycle after.
        return self._multiplier_latency + 5

    def elaborate(self, platform):
        m = Module()
        nm, C, S = self.nm, self.lanes, self.slots
        P, R = nm.prob_frac_bits, nm.recip_bits
        beat = self.probs.payload

        # --- reciprocals of two blocks; the writer's and the reader's parities flip per block.
        held = Signal(data.ArrayLayout(data.ArrayLayout(self.recip_layout, S), 2), reset_less=True)
        w_parity, r_parity = Signal(), Signal()
        with m.If(self.start):
            m.d.sync += [w_parity.eq(0), r_parity.eq(0)]
        with m.Elif(self.recips.valid):
            m.d.sync += held[w_parity][self.recips.payload.slot].eq(self.recips.payload)
            with m.If(self.recips.payload.slot == S - 1):
                m.d.sync += w_parity.eq(~w_parity)

        # --- stage 1: the row's reciprocal beside its probabilities.
        valid1 = register(m, self.probs.valid & ~self.start, "valid_s1", reset=True)
        beat1 = register(m, beat, "beat_s1")
        recip1 = register(m, held[r_parity][beat.slot], "recip_s1")
        with m.If(self.probs.valid & beat.block_last & (beat.slot == S - 1) & ~self.start):
            m.d.sync += r_parity.eq(~r_parity)

        # --- multiply (latency of the multiplier), then rne by s = max(R + e − P, 1).
        lat = self._multiplier_latency
        products = []
        for lane in range(C):
            mul = Multiplier(a_width=nm.prob_width, b_width=R + 1, a_signed=False, b_signed=False,
                             target=self.multiplier)
            m.submodules[f"mul_{lane}"] = mul
            m.d.comb += [mul.a.eq(beat1.p[lane]), mul.b.eq(recip1.recip)]
            products.append(mul.product)
        # The multiplier registers its operands: the product is `lat` cycles after stage 1.
        valid2 = delayed(m, valid1, lat, "valid_s1", reset=True)
        beat2 = delayed(m, beat1, lat, "beat_s1")
        recip2 = delayed(m, recip1, lat, "recip_s1")
        shift_width = range(R + self.sum_width + 1)
        shift2, half_at = Signal(shift_width), Signal(shift_width)
        m.d.comb += [shift2.eq(Mux(R + recip2.recip_exp > P + 1, R + recip2.recip_exp - P, 1)),
                     half_at.eq(shift2 - 1)]
        prod_width = nm.prob_width + R + 1
        biased = [Signal(prod_width + 1, name=f"biased_{lane}", reset_less=True) for lane in range(C)]
        for lane in range(C):
            # rne(x, s) = (x + 2^(s-1) - 1 + bit s of x) >> s
            odd = (products[lane] >> shift2)[0]
            half = (Const(1, prod_width + 1) << half_at)[:prod_width + 1]
            m.d.sync += biased[lane].eq(products[lane] + half - 1 + odd)
        valid3, beat3, shift3 = register(m, valid2, "valid_s3", reset=True), register(m, beat2, "beat_s3"), \
            register(m, shift2, "shift_s3")
        norm_width = nm.prob_width + 1
        normalized = [Signal(norm_width, name=f"normalized_{lane}", reset_less=True) for lane in range(C)]
        for lane in range(C):
            m.d.sync += normalized[lane].eq(biased[lane] >> shift3)
        valid4, beat4 = register(m, valid3, "valid_s4", reset=True), register(m, beat3, "beat_s4")

        # --- column sums over the tile's rows; the sum of a tile leaves with its last row.
        col_width = norm_width + clog2(S)
        column = [Signal(col_width, name=f"column_{lane}", reset_less=True) for lane in range(C)]
        tile_end4 = valid4 & (beat4.slot == S - 1)
        with m.If(valid4):
            for lane in range(C):
                m.d.sync += column[lane].eq(Mux(beat4.slot == 0, 0, column[lane]) + normalized[lane])
        valid5 = register(m, tile_end4, "valid_s5", reset=True)
        beat5 = register(m, beat4, "beat_s5")

        # --- read-modify-write of the word; the read is transparent to the write one cycle later.
        word_shape = data.ArrayLayout(unsigned(self.width), C)
        m.submodules.store = store = memory.Memory(shape=word_shape, depth=self.words, init=[])
        write = store.write_port()
        read = store.read_port(domain="sync", transparent_for=(write,))
        valid6 = register(m, valid5, "valid_s6", reset=True)
        beat6 = register(m, beat5, "beat_s6")
        column6 = [register(m, column[lane], f"column_s6_{lane}") for lane in range(C)]
        m.d.comb += [write.addr.eq(beat6.word), write.en.eq(valid6)]
        for lane in range(C):
            m.d.comb += write.data[lane].eq(Mux(beat6.fresh, 0, read.data[lane]) + column6[lane])

        # --- drain: after the run's last tile is written, words 0 … ceil(seq_len / lanes) − 1.
        seq_len = Signal.like(self.seq_len)
        draining, drained_key = Signal(), Signal(range(self.max_seq_len + C + 1))
        drain_word = Signal(range(self.words + 1))
        out_valid = Signal()
        more = drained_key < seq_len
        advance = draining & (~out_valid | self.out.ready)
        # A start leaves a drain alone: a beat offered on out stays until taken (the engine starts nothing
        # before the drain has ended, so this costs no run a cycle).
        with m.If(self.start):
            m.d.sync += seq_len.eq(self.seq_len)
        with m.Elif(valid6 & beat6.run_end):
            m.d.sync += [draining.eq(1), drained_key.eq(0), drain_word.eq(0)]
        with m.Elif(advance):
            m.d.sync += out_valid.eq(more)
            with m.If(more):
                m.d.sync += [drained_key.eq(drained_key + C), drain_word.eq(drain_word + 1),
                             self.out.payload.last.eq(drained_key + C >= seq_len)]
            with m.Else():
                m.d.sync += draining.eq(0)
        m.d.comb += [
            read.addr.eq(Mux(draining, drain_word, beat5.word)),
            read.en.eq(Mux(draining, advance & more, valid5)),
            # out_valid without draining is unreachable; the AND makes the hold of a waiting beat provable by
            # induction (docs/verification.md) at the cost of a gate.
            self.out.valid.eq(out_valid & draining),
            self.out.payload.data.eq(read.data),
        ]
        return m
