"""One level of the top-k engine's merge tree: pairs of sorted runs in, their merged top beats out."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import positive_int

from .sorting_network import bitonic_merge_stages, build_network, network_registers

__all__ = ["MergeLevel", "run_beat_layout"]


def run_beat_layout(lanes: int, key_width: int, k_width: int) -> data.StructLayout:
    """A beat of a sorted run: ``lanes`` keys in descending order and the run's flags.

    ``last`` ends a run; ``final`` marks every beat of a problem's last run;
    ``k`` is the problem's k (the beats each run keeps are ⌈k/lanes⌉).
    """
    return data.StructLayout({
        "keys": data.ArrayLayout(unsigned(key_width), lanes),
        "last": 1,
        "final": 1,
        "k": k_width,
    })


class MergeLevel(wiring.Component):
    """Merges runs two by two into one descending run, keeping its first ⌈k/lanes⌉ beats.

    Runs arrive one after the other as beats of ``lanes`` keys (descending
    across the run), with ``last`` on each run's last beat.  Even runs of a
    problem go to bank set A, odd runs to set B; the problem's last run, when
    it is an A run, merges with nothing.  Each set is ``lanes`` banks, bank
    ``i`` holding lane ``i`` of every beat, each bank with a read pointer and
    a head register of its own.

    Merging (the FLiMS scheme): comparator ``i`` compares the heads of A bank
    ``i`` and B bank ``lanes−1−i`` and takes the larger (A on a tie).  The
    ``lanes`` winners of a step are the ``lanes`` largest keys not yet taken,
    in cyclically bitonic order: a ``log2(lanes)``-stage bitonic merger sorts
    them into the next output beat.  Every comparator pops exactly one head
    per step and depends only on its own two banks, so the only loop is
    compare → pop → head, and a pair of runs of ``a`` and ``b`` beats takes
    ``a + b`` steps.  Steps past the first ⌈k/lanes⌉ of a pair drain the banks
    without emitting.  A beat's keys must be distinct except for the padding
    key 0 (the top-k engine makes them so).

    Flow control is by credit: ``may_send`` (a register) is high while every
    bank has room for ``send_latency + 2`` more beats, so a sender that fires
    only while it is high may deliver ``w_en`` up to ``send_latency`` cycles
    later without a ready; ``o_may_send`` is the same promise from the next
    level.

    Parameters
    ----------
    lanes : int
        Keys per beat (a power of two).
    key_width : int
        Bits per key (compared unsigned).
    k_width : int
        Bits of the ``k`` field.
    run_beats : int
        Longest input run, in beats.
    send_latency : int
        Cycles from the sender's decision to its ``w_en``.
    stages_per_register : int
        Merger stages between registers.

    Attributes
    ----------
    depth : int
        Entries per bank.
    bank_bits : int
        Bits of both bank sets.
    latency : int
        Cycles from a step to its beat on ``o_en``.

    Ports
    -----
    w_en, w_data : In
        A beat from the previous level (no ready: see ``may_send``).
    may_send : Out(1)
    o_en, o_data : Out
        Output beats, combinational from the last merger register.
    o_may_send : In(1)
        The next level's ``may_send``.
    """

    def __init__(self, *, lanes: int, key_width: int, k_width: int, run_beats: int, send_latency: int,
                 stages_per_register: int = 2):
        self.lanes = positive_int("lanes", lanes)
        self.key_width = positive_int("key_width", key_width)
        self.k_width = positive_int("k_width", k_width)
        self.run_beats = positive_int("run_beats", run_beats)
        self.send_latency = positive_int("send_latency", send_latency)
        self.stages_per_register = positive_int("stages_per_register", stages_per_register)
        self.stages = bitonic_merge_stages(lanes)
        self.slack = send_latency + 2
        # Two runs' worth keeps the merger at a step per cycle: while a pair merges, the next A
        # run arrives behind what is left of this one.
        self.depth = 1 << (2 * run_beats + self.slack - 1).bit_length()
        layout = run_beat_layout(lanes, key_width, k_width)
        super().__init__({
            "w_en": In(1), "w_data": In(layout), "may_send": Out(1),
            "o_en": Out(1), "o_data": Out(layout), "o_may_send": In(1),
        })

    @property
    def bank_bits(self) -> int:
        """Bits of both bank sets (lane 0's entries also hold ``final`` and ``k``)."""
        entry = self.key_width + 1
        return 2 * self.depth * (self.lanes * entry + 1 + self.k_width)

    @property
    def latency(self) -> int:
        return 1 + network_registers(len(self.stages), self.stages_per_register)

    def _bank_set(self, m: Module, name: str):
        """``lanes`` banks written together; per lane a read pointer and a head register.

        Returns per lane ``(head, head_valid, pop, count)`` (``pop`` to be driven) and the set's write
        selector (driven by the caller).
        """
        lanes, depth = self.lanes, self.depth
        ptr_bits = (depth - 1).bit_length() + 1        # one extra bit tells full from empty
        entry0 = data.StructLayout({"key": self.key_width, "last": 1, "final": 1, "k": self.k_width})
        entry = data.StructLayout({"key": self.key_width, "last": 1})
        write = Signal(name=f"{name}_write")
        w_ptr = Signal(ptr_bits, name=f"{name}_w_ptr")
        with m.If(write):
            m.d.sync += w_ptr.eq(w_ptr + 1)
        lanes_out = []
        for i in range(lanes):
            shape = entry0 if i == 0 else entry
            bank = memory.Memory(shape=shape, depth=depth, init=[])
            m.submodules[f"{name}_bank{i}"] = bank
            wr = bank.write_port()
            rd = bank.read_port(domain="comb")
            fields = dict(key=self.w_data.keys[i], last=self.w_data.last)
            if i == 0:
                fields.update(final=self.w_data.final, k=self.w_data.k)
            m.d.comb += [wr.en.eq(write), wr.addr.eq(w_ptr[:-1]),
                         *[getattr(wr.data, f).eq(v) for f, v in fields.items()]]
            r_ptr = Signal(ptr_bits, name=f"{name}_r_ptr{i}")
            head = Signal(shape, name=f"{name}_head{i}", reset_less=True)   # qualified by head_valid
            head_valid = Signal(name=f"{name}_head_valid{i}")
            pop = Signal(name=f"{name}_pop{i}")
            count = Signal(ptr_bits, name=f"{name}_count{i}")     # entries in the bank, head excluded
            m.d.comb += [count.eq(w_ptr - r_ptr), rd.addr.eq(r_ptr[:-1])]
            with m.If((count != 0) & (~head_valid | pop)):
                m.d.sync += [head.eq(rd.data), head_valid.eq(1), r_ptr.eq(r_ptr + 1)]
            with m.Elif(pop):
                m.d.sync += head_valid.eq(0)
            lanes_out.append((head, head_valid, pop, count))
        return lanes_out, write

    def elaborate(self, platform):
        m = Module()
        lanes = self.lanes
        a_set, a_write = self._bank_set(m, "a")
        b_set, b_write = self._bank_set(m, "b")

        # Write side: runs alternate between the sets; a problem's first run goes to A.
        to_b = Signal()
        m.d.comb += [a_write.eq(self.w_en & ~to_b), b_write.eq(self.w_en & to_b)]
        with m.If(self.w_en & self.w_data.last):
            m.d.sync += to_b.eq(~to_b & ~self.w_data.final)
        room = Const(1)
        for _, _, _, count in a_set + b_set:
            room = room & (count <= self.depth - self.slack)
        m.d.sync += self.may_send.eq(room)

        # Merge side.
        active = Signal()                      # inside a pair (its first step has been taken)
        a_done = Signal(lanes)
        b_done = Signal(lanes)
        pair_final, pair_k = Signal(), Signal(self.k_width)
        emitted = Signal(range(self.run_beats * 2 + 2))
        a0, b0 = a_set[0][0], b_set[0][0]
        # A problem's last run, when it lands in A, has no B partner; known from A's first head.
        b_absent = ~active & a0.final
        final_now = Mux(active, pair_final, a0.final | b0.final)
        k_now = Mux(active, pair_k, a0.k)
        keep_beats = Signal(self.k_width)
        lane_shift = (lanes - 1).bit_length()
        m.d.comb += keep_beats.eq((k_now + (lanes - 1)) >> lane_shift)
        emitting = emitted < keep_beats

        lane_ok, take_a, winners = [], [], []
        a_done_next, b_done_next = [], []
        for i in range(lanes):
            a_head, a_valid, _, _ = a_set[i]
            b_head, b_valid, _, _ = b_set[lanes - 1 - i]
            b_gone = b_done[i] | b_absent
            ok = Signal(name=f"lane_ok{i}")
            take = Signal(name=f"take_a{i}")
            m.d.comb += [ok.eq((a_done[i] | a_valid) & (b_gone | b_valid)),
                         take.eq(~a_done[i] & (b_gone | (a_head.key >= b_head.key)))]
            lane_ok.append(ok)
            take_a.append(take)
            winners.append(Mux(take, a_head.key, b_head.key))
            a_done_next.append(a_done[i] | (take & a_head.last))
            b_done_next.append(b_gone | (~take & b_head.last))
        step = Signal()
        m.d.comb += step.eq(Cat(*lane_ok).all() & (~emitting | self.o_may_send))
        for i in range(lanes):
            m.d.comb += [a_set[i][2].eq(step & take_a[i]), b_set[lanes - 1 - i][2].eq(step & ~take_a[i])]
        pair_end = a_done_next[0] & b_done_next[0]     # every lane ends a pair on the same step
        with m.If(step):
            with m.If(pair_end):
                m.d.sync += [active.eq(0), a_done.eq(0), b_done.eq(0), emitted.eq(0)]
            with m.Else():
                m.d.sync += [active.eq(1), a_done.eq(Cat(*a_done_next)), b_done.eq(Cat(*b_done_next)),
                             emitted.eq(emitted + emitting)]
            with m.If(~active):
                m.d.sync += [pair_final.eq(final_now), pair_k.eq(k_now)]

        # The winners of a step, registered, then sorted by the bitonic merger.
        win_keys = [Signal(self.key_width, name=f"winner{i}", reset_less=True) for i in range(lanes)]
        win_valid, win_last, win_final, win_k = Signal(), Signal(), Signal(), Signal(self.k_width)
        m.d.sync += [win_valid.eq(step & emitting),
                     win_last.eq(pair_end | (emitted + 1 == keep_beats)),
                     win_final.eq(final_now), win_k.eq(k_now),
                     *[w.eq(v) for w, v in zip(win_keys, winners)]]
        keys, (valid, last, final, k) = build_network(
            m, win_keys, [win_valid, win_last, win_final, win_k], self.stages,
            stages_per_register=self.stages_per_register, name="merge")
        m.d.comb += [self.o_en.eq(valid), self.o_data.last.eq(last), self.o_data.final.eq(final),
                     self.o_data.k.eq(k), *[self.o_data.keys[i].eq(key) for i, key in enumerate(keys)]]
        return m
