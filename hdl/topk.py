"""Top-k engine: the k largest of a stream of values, as (index, value) pairs in descending order."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import boolean, positive_int, reject_unknown

from .merge_level import MergeLevel
from .sorting_network import bitonic_sort_stages, build_network, check_lanes, network_registers

__all__ = ["TopK", "TOPK_DEFAULTS", "topk_params"]

TOPK_DEFAULTS = {
    "lanes": 16,
    "value_width": 16,
    "signed": True,
    "max_n": 1024,
    "max_k": 128,
}

#: Compare-swap stages between registers in the sorter and the mergers.
STAGES_PER_REGISTER = 2
#: Problems whose input has ended and whose answer has not started (more stall the input).
KEPT_FIFO_DEPTH = 8


def topk_params(**params) -> dict:
    """``TOPK_DEFAULTS`` updated by ``params``, each checked (``ValueError`` names the bad one)."""
    reject_unknown("topk", params, TOPK_DEFAULTS)
    p = {**TOPK_DEFAULTS, **params}
    check_lanes(positive_int("lanes", p["lanes"], at_most=64))
    positive_int("value_width", p["value_width"], at_most=64)
    boolean("signed", p["signed"])
    positive_int("max_n", p["max_n"], at_most=1 << 20)
    positive_int("max_k", p["max_k"], at_most=p["max_n"])
    return p


class TopK(wiring.Component):
    """The ``k`` largest of ``n`` values, emitted as (index, value) pairs, largest first.

    A problem is a packet on ``i``: beats of ``lanes`` values with a ``keep``
    bit per lane, ``last`` on the final beat.  Value ``j`` of beat ``b`` has
    index ``b·lanes + j``; lanes with ``keep`` low are not candidates.  The
    output packet on ``o`` carries min(k, kept values) pairs in descending
    order of value, ties broken by the lower index, ``lanes`` pairs per beat
    (``keep`` marks the filled lanes, only the last beat is partial) and
    ``last`` on its final beat; a problem with no value kept gives one beat
    with no lane kept.  Problems may follow one another back to
    back; ``k`` is sampled with each problem's first beat.

    How: each value becomes a key ``{1, value (sign bit flipped when signed),
    ~index}`` (so unsigned key order is value order with ties to the lower
    index; padding lanes get key 0).  A bitonic network sorts every input beat
    into a one-beat run; ``log2(⌈max_n/lanes⌉)`` :class:`MergeLevel` stages
    merge runs two by two, each keeping only the first ⌈k/lanes⌉ beats of a
    merged run (no key further down can be among the k largest).  Every stage
    takes a beat per cycle, so a problem of ``n`` values streams in at
    ``⌈n/lanes⌉`` cycles and its answer leaves a fixed number of cycles after
    the last input beat.

    Parameters
    ----------
    lanes : int
        Values per input beat and pairs per output beat (a power of two, at most 64).
    value_width : int
        Bits per value.
    signed : bool
        Values are two's complement.
    max_n : int
        Largest index + 1 (``⌈max_n/lanes⌉`` beats per problem).
    max_k : int
        Largest ``k``.

    Ports
    -----
    i : In(stream.Signature(StructLayout({"values", "keep", "last"})))
        Input values.
    k : In(range(max_k + 1))
        Pairs to emit, 1 … max_k, sampled with a problem's first beat.
    o : Out(stream.Signature(StructLayout({"indices", "values", "keep", "last"})))
        Output pairs.
    overflow : Out(1)
        Sticky: a problem had a kept value at index ``max_n`` or above; it was cut there (the
        values past it up to ``last`` are consumed and ignored).
    k_error : Out(1)
        Sticky: ``k`` was 0 or above ``max_k`` at a problem's first beat; it was taken as 1 or ``max_k``.
    """

    def __init__(self, *, lanes: int = 16, value_width: int = 16, signed: bool = True, max_n: int = 1024,
                 max_k: int = 128):
        self.params = topk_params(lanes=lanes, value_width=value_width, signed=signed, max_n=max_n, max_k=max_k)
        self.lanes, self.value_width, self.signed = lanes, value_width, signed
        self.max_n, self.max_k = max_n, max_k
        self.index_width = max(1, (max_n - 1).bit_length())
        self.key_width = 1 + value_width + self.index_width
        self.k_width = max_k.bit_length()
        self.max_beats = -(-max_n // lanes)
        self.levels = (self.max_beats - 1).bit_length()
        self.sort_stages = bitonic_sort_stages(lanes)
        value_shape = Shape(value_width, signed=signed)
        self.in_layout = data.StructLayout({
            "values": data.ArrayLayout(value_shape, lanes), "keep": lanes, "last": 1})
        self.out_layout = data.StructLayout({
            "indices": data.ArrayLayout(unsigned(self.index_width), lanes),
            "values": data.ArrayLayout(value_shape, lanes), "keep": lanes, "last": 1})
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "k": In(range(max_k + 1)),
            "o": Out(stream.Signature(self.out_layout)),
            "overflow": Out(1),
            "k_error": Out(1),
        })

    @property
    def sort_latency(self) -> int:
        """Cycles from an input beat accepted to its sorted beat written into the first level."""
        return 1 + network_registers(len(self.sort_stages), STAGES_PER_REGISTER)

    def level_run_beats(self) -> list[int]:
        """Longest input run of each merge level, in beats."""
        keep = -(-self.max_k // self.lanes)
        return [min(1 << level, keep) for level in range(self.levels)]

    def _merge_levels(self) -> list[MergeLevel]:
        levels, send_latency = [], self.sort_latency
        for run_beats in self.level_run_beats():
            levels.append(MergeLevel(lanes=self.lanes, key_width=self.key_width, k_width=self.k_width,
                                     run_beats=run_beats, send_latency=send_latency,
                                     stages_per_register=STAGES_PER_REGISTER))
            send_latency = levels[-1].latency
        return levels

    @property
    def bank_bits(self) -> int:
        """Bits of all merge levels' banks (two sets of ``lanes`` banks per level)."""
        total = 0
        for level in self._merge_levels():
            level._MustUse__silence = True
            total += level.bank_bits
        return total

    def elaborate(self, platform):
        m = Module()
        lanes, iw, vw = self.lanes, self.index_width, self.value_width

        # Merge levels, each promising room to the stage before it.
        levels = self._merge_levels()
        for number, level in enumerate(levels):
            m.submodules[f"level{number}"] = level
            if number:
                prev = levels[number - 1]
                m.d.comb += [level.w_en.eq(prev.o_en), level.w_data.eq(prev.o_data),
                             prev.o_may_send.eq(level.may_send)]
        send_latency = levels[-1].latency if levels else self.sort_latency

        # Output queue: pairs decoded from keys, room promised like a merge level's.
        out_slack = send_latency + 2
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFOBuffered(width=self.out_layout.size, depth=out_slack + 2)
        out_may_send = Signal()
        m.d.sync += out_may_send.eq(out_fifo.level <= out_fifo.depth - out_slack)

        # Input: keys built and registered as a beat is accepted.
        beat = Signal(range(self.max_beats))
        first = Signal(init=1)
        dropping = Signal()
        problem_k = Signal(self.k_width)
        first_may_send = levels[0].may_send if levels else out_may_send
        # Kept values per problem, counted on the way in and used on the way out: the answer is
        # min(k, kept) pairs, and padding keys never reach ``o``.
        m.submodules.kept_fifo = kept_fifo = fifo.SyncFIFO(width=(self.max_n).bit_length(), depth=KEPT_FIFO_DEPTH)
        m.d.comb += self.i.ready.eq(dropping | (first_may_send & kept_fifo.w_rdy))
        accept = self.i.valid & self.i.ready & ~dropping
        k_in = Signal(self.k_width)
        k_bad = (self.k == 0) | (self.k > self.max_k)
        m.d.comb += k_in.eq(Mux(self.k == 0, 1, Mux(self.k > self.max_k, self.max_k, self.k)))
        beat_k = Mux(first, k_in, problem_k)
        at_limit = beat == self.max_beats - 1
        ends = self.i.payload.last | at_limit
        sign_flip = Const(1 << (vw - 1), vw) if self.signed else Const(0, vw)
        in_keys = [Signal(self.key_width, name=f"in_key{j}", reset_less=True) for j in range(lanes)]
        kept = Signal(range(self.max_n + 1))
        kept_total = Signal.like(kept)
        lane_kept = []
        in_valid, in_final, in_k = Signal(), Signal(), Signal(self.k_width)
        m.d.sync += [in_valid.eq(accept), in_final.eq(ends), in_k.eq(beat_k)]
        with m.If(accept):
            for j in range(lanes):
                index = Signal(iw, name=f"in_index{j}")
                m.d.comb += index.eq(beat * lanes + j)
                key = Cat(~index, self.i.payload.values[j].as_unsigned() ^ sign_flip, Const(1, 1))
                # Lanes of the last beat past max_n are outside every problem.
                in_range = index < self.max_n if (self.max_beats * lanes > self.max_n) else Const(1)
                lane_kept.append(self.i.payload.keep[j] & in_range)
                m.d.sync += in_keys[j].eq(Mux(lane_kept[-1], key, 0))
                with m.If(self.i.payload.keep[j] & ~in_range):
                    m.d.sync += self.overflow.eq(1)
            m.d.sync += [first.eq(ends), beat.eq(Mux(ends, 0, beat + 1)),
                         kept.eq(Mux(ends, 0, kept_total))]
            with m.If(first):
                m.d.sync += problem_k.eq(k_in)
                with m.If(k_bad):
                    m.d.sync += self.k_error.eq(1)
            with m.If(at_limit & ~self.i.payload.last):
                m.d.sync += [self.overflow.eq(1), dropping.eq(1)]
        m.d.comb += [kept_total.eq(kept + sum(lane_kept)),
                     kept_fifo.w_data.eq(kept_total), kept_fifo.w_en.eq(accept & ends)]
        with m.If(self.i.valid & self.i.ready & dropping & self.i.payload.last):
            m.d.sync += dropping.eq(0)

        sorted_keys, (s_valid, s_final, s_k) = build_network(
            m, in_keys, [in_valid, in_final, in_k], self.sort_stages,
            stages_per_register=STAGES_PER_REGISTER, name="sort")
        if levels:
            first_level = levels[0]
            m.d.comb += [first_level.w_en.eq(s_valid), first_level.w_data.last.eq(1),
                         first_level.w_data.final.eq(s_final), first_level.w_data.k.eq(s_k),
                         *[first_level.w_data.keys[j].eq(key) for j, key in enumerate(sorted_keys)]]
            top = levels[-1]
            m.d.comb += top.o_may_send.eq(out_may_send)
            t_en, t_keys, t_last, t_k = top.o_en, list(top.o_data.keys), top.o_data.last, top.o_data.k
        else:
            t_en, t_keys, t_last, t_k = s_valid, sorted_keys, Const(1, 1), s_k

        # Decode the answer's keys into pairs: the first min(k, kept) of the final run.  A problem
        # with nothing kept gives one beat with no lane kept.
        out_beat = Signal(range(-(-self.max_k // lanes) + 1))
        limit = Signal(self.k_width)
        m.d.comb += limit.eq(Mux(kept_fifo.r_data < t_k, kept_fifo.r_data, t_k))
        base = out_beat * lanes
        pair = Signal(self.out_layout)
        for j, key in enumerate(t_keys):
            m.d.comb += [pair.indices[j].eq(~key[:iw]),
                         pair.values[j].eq(key[iw:iw + vw] ^ sign_flip),
                         pair.keep[j].eq(base + j < limit)]
        holds_pairs = (base < limit) | (out_beat == 0)
        m.d.comb += [pair.last.eq(base + lanes >= limit), out_fifo.w_data.eq(pair),
                     out_fifo.w_en.eq(t_en & holds_pairs), kept_fifo.r_en.eq(t_en & t_last)]
        with m.If(t_en):
            m.d.sync += out_beat.eq(Mux(t_last, 0, out_beat + 1))
        m.d.comb += [self.o.payload.eq(out_fifo.r_data), self.o.valid.eq(out_fifo.r_rdy),
                     out_fifo.r_en.eq(self.o.ready)]
        return m
