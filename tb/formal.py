"""Properties of valid/ready streams for formal checks (:func:`attn_rtl.sim.formal.check`).

A spec is a :class:`Spec`: a module with a ``sync`` domain whose clock is its
only port and whose reset is free (any cycle may reset, the first one does),
the design under test, and the properties added by the helpers below:

- :func:`stream_source` on a stream the design drives: once ``valid`` is high
  it stays high and the payload stable until the handshake (asserted), and
  ``valid`` is low the cycle after a reset;
- :func:`stream_environment` on a stream the design takes: the same rules,
  assumed of the environment, with free ``valid``, payload and (for a sink)
  ``ready``;
- :class:`BeatTracker`: no beat lost, duplicated or changed between an input
  and an output stream: the beats in and out are counted, and one beat chosen
  by the solver (its index a free constant) must leave as the same payload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from amaranth.asserts import AnyConst, AnySeq, Initial
from amaranth.hdl import (
    Assert,
    Assume,
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    Cover,
    Module,
    Mux,
    ResetSignal,
    Signal,
    Value,
)
from amaranth.lib import wiring
from amaranth.lib.wiring import Flow, In, Out

__all__ = ["Spec", "stream_source", "stream_environment", "BeatTracker", "register_slice_spec", "credit_fifo_spec",
           "register_file_spec", "stream_rules_spec", "engine_spec", "axi_top_spec", "merge_level_spec",
           "FormalCheck", "Mutation", "CHECKS", "MUTATIONS", "run_check", "run_mutation"]


class Spec:
    """A formal spec under construction: ``m`` (its module), ``rst`` (the free reset, high in the first
    cycle), ``past(value)`` (the value a cycle ago) and ``ports`` for :func:`~attn_rtl.sim.formal.check`.

    With ``clock`` (a design's own clock input, for a top with ``aclk``/``aresetn`` and a ``sync`` domain
    of its own) the spec's logic is in :attr:`domain` ``"spec"``, clocked by it; the caller drives the
    design's reset from ``rst``."""

    def __init__(self, clock=None):
        self.m = m = Module()
        self.rst = Signal(name="free_rst")
        self.domain = "sync" if clock is None else "spec"
        m.domains += ClockDomain(self.domain)
        m.d.comb += [self.rst.eq(AnySeq(1)), ResetSignal(self.domain).eq(self.rst)]
        if clock is not None:
            m.d.comb += ClockSignal(self.domain).eq(clock)
        self._ports = [ClockSignal("sync") if clock is None else clock]
        with m.If(Initial()):
            m.d.comb += Assume(self.rst)
        # The previous cycle was in reset (or there was none): no past to compare with.
        self.after_reset = self.past(self.rst, init=1)

    @property
    def ports(self):
        return self._ports

    def sync(self, statements):
        """Adds ``statements`` to the spec's clock domain."""
        getattr(self.m.d, self.domain).__iadd__(statements)

    def past(self, value, init=0):
        value = Value.cast(value)
        held = Signal(len(value), init=init, reset_less=True)
        self.sync(held.eq(value))
        return held

    def elaboratable(self):
        return self.m


def _stable_rules(spec: Spec, port, claim):
    """``claim`` (Assert or Assume): a waiting beat stays, unchanged, until taken."""
    m = spec.m
    payload = Value.cast(port.payload)
    waiting = spec.past(port.valid & ~port.ready)
    before = spec.past(payload)
    with m.If(waiting & ~spec.after_reset & ~spec.rst):
        m.d.comb += [claim(port.valid), claim(payload == before)]


def stream_source(spec: Spec, port, *, free_ready: bool = True):
    """Rules asserted of a stream the design drives; its ``ready`` is free (any consumer) unless the spec
    drives it."""
    if free_ready:
        spec.m.d.comb += port.ready.eq(AnySeq(1))
    _stable_rules(spec, port, Assert)
    with spec.m.If(spec.after_reset):
        spec.m.d.comb += Assert(~port.valid)


def stream_environment(spec: Spec, port):
    """A legal source for a stream the design takes: free ``valid`` and payload, the rules assumed."""
    m = spec.m
    m.d.comb += [port.valid.eq(AnySeq(1)), Value.cast(port.payload).eq(AnySeq(len(Value.cast(port.payload))))]
    _stable_rules(spec, port, Assume)
    with m.If(spec.after_reset):
        m.d.comb += Assume(~port.valid)


class BeatTracker:
    """Counts beats between ``i`` and ``o`` (at most ``capacity`` inside) and follows one: the ``pick``-th
    beat accepted on ``i`` (``pick`` a free constant) must be the ``pick``-th sent on ``o``, unchanged.
    ``inside`` is the count of beats in the design (for invariants of its state)."""

    def __init__(self, spec: Spec, i, o, *, capacity: int, bits: int = 4):
        m = spec.m
        self.taken, self.sent = Signal(bits, name="beats_in"), Signal(bits, name="beats_out")
        push, pop = i.valid & i.ready, o.valid & o.ready
        m.d.sync += [self.taken.eq(self.taken + push), self.sent.eq(self.sent + pop)]
        self.inside = Signal(bits, name="beats_inside")
        m.d.comb += self.inside.eq(self.taken - self.sent)
        m.d.comb += Assert(self.inside <= capacity)
        with m.If(self.inside == 0):
            m.d.comb += Assert(~o.valid)
        self.pick = pick = Signal(bits, name="pick")
        m.d.comb += pick.eq(AnyConst(bits))
        payload_in, payload_out = Value.cast(i.payload), Value.cast(o.payload)
        self.held = held = Signal(len(payload_in), name="picked_payload", reset_less=True)
        self.seen = seen = Signal(name="picked_inside")   # the picked beat is inside the design
        self.ahead = ahead = Signal(bits, name="picked_ahead")   # beats inside before it, when inside
        m.d.comb += ahead.eq(pick - self.sent)
        with m.If(pop & (self.sent == pick)):
            m.d.comb += [Assert(seen), Assert(payload_out == held)]
            m.d.sync += seen.eq(0)
        with m.If(push & (self.taken == pick)):
            m.d.sync += [held.eq(payload_in), seen.eq(1)]
        # The picked beat is inside exactly when its index lies between those sent and those taken.
        m.d.comb += Assert(seen == (ahead < self.inside))



def register_slice_spec(width: int = 4, *, invariants: bool = True) -> Spec:
    """:class:`~attn_rtl.hdl.register_slice.RegisterSlice`: stream rules on both ports, no beat lost,
    duplicated or changed, at most two inside; with ``invariants`` also what k-induction needs of its
    state (the flags against the count of beats inside, the tracked beat against the ring entry holding
    it).  Without them the interface properties alone are checked (bounded), as mutations are."""
    from attn_rtl.hdl.register_slice import RegisterSlice

    spec = Spec()
    m = spec.m
    m.submodules.dut = dut = RegisterSlice(width)
    stream_environment(spec, dut.i)
    stream_source(spec, dut.o)
    track = BeatTracker(spec, dut.i, dut.o, capacity=2)
    # Reachable: full rate with a beat inside, the slice full, and a beat passing while full.
    push, pop = dut.i.valid & dut.i.ready, dut.o.valid & dut.o.ready
    m.d.comb += [Cover(push & pop & (track.inside == 1)), Cover(track.inside == 2),
                 Cover(pop & (track.inside == 2) & spec.past(track.inside == 2))]
    if not invariants:
        return spec
    m.d.comb += [Assert(dut.o.valid == (track.inside != 0)), Assert(dut.i.ready == (track.inside != 2)),
                 Assert(dut.tail_select == (dut.head_select ^ track.inside[0]))]
    with m.If(track.seen):
        entry = Mux(dut.head_select ^ track.ahead[0], dut.entries[1], dut.entries[0])
        m.d.comb += Assert(entry == track.held)
    return spec


class _Writes:
    """The credit writer's side of a :class:`~attn_rtl.hdl.credit_fifo.CreditFIFO` as a stream that is always
    ready, for :class:`BeatTracker`."""

    def __init__(self, fifo):
        self.valid, self.ready, self.payload = fifo.w_en, Const(1), fifo.w_data


def credit_fifo_spec(width: int = 2, depth: int = 3, memory: str = "registers") -> Spec:
    """:class:`~attn_rtl.hdl.credit_fifo.CreditFIFO` under a writer that keeps its credits (at most ``depth``
    entries inside, none written in reset): stream rules on ``r``, no entry lost, duplicated or changed."""
    from attn_rtl.hdl.credit_fifo import CreditFIFO

    spec = Spec()
    m = spec.m
    m.submodules.dut = dut = CreditFIFO(width=width, depth=depth, memory=memory)
    m.d.comb += [dut.w_en.eq(AnySeq(1)), dut.w_data.eq(AnySeq(width))]
    stream_source(spec, dut.r)
    track = BeatTracker(spec, _Writes(dut), dut.r, capacity=depth)
    with m.If(dut.w_en):
        m.d.comb += [Assume(track.inside < depth), Assume(~spec.rst)]
    pop = dut.r.valid & dut.r.ready
    m.d.comb += [Cover(track.inside == depth), Cover(dut.w_en & pop & (track.inside == 1)),
                 Cover(pop & spec.past(dut.r.valid & ~dut.r.ready))]
    return spec


class _Channel:
    """An AXI4-Lite channel seen as a stream (``valid``, ``ready``, ``payload``) for the rules above."""

    def __init__(self, valid, ready, payload):
        self.valid, self.ready, self.payload = valid, ready, payload


class _RegisterFile(wiring.Component):
    """:func:`~attn_rtl.hdl.engine_axil.serve_registers` over a small map: two RW registers (8 and 3 bits)
    at 0x20 and 0x24, ID at 0x00, a status at 0x0C (CTRL: START on a write of bit 0)."""

    RW = ((0x20, 8), (0x24, 3))

    def __init__(self):
        from attn_rtl.hdl.engine_axil import axil_slave_members

        super().__init__({**axil_slave_members(8), "start": Out(1), "status": In(4)})
        self.targets = [Signal(bits, name=f"target_{offset:x}") for offset, bits in self.RW]

    def elaborate(self, platform):
        from attn_rtl.hdl.engine_axil import Register, serve_registers

        m = Module()
        registers = [Register(f"R{offset:X}", offset, "RW", bits, "", f"r{n}")
                     for n, (offset, bits) in enumerate(self.RW)]
        target = type("Targets", (), {f"r{n}": t for n, t in enumerate(self.targets)})()
        start = serve_registers(m, self, registers, {"engine": target},
                                {0x00: Const(0x4154544E, 32), 0x0C: self.status})
        m.d.comb += self.start.eq(start)
        return m


def _one_answer(spec: Spec, request, answer, record, name: str):
    """One answer per request, in order: ``answer`` is valid exactly while a taken request waits for it (and
    not in reset), and no request is taken while one waits (unless its answer leaves in that cycle).  Returns
    ``record`` as it
    was when the request was taken."""
    m = spec.m
    asked, answered = request.valid & request.ready, answer.valid & answer.ready
    pending = Signal(name=f"{name}_pending")
    held = Signal.like(record, name=name, reset_less=True)
    with m.If(asked):
        spec.sync([held.eq(record), pending.eq(1)])
    with m.Elif(answered):
        spec.sync(pending.eq(0))
    m.d.comb += [Assert(answer.valid == (pending & ~spec.rst)), Assert(~(asked & pending & ~answered))]
    return held


def register_file_spec() -> Spec:
    """The AXI4-Lite slave of every top (``serve_registers``): the channel rules (the master's assumed, the
    slave's asserted), one response per request and in order, OKAY for a mapped register (a write to a
    read-only one, or any access off the map, SLVERR), a read returning the register's value (0 off the
    map); k-induction with the pending counts as invariants."""
    spec = Spec()
    m = spec.m
    m.submodules.dut = dut = _RegisterFile()
    m.d.comb += dut.status.eq(AnySeq(4))
    aw = _Channel(dut.s_axil_awvalid, dut.s_axil_awready, dut.s_axil_awaddr)
    w = _Channel(dut.s_axil_wvalid, dut.s_axil_wready, Cat(dut.s_axil_wdata, dut.s_axil_wstrb))
    ar = _Channel(dut.s_axil_arvalid, dut.s_axil_arready, dut.s_axil_araddr)
    b = _Channel(dut.s_axil_bvalid, dut.s_axil_bready, dut.s_axil_bresp)
    r = _Channel(dut.s_axil_rvalid, dut.s_axil_rready, Cat(dut.s_axil_rdata, dut.s_axil_rresp))
    for channel in (aw, w, ar):
        stream_environment(spec, channel)
    for channel in (b, r):
        stream_source(spec, channel)
    rw = {offset: target for (offset, _), target in zip(_RegisterFile.RW, dut.targets)}
    word = lambda addr: addr[2:]   # noqa: E731  (AXI4-Lite: the word address)

    # Writes are taken with their data; each request then gets exactly one answer: OKAY for RW registers
    # and CTRL, SLVERR otherwise.  Reads: the register's value when the address was taken (0 off the map).
    m.d.comb += Assert(aw.ready == w.ready)
    mapped_write = Cat(word(aw.payload) == (offset >> 2) for offset in (*rw, 0x0C)).any()
    write_ok = _one_answer(spec, aw, b, mapped_write, "write_ok")
    with m.If(b.valid):
        m.d.comb += Assert(b.payload == Mux(write_ok, 0b00, 0b10))
    value = Cat(Const(0, 32), Const(0b10, 2))
    for offset, reg in {0x00: Const(0x4154544E, 32), 0x0C: dut.status, **rw}.items():
        value = Mux(word(ar.payload) == (offset >> 2), Cat(reg, Const(0, 32 - len(reg)), Const(0, 2)), value)
    expected = _one_answer(spec, ar, r, value, "read_expected")
    with m.If(r.valid):
        m.d.comb += Assert(r.payload == expected)
    m.d.comb += [Cover(b.valid & (b.payload == 0b10)), Cover(r.valid & (expected[:8] != 0) & (word(ar.payload) == 8)),
                 Cover(dut.start)]
    return spec

def _stream_ports(component):
    """``(name, interface, flow)`` of every valid/ready stream in ``component``'s signature."""
    from amaranth.lib import stream

    for name, member in component.signature.members.items():
        if member.is_signature and isinstance(member.signature, stream.Signature):
            yield name, getattr(component, name), member.flow


def stream_rules_spec(make_component, environment=None, *, top: bool = False, covers: bool = True) -> Spec:
    """Any block with valid/ready streams: the AXI4-Stream rules assumed of every stream it takes and
    asserted of every stream it drives (free ``ready`` unless always ready); its other inputs free: 1-bit
    ones (starts, flags) in every cycle, wider ones (sizes, registers) a constant of the trace, as the
    engine holds them through a run.  ``environment(spec, dut)`` adds what the block's user promises
    beyond that.  A ``top`` (a design's boundary) also neither accepts nor sends while in reset.
    ``covers``: a beat leaves every output stream, and one leaves after waiting."""
    spec = Spec()
    m = spec.m
    m.submodules.dut = dut = make_component()
    streams = set()
    for name, port, flow in _stream_ports(dut):
        streams.add(name)
        if flow == Flow.In:
            stream_environment(spec, port)
            quiet = ~port.ready
        else:
            stream_source(spec, port, free_ready=not dut.signature.members[name].signature.always_ready)
            quiet = ~port.valid
            if covers:   # not vacuous: a beat leaves, and one leaves after waiting (its ready low while valid)
                m.d.comb += [Cover(port.valid & port.ready & ~spec.rst),
                             Cover(port.valid & port.ready & spec.past(port.valid & ~port.ready) & ~spec.rst)]
        if top:
            with m.If(spec.rst):
                m.d.comb += Assert(quiet)
    for name, member in dut.signature.members.items():
        if name in streams or not member.is_port or member.flow != Flow.In:
            continue
        port = Value.cast(getattr(dut, name))
        m.d.comb += port.eq(AnySeq(len(port)) if len(port) == 1 else AnyConst(len(port)))
    if environment is not None:
        environment(spec, dut)
    return spec


_AXI_PORT = re.compile(r"(?P<channel>(?:s|m)_axis_\w+)_t(?P<field>data|valid|ready|last|keep|user)$"
                       r"|(?P<bus>(?:s_axil|m_axi)_(?:aw|w|b|ar|r))(?P<signal>\w+)$")


def _axi_channels(component):
    """``{channel: (valid, ready, payload, driven)}`` of every AXI4, AXI4-Lite and AXI4-Stream channel in
    ``component``'s signature (``driven``: the design drives ``valid``); the other ports as a list."""
    from amaranth.lib.wiring import Flow

    fields, others = {}, []
    for name, member in component.signature.members.items():
        found = _AXI_PORT.match(name) if member.is_port else None
        if found is None:
            others.append((name, member))
            continue
        channel, field = (found["channel"], found["field"]) if found["channel"] else (found["bus"], found["signal"])
        fields.setdefault(channel, {})[field] = (name, member)
    channels = {}
    for channel, parts in fields.items():
        (valid_name, valid), (ready_name, _) = parts.pop("valid"), parts.pop("ready")
        payload = Cat(*(getattr(component, name) for name, _ in parts.values()))
        channels[channel] = (getattr(component, valid_name), getattr(component, ready_name), payload,
                             valid.flow == Flow.Out)
    return channels, others


def axi_top_spec(make_component, *, covers=()) -> Spec:
    """A top with ``aclk``/``aresetn`` and AXI ports (AXI4-Stream ``s_axis_*``/``m_axis_*``, the AXI4-Lite
    slave ``s_axil_*``, the AXI4 master ``m_axi_*``): on every channel the design drives, the
    valid/payload rules asserted (held until the handshake, low in and right after reset), on every one
    it takes the same assumed of its peer; nothing accepted in reset (an AXI4-Stream input's ``ready``
    asserted low then, an AXI4(-Lite) peer's ``valid`` assumed low, as AXI requires of it); on
    the AXI4-Lite slave one answer per request, in order; other inputs free (1-bit ones in every
    cycle, wider ones a constant).  ``covers(spec, dut)`` returns cover conditions."""
    dut = make_component()
    spec = Spec(clock=dut.aclk)
    m = spec.m
    m.submodules.dut = dut
    m.d.comb += dut.aresetn.eq(~spec.rst)
    channels, others = _axi_channels(dut)
    for name, (valid, ready, payload, driven) in channels.items():
        port = _Channel(valid, ready, payload)
        if driven:
            stream_source(spec, port)
            quiet = Assert(~valid)
        else:
            stream_environment(spec, port)
            # AXI4-Stream inputs refuse beats in reset; on AXI4(-Lite) the peer's valid is low then (A3.1.2).
            quiet = Assert(~ready) if name.startswith("s_axis") else Assume(~valid)
        with m.If(spec.rst):
            m.d.comb += quiet
    if "s_axil_aw" in channels:
        for request, answer in (("s_axil_aw", "s_axil_b"), ("s_axil_ar", "s_axil_r")):
            _one_answer(spec, _Channel(*channels[request][:3]), _Channel(*channels[answer][:3]), Const(0),
                        f"{request}_answer")
        m.d.comb += Assert(dut.s_axil_awready == dut.s_axil_wready)   # a write is taken with its data
    for name, member in others:
        if member.flow == Flow.In and name not in ("aclk", "aresetn"):
            port = Value.cast(getattr(dut, name))
            m.d.comb += port.eq(AnySeq(1) if len(port) == 1 else AnyConst(len(port)))
    for condition in covers(spec, dut) if callable(covers) else covers:
        m.d.comb += Cover(condition & ~spec.rst)
    return spec


def _array():
    from attn_rtl.hdl.systolic_array import SystolicArray
    return SystolicArray(rows=2, cols=2, a_width=2, b_width=2, max_reduction=3)


def _scheduler():
    from attn_rtl.hdl.sparse_scheduler import SparseScheduler
    return SparseScheduler(rows=2, cols=2, max_seq_len=4, max_heads=1, max_dilation=2, max_globals=1, sparse=True)


def _accumulator():
    from attn_rtl.hdl.output_accumulator import OutputAccumulator
    return OutputAccumulator(lanes=1, rows=1, chunks=1, partial_width=4, max_seq_len=4)


def _softmax():
    from attn_rtl.hdl.softmax import SoftmaxUnit
    return SoftmaxUnit(lanes=1, slots=1, score_width=3, max_seq_len=4)


def _token_importance():
    from attn_rtl.hdl.importance import TokenImportance
    return TokenImportance(lanes=1, slots=1, max_seq_len=2, max_heads=1)


def _head_importance():
    from attn_rtl.hdl.head_importance import HeadImportance
    return HeadImportance(lanes=1, rows=1, data_width=2, max_seq_len=2, max_head_dim=2, max_heads=1)


#: The smallest engine (1x1 array, L up to 2, d = 1, one head): every control path of the large ones, the
#: datapath at its narrowest.  Sizes are free constants of a trace, so every runtime shape is covered.
_ENGINE = dict(rows=1, cols=1, max_seq_len=2, max_head_dim=1, max_heads=1)

#: Engine builds checked: name, options, what the build adds.
_ENGINE_BUILDS = (
    ("engine", {}, "dense"),
    ("engine_sparse", {"sparse": True}, "sparse (kv_index)"),
    ("engine_importance", {"importance": True}, "importance runs (token and head importance streams)"),
    ("engine_row_flags", {"row_flags": True}, "progressive quantization (row_flags stream)"),
)


def _engine(options):
    from attn_rtl.hdl.engine import AttentionEngine
    return AttentionEngine(**_ENGINE, **options)


def engine_spec(options=(), *, cover: bool = False) -> Spec:
    """The engine top (:class:`~attn_rtl.hdl.engine.AttentionEngine`, :data:`_ENGINE` and ``options``):
    the stream rules of :func:`stream_rules_spec` on every port, nothing accepted or sent in reset.  With
    ``cover`` instead reachable: a run starts and takes Q and K beats (sparse: a ``kv_index`` beat leaves
    after waiting), so the environment is not vacuous."""
    options = dict(options)
    spec = stream_rules_spec(lambda: _engine(options), top=True, covers=False)
    if cover:
        dut, rst = spec.m.submodules.dut, spec.rst
        spec.m.d.comb += [Cover(dut.q.valid & dut.q.ready & ~rst), Cover(dut.k.valid & dut.k.ready & ~rst)]
        if options.get("sparse"):
            index = dut.kv_index
            spec.m.d.comb += Cover(index.valid & index.ready & spec.past(index.valid & ~index.ready) & ~rst)
    return spec


def _axi_top(kind: str):
    if kind == "axis":
        from attn_rtl.hdl.engine_top import AttentionEngineAxi as Top
    elif kind == "axil":
        from attn_rtl.hdl.engine_axil import AttentionEngineAxiLite as Top
    else:
        from attn_rtl.hdl.engine_mm import AttentionEngineMM as Top
    return Top(**_ENGINE)


def _register_answers(spec: Spec, dut):
    """Reachable on an AXI4-Lite slave: a write answered, and a read."""
    return [dut.s_axil_bvalid & dut.s_axil_bready, dut.s_axil_rvalid & dut.s_axil_rready]


def _mm_reads(spec: Spec, dut):
    """Reachable on the memory-mapped top: AXI4-Lite answers and an AXI4 read burst taken."""
    return [*_register_answers(spec, dut), dut.m_axi_arvalid & dut.m_axi_arready]


def array_liveness_spec(tiles: int = 2) -> Spec:
    """Bounded liveness of :class:`~attn_rtl.hdl.systolic_array.SystolicArray`: fed one-step tiles back to
    back with ``c`` always ready (any operands, no reset after the first), the last result of ``tiles``
    tiles leaves within ``run_cycles`` of the first step accepted, the array's own cycle model (the one the
    cost model sums)."""
    spec = Spec()
    m = spec.m
    m.submodules.dut = dut = _array()
    bound = dut.run_cycles([1] * tiles)
    m.d.comb += [Assume(~spec.rst | Initial()), dut.c.ready.eq(1),
                 dut.a.payload.eq(AnySeq(len(dut.a.payload.as_value()))), dut.a.payload.last.eq(1),
                 dut.b.payload.eq(AnySeq(len(dut.b.payload.as_value())))]
    steps = Signal(range(tiles + 1), name="steps_in")
    m.d.comb += [dut.a.valid.eq(~spec.after_reset & (steps < tiles)), dut.b.valid.eq(dut.a.valid)]
    took = dut.a.valid & dut.a.ready & dut.b.ready
    m.d.sync += steps.eq(steps + took)
    since = Signal(range(bound + 2), name="cycles_since_first_step")
    with m.If((steps != 0) | took):
        m.d.sync += since.eq(since + (since <= bound))
    rows_out = Signal(range(tiles * dut.rows + 1), name="result_rows_out")
    m.d.sync += rows_out.eq(rows_out + (dut.c.valid & dut.c.ready))
    with m.If(since == bound):   # run_cycles counts the first step's cycle and the last result's
        m.d.comb += Assert(rows_out == tiles * dut.rows)
    m.d.comb += Cover((since == bound - 1) & (rows_out == tiles * dut.rows - 1) & dut.c.valid)
    return spec


def topk_spec(lanes: int = 2, value_width: int = 2, max_n: int = 4, max_k: int = 3, signed: bool = True) -> Spec:
    """:class:`~attn_rtl.hdl.topk.TopK` on one problem after each reset (any values, keep bits, ``k`` in
    range, any stalls): the stream rules on both ports, and of its answer: pairs leave largest first, ties to
    the lower index, the kept lanes of a beat first and only the last beat partial, exactly min(k, kept)
    pairs, then ``last``.  (A problem with no value kept answers one empty beat.)"""
    from attn_rtl.hdl.topk import TopK

    spec = Spec()
    m = spec.m
    m.submodules.dut = dut = TopK(lanes=lanes, value_width=value_width, signed=signed, max_n=max_n, max_k=max_k)
    i, o = dut.i, dut.o
    stream_environment(spec, i)
    stream_source(spec, o)
    k = Signal(range(max_k + 1), name="k_chosen")
    m.d.comb += [k.eq(AnyConst(len(k))), dut.k.eq(k), Assume((k >= 1) & (k <= max_k))]
    # One problem of at most max_n values: no input after its last beat, and no beat past index max_n.
    took, ended = i.valid & i.ready, Signal(name="input_ended")
    beats_in = Signal(range(dut.max_beats + 2), name="beats_in")
    kept_in = Signal(range(max_n + 1), name="kept_in")
    with m.If(took):
        m.d.sync += [beats_in.eq(beats_in + 1), kept_in.eq(kept_in + sum(i.payload.keep[j] for j in range(lanes))),
                     ended.eq(i.payload.last)]
    with m.If(ended | (beats_in == dut.max_beats)):
        m.d.comb += Assume(~i.valid)
    with m.If(i.valid & (beats_in == dut.max_beats - 1)):
        m.d.comb += Assume(i.payload.last)
    # The answer, pair by pair: each kept pair after the previous one in (value desc, index asc) order.
    sent, seen_last = o.valid & o.ready, Signal(name="answer_ended")
    count = Signal(range(max_n + 2), name="pairs_out")
    prev_value = Signal(Value.cast(o.payload.values[0]).shape(), name="prev_value")
    prev_index, have_prev = Signal(len(o.payload.indices[0]), name="prev_index"), Signal(name="have_prev")
    value, index, have, total = prev_value, prev_index, have_prev, count
    for j in range(lanes):
        keep, v, x = o.payload.keep[j], o.payload.values[j], o.payload.indices[j]
        with m.If(sent & keep & have):
            m.d.comb += Assert((v < value) | ((v == value) & (x > index)))
        if j:   # kept lanes first
            with m.If(sent & keep):
                m.d.comb += Assert(o.payload.keep[j - 1])
        value, index = Mux(keep, v, value), Mux(keep, x, index)
        have, total = have | keep, total + keep
    with m.If(sent):
        m.d.sync += [prev_value.eq(value), prev_index.eq(index), have_prev.eq(have), count.eq(total)]
        with m.If(~o.payload.last):   # only the last beat partial
            m.d.comb += Assert(o.payload.keep.all())
        with m.If(o.payload.last):
            m.d.sync += seen_last.eq(1)
            m.d.comb += [Assert(ended), Assert(total == Mux(kept_in < k, kept_in, k))]
    with m.If(seen_last):
        m.d.comb += Assert(~o.valid)
    m.d.comb += [Cover(sent & o.payload.last & (total == k) & (kept_in > k)),
                 Cover(sent & o.payload.last & (total == kept_in) & (kept_in < k) & (kept_in > 0))]
    return spec


def merge_level_spec(lanes: int = 2, key_width: int = 2, run_beats: int = 1, send_latency: int = 1) -> Spec:
    """:class:`~attn_rtl.hdl.merge_level.MergeLevel` on its own, its credit interface on both sides: a writer
    that fires ``send_latency`` cycles after a cycle of ``may_send`` sends runs of descending keys (nonzero
    keys distinct, at most ``run_beats`` beats, any number of runs and problems back to back, one ``k``),
    the next level's ``o_may_send`` free.  Asserted: a beat leaves only on a credit (``o_may_send`` a
    ``latency`` earlier); each merged run descends and has min(⌈k/lanes⌉, a + b) beats for runs of a and b
    beats; and, for one pair chosen by the solver and one key value, the run holds the key as often as the
    pair's runs do (every key when nothing is cut; every key above the run's smallest when cut at k), so no
    key is lost, duplicated or overwritten in a bank whatever the backpressure."""
    from attn_rtl.hdl.merge_level import MergeLevel

    spec = Spec()
    m = spec.m
    k_width = 3
    m.submodules.dut = dut = MergeLevel(lanes=lanes, key_width=key_width, k_width=k_width, run_beats=run_beats,
                                        send_latency=send_latency)
    m.d.comb += [Assume(~spec.rst | Initial()), dut.o_may_send.eq(AnySeq(1)),
                 dut.w_en.eq(AnySeq(1)), Value.cast(dut.w_data).eq(AnySeq(len(Value.cast(dut.w_data))))]
    credit, sent_credit = dut.may_send, dut.o_may_send
    for _ in range(send_latency):
        credit = spec.past(credit)
    for _ in range(dut.latency):
        sent_credit = spec.past(sent_credit)
    m.d.comb += Assume(~dut.w_en | (credit & ~spec.after_reset))
    beat, w = dut.w_en, dut.w_data
    k = Signal(k_width, name="k_chosen")
    m.d.comb += [k.eq(AnyConst(k_width)), Assume(k != 0), Assume(~beat | (w.k == k))]
    keep = Signal(k_width, name="keep_beats")
    m.d.comb += keep.eq((k + lanes - 1) // lanes)

    # The writer's runs: keys descending (nonzero ones strictly), at most run_beats beats, final on every
    # beat of a problem's last run.
    in_run, run_final = Signal(range(run_beats + 1), name="run_beats_in"), Signal(name="run_final")
    prev_key = Signal(key_width, name="prev_key_in")
    for j in range(lanes):
        above = prev_key if j == 0 else w.keys[j - 1]
        first_of_run = (in_run == 0) if j == 0 else Const(0)
        m.d.comb += Assume(~beat | first_of_run | (w.keys[j] < above) | ((w.keys[j] == 0) & (above == 0)))
    m.d.comb += Assume(~beat | (in_run == 0) | (w.final == run_final))
    with m.If(beat & (in_run == run_beats - 1)):
        m.d.comb += Assume(w.last)
    with m.If(beat):
        m.d.sync += [in_run.eq(Mux(w.last, 0, in_run + 1)), run_final.eq(w.final), prev_key.eq(w.keys[-1])]

    # Pairs on the way in: A runs, then B runs; a final A run is a pair alone (as the level's own to_b).
    # Pair and run counts saturate (at 15, past any chosen pair) rather than wrap onto it.
    in_b, pairs_in = Signal(name="run_to_b"), Signal(4, name="pairs_in")
    pair_ends = beat & w.last & (in_b | w.final)
    with m.If(beat & w.last):
        m.d.sync += [in_b.eq(~in_b & ~w.final), pairs_in.eq(pairs_in + (pair_ends & (pairs_in != 15)))]
    # Nonzero keys distinct across a pair, as the top-k engine's are (index bits in every key): a merged
    # beat holds no two equal keys.
    seen = Signal(1 << key_width, name="keys_seen_in_pair")
    fresh = seen
    for j in range(lanes):
        key = w.keys[j]
        m.d.comb += Assume(~beat | (key == 0) | ~(seen >> key)[0])
        fresh = fresh | Mux(key == 0, 0, Const(1, 1 << key_width) << key)
    with m.If(beat):
        m.d.sync += seen.eq(Mux(pair_ends, 0, fresh))
    pick, value = Signal(3, name="pair_chosen"), Signal(key_width, name="key_chosen")
    m.d.comb += [pick.eq(AnyConst(3)), value.eq(AnyConst(key_width))]
    beats_in, copies_in = Signal(range(2 * run_beats + 1), name="pair_beats_in"), Signal(4, name="copies_in")
    with m.If(beat & (pairs_in == pick)):
        m.d.sync += [beats_in.eq(beats_in + 1),
                     copies_in.eq(copies_in + sum((w.keys[j] == value) for j in range(lanes)))]

    # The merged runs on the way out.
    o, sent = dut.o_data, dut.o_en
    m.d.comb += Assert(~sent | sent_credit)
    runs_out, out_run = Signal(4, name="runs_out"), Signal(range(2 * run_beats + 2), name="run_beats_out")
    prev_out, copies_out = Signal(key_width, name="prev_key_out"), Signal(4, name="copies_out")
    for j in range(lanes):
        above = prev_out if j == 0 else o.keys[j - 1]
        m.d.comb += Assert(~sent | ((out_run == 0) & (j == 0)) | (o.keys[j] <= above))
    here = sent & (runs_out == pick)
    copies = copies_out + sum((o.keys[j] == value) for j in range(lanes))
    with m.If(sent):
        m.d.sync += [out_run.eq(Mux(o.last, 0, out_run + 1)), prev_out.eq(o.keys[-1]),
                     runs_out.eq(runs_out + (o.last & (runs_out != 15)))]
        m.d.comb += Assert(out_run + 1 <= keep)
    # The chosen pair's merged run, once both it and the pair's input have ended (a run cut at k ends
    # before its inputs do: the rest of them drain unsent).
    out_done, out_beats = Signal(name="chosen_run_sent"), Signal.like(out_run, name="chosen_run_beats")
    smallest = Signal(key_width, name="chosen_run_smallest")
    with m.If(here):
        m.d.sync += copies_out.eq(copies)
        with m.If(o.last):
            m.d.sync += [out_done.eq(1), out_beats.eq(out_run + 1), smallest.eq(o.keys[-1])]
    with m.If(out_done & (pairs_in > pick)):
        cut = beats_in > keep
        m.d.comb += [Assert(out_beats == Mux(cut, keep, beats_in)), Assert(copies_out <= copies_in)]
        with m.If(~cut | (value > smallest)):
            m.d.comb += Assert(copies_out == copies_in)
    done = out_done & (pairs_in > pick)
    m.d.comb += [Cover(spec.past(dut.may_send) & ~dut.may_send),   # the banks fill: credit withdrawn
                 Cover(done & (beats_in > keep) & (pick == 1) & (copies_in != 0)),
                 Cover(done & (beats_in == 2 * run_beats) & (keep >= beats_in) & (copies_in == 1) & (value != 0))]
    return spec


@dataclass(frozen=True)
class FormalCheck:
    """One proof: ``make()`` builds the spec, checked in ``mode`` to ``depth`` (k-induction's depth for
    ``prove``); ``slow`` ones run with ``-m slow``."""
    name: str
    block: str
    parameters: str
    make: Callable[[], Spec]
    mode: str
    depth: int
    properties: str
    slow: bool = False


@dataclass(frozen=True)
class Mutation:
    """One net broken (a Yosys ``mutate`` of ``wire`` in ``mode``, at a cell input ``port`` when given: a
    register's own output cannot be tied against its initial value) that the bounded check of ``make()``'s
    spec must catch: ``what`` it breaks."""
    name: str
    block: str
    make: Callable[[], Spec]
    mode: str
    wire: str
    depth: int
    what: str
    bit: int | None = None
    slow: bool = False
    port: str | None = None


_STREAM = "AXI4-Stream rules (valid held, payload stable until taken; valid low after reset)"
_STREAM_ALL = f"{_STREAM} on every output stream, the same assumed of every input; sizes any constant"

#: Blocks checked by :func:`stream_rules_spec`: name, block, parameters, factory, bounded depth, cover depth,
#: environment.
_STREAM_BLOCKS = (
    ("systolic_array", "SystolicArray", "2x2, 2-bit operands, reduction up to 3", _array, 20, 20, None),
    ("systolic_array_sliding", "SystolicArray", "2x2, 2-bit operands, reduction up to 3, sliding build (either "
     "mode; diagonal, stationary and weight-loading steps any)", lambda: _sliding_array(), 20, 20,
     lambda spec, dut: _run_mode_constant(spec, dut)),
    ("sparse_scheduler", "SparseScheduler", "2x2, L up to 4, dilation up to 2, one global", _scheduler, 20, 20,
     None),
    ("diagonal_scheduler", "DiagonalScheduler", "1x2, L up to 4, dilation up to 2, one global",
     lambda: _diagonal_scheduler(), 24, 24, None),
    ("token_importance", "TokenImportance", "1 lane, 1 slot, L up to 2", _token_importance, 20, 20, None),
    ("head_importance", "HeadImportance", "1 lane, 1 row, 2-bit O, L and d up to 2", _head_importance, 20, 20,
     None),
    ("output_accumulator", "OutputAccumulator", "1 lane, 1 row, 1 chunk, 4-bit partials", _accumulator, 48, 40,
     None),
    ("softmax", "SoftmaxUnit", "1 lane, 1 slot, 3-bit scores, L up to 4", _softmax, 32, 64, None),
)
_TRACKED = "no beat lost, duplicated or changed (a solver-chosen beat followed through)"
_MERGE = ("credit rules both sides (the writer fires a send latency after may_send; a beat leaves only on "
          "o_may_send a latency earlier); each merged run descends, min(ceil(k/lanes), a+b) beats; one "
          "solver-chosen pair and key: as many copies out as in (above the cut when cut at k): no key lost, "
          "duplicated or overwritten in a bank")
_AXI_TOP = ("AXI rules on every channel (valid held, payload stable until taken; valid low in and right after "
            "reset; nothing accepted in reset)")

CHECKS = (
    FormalCheck("register_slice_1", "RegisterSlice", "1-bit payload", lambda: register_slice_spec(1), "prove", 8,
                f"{_STREAM} on both ports; {_TRACKED}; at most 2 inside"),
    FormalCheck("register_slice_4", "RegisterSlice", "4-bit payload", lambda: register_slice_spec(4), "prove", 8,
                f"{_STREAM} on both ports; {_TRACKED}; at most 2 inside"),
    FormalCheck("register_slice_cover", "RegisterSlice", "4-bit payload", lambda: register_slice_spec(4), "cover", 8,
                "reachable: a beat in and out in one cycle, full, a beat out while full"),
    FormalCheck("credit_fifo_12", "CreditFIFO", "2-bit entries, depth 3, flip-flop storage", credit_fifo_spec, "bmc",
                12, f"{_STREAM} on r; {_TRACKED}; at most depth inside (writer keeps its credits)"),
    FormalCheck("credit_fifo_16", "CreditFIFO", "2-bit entries, depth 3, flip-flop storage", credit_fifo_spec, "bmc",
                16, f"{_STREAM} on r; {_TRACKED}; at most depth inside (writer keeps its credits)", slow=True),
    FormalCheck("register_file", "serve_registers (AXI4-Lite slave)", "two RW registers, ID, a status",
                register_file_spec, "prove", 6,
                "AXI4-Lite channel rules (the master's assumed, the slave's asserted); one response per request, "
                "in order; OKAY on the map, SLVERR off it or to a read-only register; a read returns the "
                "register's value (0 off the map)"),
    FormalCheck("register_file_cover", "serve_registers (AXI4-Lite slave)", "two RW registers, ID, a status",
                register_file_spec, "cover", 6, "reachable: SLVERR, a register read back after a write, START"),
    FormalCheck("credit_fifo_cover", "CreditFIFO", "2-bit entries, depth 3, flip-flop storage", credit_fifo_spec,
                "cover", 12, "reachable: full, a write and a read at full rate, a read after a stall"),
    *[check for name, block, parameters, make, depth, cover_depth, env in _STREAM_BLOCKS for check in (
        FormalCheck(f"{name}_streams", block, parameters, lambda make=make, env=env: stream_rules_spec(make, env),
                    "bmc", depth, _STREAM_ALL, slow=depth > 24),
        FormalCheck(f"{name}_cover", block, parameters, lambda make=make, env=env: stream_rules_spec(make, env),
                    "cover", cover_depth, "reachable: a beat out of every output stream, and one after a wait"))],
    FormalCheck("systolic_array_liveness", "SystolicArray", "2x2, 2-bit operands, two one-step tiles",
                array_liveness_spec, "bmc", 24,
                "bounded liveness: fed back to back with c always ready, the last result row leaves within "
                "run_cycles (the array's cycle model, 16 cycles) of the first step accepted"),
    FormalCheck("systolic_array_liveness_cover", "SystolicArray", "2x2, 2-bit operands, two one-step tiles",
                array_liveness_spec, "cover", 24, "reachable: the last result row leaving in the model's last "
                "cycle (the bound is tight)"),
    *[check for name, options, adds in _ENGINE_BUILDS for check in (
        FormalCheck(f"{name}_streams", "AttentionEngine", f"1x1, L up to 2, d = 1, one head; {adds}",
                    lambda options=options: engine_spec(options), "prove", 4,
                    f"{_STREAM} on every output stream, the same assumed of every input; nothing accepted or "
                    "sent in reset; sizes any constant, start any cycle", slow=len(options) > 0 and
                    "sparse" not in options),
        FormalCheck(f"{name}_cover", "AttentionEngine", f"1x1, L up to 2, d = 1, one head; {adds}",
                    lambda options=options: engine_spec(options, cover=True), "cover", 20,
                    "reachable: a run starts and takes Q and K beats" + (
                        "; a kv_index beat leaves after waiting" if options.get("sparse") else ""),
                    slow=True))],
    FormalCheck("engine_axis_top", "AttentionEngineAxi", "1x1, L up to 2, d = 1, one head",
                lambda: axi_top_spec(lambda: _axi_top("axis")), "prove", 4, _AXI_TOP),
    FormalCheck("engine_axil_top", "AttentionEngineAxiLite", "1x1, L up to 2, d = 1, one head",
                lambda: axi_top_spec(lambda: _axi_top("axil")), "prove", 4,
                f"{_AXI_TOP}; AXI4-Lite one answer per request, in order"),
    FormalCheck("engine_axil_top_cover", "AttentionEngineAxiLite", "1x1, L up to 2, d = 1, one head",
                lambda: axi_top_spec(lambda: _axi_top("axil"), covers=_register_answers), "cover", 6,
                "reachable: a write and a read answered", slow=True),
    FormalCheck("engine_mm_top", "AttentionEngineMM", "1x1, L up to 2, d = 1, one head; 32-bit bus",
                lambda: axi_top_spec(lambda: _axi_top("mm")), "bmc", 12,
                f"{_AXI_TOP} (AXI4-Lite slave and AXI4 master); AXI4-Lite one answer per request, in order",
                slow=True),
    FormalCheck("engine_mm_top_24", "AttentionEngineMM", "1x1, L up to 2, d = 1, one head; 32-bit bus",
                lambda: axi_top_spec(lambda: _axi_top("mm")), "bmc", 24,
                "as engine_mm_top, deep enough for registers written, a start and the DMA's first read bursts",
                slow=True),
    FormalCheck("engine_mm_top_cover", "AttentionEngineMM", "1x1, L up to 2, d = 1, one head; 32-bit bus",
                lambda: axi_top_spec(lambda: _axi_top("mm"), covers=_mm_reads), "cover", 20,
                "reachable: a write and a read answered on AXI4-Lite, an AXI4 read burst taken (registers "
                "written, a start, the DMA reading Q)", slow=True),
    FormalCheck("merge_level", "MergeLevel", "2 lanes, 2-bit keys, runs of 1 beat, send latency 1, banks of 8",
                merge_level_spec, "bmc", 10, _MERGE),
    FormalCheck("merge_level_13", "MergeLevel", "2 lanes, 2-bit keys, runs of 1 beat, send latency 1, banks of 8",
                merge_level_spec, "bmc", 13, f"{_MERGE} (past the cycle the banks fill and credit is withdrawn)",
                slow=True),
    FormalCheck("merge_level_cover", "MergeLevel", "2 lanes, 2-bit keys, runs of 1 beat, send latency 1, banks of 8",
                merge_level_spec, "cover", 14, "reachable: the banks full (credit withdrawn, step 11), a merged "
                "run cut at k and one of every key"),
    FormalCheck("topk_answer", "TopK", "2 lanes, 2-bit signed values, max_n 4, max_k 3", topk_spec, "bmc", 12,
                f"{_STREAM} on both ports; one problem after a reset: pairs largest first, ties to the lower index, "
                "kept lanes first, only the last beat partial, exactly min(k, kept) pairs, then last"),
    FormalCheck("topk_answer_cover", "TopK", "2 lanes, 2-bit signed values, max_n 4, max_k 3", topk_spec, "cover", 12,
                "reachable: an answer cut at k, an answer of every kept value (fewer than k)"),
)

MUTATIONS = (
    Mutation("register_slice_ready", "RegisterSlice", lambda: register_slice_spec(invariants=False), "const1",
             "i__ready", 8, "ready stuck high: a full slice takes a beat and loses one"),
    Mutation("register_slice_read_pointer", "RegisterSlice", lambda: register_slice_spec(invariants=False), "inv",
             "dut.r_ptr", 8, "read pointer inverted: beats leave out of order"),
    Mutation("register_slice_valid", "RegisterSlice", lambda: register_slice_spec(invariants=False), "const1",
             "o__valid", 8, "valid stuck high: a beat sent after reset with nothing inside"),
    Mutation("register_file_slverr", "serve_registers (AXI4-Lite slave)", register_file_spec, "const0",
             "s_axil_bresp", 6, "bresp bit 1 stuck at 0: a write off the map answers OKAY", bit=1),
    Mutation("register_file_read_ready", "serve_registers (AXI4-Lite slave)", register_file_spec, "const1",
             "s_axil_arready", 6, "arready stuck high: a read taken while the last one's answer waits"),
    Mutation("register_file_read_valid", "serve_registers (AXI4-Lite slave)", register_file_spec, "inv",
             "s_axil_rvalid", 6, "rvalid inverted: an answer with no request"),
    Mutation("register_file_read_data", "serve_registers (AXI4-Lite slave)", register_file_spec, "const1",
             "s_axil_rdata", 6, "rdata bit 4 stuck at 1: a register (or a read off the map) read back wrong", bit=4),
    Mutation("credit_fifo_nonempty", "CreditFIFO", credit_fifo_spec, "const1", "dut.nonempty", 12,
             "the memory's nonempty flag stuck high: a beat never written is sent"),
    Mutation("credit_fifo_ring_empty", "CreditFIFO", credit_fifo_spec, "inv", "dut.ring_empty", 12,
             "the ring's empty flag inverted: the output takes the wrong word"),
    Mutation("credit_fifo_write_address", "CreditFIFO", credit_fifo_spec, "const0", "dut.w_ptr_0_0", 12,
             "a write address bit stuck at 0: an entry is overwritten"),
    Mutation("topk_key_order", "TopK", topk_spec, "inv", "dut.in_key0", 12,
             "lane 0's sort key inverted: pairs leave out of order"),
    Mutation("topk_merge_take", "TopK (merge level)", topk_spec, "inv", "dut.level0.take_a0", 12,
             "a merge comparator inverted: the smaller head wins"),
    Mutation("topk_merge_bitonic", "TopK (merge level)", topk_spec, "inv", "dut.level0.merge_s0_swap_0_1", 12,
             "the merged beat's bitonic stage inverted: the lanes of a beat out of order"),
    Mutation("merge_level_take", "MergeLevel", merge_level_spec, "inv", "dut.take_a0", 10,
             "comparator 0 inverted on its own: the smaller head wins, a key is lost from the merged run"),
    Mutation("merge_level_step", "MergeLevel", merge_level_spec, "const1", "dut.step", 10,
             "the merge steps in every cycle: beats leave without the next level's credit"),
    Mutation("topk_limit", "TopK", topk_spec, "const0", "dut.limit", 12,
             "the answer's length limit stuck at 0: the answer is not min(k, kept) pairs"),
    Mutation("systolic_array_valid", "SystolicArray", lambda: stream_rules_spec(_array), "inv",
             "c__valid", 20, "the result stream's valid inverted: a beat after reset, a waiting beat dropped"),
    Mutation("systolic_array_fetch", "SystolicArray", array_liveness_spec, "const0", "dut.results.fetch", 24,
             "the result FIFO never fetches: no result leaves within the cycle model's bound"),
    Mutation("sparse_scheduler_valid", "SparseScheduler", lambda: stream_rules_spec(_scheduler), "const1",
             "tiles__valid", 20, "the tile stream's valid stuck high: a beat during and right after reset"),
    # Slow: listing an engine's mutations takes a minute.
    Mutation("engine_kv_index_hold", "AttentionEngine (sparse)", lambda: engine_spec({"sparse": True}), "const0",
             "dut.core.kv_index_waiting", 24, "the kv_index hold removed (the bug this proof found): a beat "
             "offered is withdrawn when the score-tile FIFO fills behind it", slow=True, port="B"),
    Mutation("engine_o_valid", "AttentionEngine", engine_spec, "inv", "o__valid", 4,
             "O's valid inverted: a beat in reset, a waiting beat dropped", slow=True),
    Mutation("engine_axil_top_bvalid", "AttentionEngineAxiLite", lambda: axi_top_spec(lambda: _axi_top("axil")),
             "const1", "s_axil_bvalid", 4, "bvalid stuck high: an answer in reset and with no request", slow=True),
    Mutation("engine_mm_top_arvalid", "AttentionEngineMM", lambda: axi_top_spec(lambda: _axi_top("mm")),
             "const1", "m_axi_arvalid", 4, "the AXI4 master's arvalid stuck high: a read burst in reset",
             slow=True),
)


def run_check(check: FormalCheck):
    """:func:`attn_rtl.sim.formal.check` of one entry of :data:`CHECKS`."""
    from attn_rtl.sim.formal import check as formal_check

    spec = check.make()
    return formal_check(spec.elaboratable(), name=check.name, mode=check.mode, depth=check.depth, ports=spec.ports)


def run_mutation(mutation: Mutation):
    """The bounded check of a :data:`MUTATIONS` entry's spec with its net broken: ``(command, result)``;
    the result must be FAIL, naming a property of this file."""
    from attn_rtl.sim.formal import check as formal_check
    from attn_rtl.sim.formal import mutations

    spec = mutation.make()
    pattern = rf"-mode {mutation.mode} .*" + (rf"-port {mutation.port} .*" if mutation.port else "")
    pattern += rf"-wire {re.escape(mutation.wire)} "
    if mutation.bit is not None:
        pattern += rf"-wirebit {mutation.bit} "
    found = [line for line in mutations(spec.elaboratable(), ports=spec.ports) if re.search(pattern, line)]
    if not found:
        raise LookupError(f"no {mutation.mode} mutation of {mutation.wire} in {mutation.block}'s model")
    spec = mutation.make()
    return found[0], formal_check(spec.elaboratable(), name=mutation.name, mode="bmc", depth=mutation.depth,
                                  ports=spec.ports, mutation=found[0])


# (Defined last: the line numbers of the properties above are cited in docs/verification.md.)
def _sliding_array():
    from attn_rtl.hdl.systolic_array import SystolicArray
    return SystolicArray(rows=2, cols=2, a_width=2, b_width=2, max_reduction=3, sliding=True)


def _run_mode_constant(spec, dut):
    """The array's ``sliding`` input changes only between runs: a constant of the trace, either mode."""
    spec.m.d.comb += Assume(dut.sliding == AnyConst(1))


def _diagonal_scheduler():
    from attn_rtl.hdl.diagonal_scheduler import DiagonalScheduler
    return DiagonalScheduler(rows=1, cols=2, max_seq_len=4, max_heads=1, max_dilation=2, max_globals=1)
