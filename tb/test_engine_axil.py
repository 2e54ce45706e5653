"""cocotb testbench of :class:`attn_rtl.hdl.engine_axil.AttentionEngineAxiLite`: the register file, then runs.

Through an AXI4-Lite master with random delays on every channel, the bench
reads ``ID``, ``VERSION`` and ``SHAPE`` against the register map, checks
SLVERR for accesses outside the map and writes to read-only registers, checks
``wstrb`` byte merging and read-back of every RW register, then for each of
``cfg["runs"]`` writes the runtime registers, starts with ``CTRL``, streams
Q, K and V (random idle cycles), takes O (random backpressure), polls
``CTRL`` until DONE and compares O and ``CYCLES`` with the golden model and
the bench's own count.

With ``cfg["fuzz"]`` it also sends that many random transactions first (any
address: mapped, off the map, unaligned; random data and ``wstrb``) against a
shadow of the register file (every response code and read value checked),
then starts with each runtime value just outside its documented range
(ERROR, no run, no O beat), and during every run writes random values to the
runtime registers and START again (ignored while busy: the run keeps the
values it took at start and stays bit-exact).
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock

from attn_rtl.hdl.engine import ENGINE_DEFAULTS
from attn_rtl.hdl.engine_axil import REGISTER_MAP_ID, REGISTER_MAP_VERSION, AttentionEngineAxiLite
from attn_rtl.sim.engine_stream import engine_beats, engine_output, output_beats
from attn_rtl.sim.golden import Numerics

from .harness import begin, operand_matrix
from .packing import pack, unpack
from .streams import StreamBench, StreamSink, StreamSource

OKAY, SLVERR = 0, 2


class AxiLiteMaster:
    """Queued AXI4-Lite writes and reads, one at a time, each channel's valid and ready delayed at random.

    ``write`` and ``read`` queue a transaction and return a dict that gets ``resp`` (and ``data``)
    when its response is taken.
    """

    def __init__(self, dut, rng, delay: float):
        self.dut, self.rng, self.delay = dut, rng, delay
        self.queue, self.current = [], None
        for name in ("awvalid", "wvalid", "bready", "arvalid", "rready"):
            getattr(dut, f"s_axil_{name}").value = 0

    def write(self, addr: int, data: int, strb: int = 0xF) -> dict:
        return self._queue(dict(kind="write", addr=addr, data=data, strb=strb))

    def read(self, addr: int) -> dict:
        return self._queue(dict(kind="read", addr=addr))

    def _queue(self, txn: dict) -> dict:
        txn.update(addr_done=False, data_done=False, resp=None)
        self.queue.append(txn)
        return txn

    @property
    def idle(self) -> bool:
        return self.current is None and not self.queue

    def _go(self) -> bool:
        return not (self.delay and self.rng.random() < self.delay)

    def drive(self, cycle: int) -> None:
        d = self.dut
        if self.current is None and self.queue:
            self.current = self.queue.pop(0)
        t = self.current
        write = t is not None and t["kind"] == "write"
        read = t is not None and t["kind"] == "read"
        # A valid, once raised, stays until taken (AXI): only raising it waits at random.
        aw = write and not t["addr_done"] and (int(d.s_axil_awvalid.value) or self._go())
        w = write and not t["data_done"] and (int(d.s_axil_wvalid.value) or self._go())
        ar = read and not t["addr_done"] and (int(d.s_axil_arvalid.value) or self._go())
        d.s_axil_awvalid.value, d.s_axil_wvalid.value, d.s_axil_arvalid.value = int(aw), int(w), int(ar)
        if write:
            d.s_axil_awaddr.value, d.s_axil_wdata.value, d.s_axil_wstrb.value = t["addr"], t["data"], t["strb"]
        if read:
            d.s_axil_araddr.value = t["addr"]
        d.s_axil_bready.value = int(self._go())
        d.s_axil_rready.value = int(self._go())

    def sample(self, cycle: int) -> None:
        d, t = self.dut, self.current
        if t is None:
            return
        if t["kind"] == "write":
            if int(d.s_axil_awvalid.value) and int(d.s_axil_awready.value):
                t["addr_done"] = True
            if int(d.s_axil_wvalid.value) and int(d.s_axil_wready.value):
                t["data_done"] = True
            if int(d.s_axil_bvalid.value) and int(d.s_axil_bready.value):
                t["resp"], t["cycle"] = int(d.s_axil_bresp.value), cycle
                self.current = None
        else:
            if int(d.s_axil_arvalid.value) and int(d.s_axil_arready.value):
                t["addr_done"] = True
            if int(d.s_axil_rvalid.value) and int(d.s_axil_rready.value):
                t["resp"], t["data"], t["cycle"] = int(d.s_axil_rresp.value), int(d.s_axil_rdata.value), cycle
                self.current = None


def _merged(old: int, data: int, strb: int, bits: int) -> int:
    """A register after a write of ``data`` under byte strobes ``strb`` (its ``bits`` kept)."""
    mask = sum(0xFF << (8 * b) for b in range(4) if strb >> b & 1)
    return ((old & ~mask) | (data & mask)) & ((1 << bits) - 1)


async def random_traffic(master, finish, report, rng, top, shadow: dict, fixed: dict, count: int,
                         min_strobe: int = 0) -> None:
    """``count`` random reads and writes anywhere in the address space (START never set), each answer
    checked against ``shadow`` (RW register values, updated by the writes) and ``fixed`` (read-only values;
    ``None``: not compared); write strobes from ``min_strobe`` to 0b1111."""
    by_word = {r.offset >> 2: r for r in top.registers}
    last = max(by_word) << 2
    txns = []
    for _ in range(count):
        pick = rng.random()
        if pick < 0.6:
            addr = int(rng.choice(sorted(by_word))) << 2 | int(rng.integers(0, 4) if rng.random() < 0.2 else 0)
        else:
            addr = int(rng.integers(last + 4, 1 << top.addr_width)) & ~3
        reg = by_word.get(addr >> 2)
        if rng.random() < 0.5:
            data, strb = int(rng.integers(0, 1 << 32)), int(rng.integers(min_strobe, 16))
            if reg is not None and reg.name == "CTRL":
                data &= ~1   # no START here: a run would wait for streams
            ok = reg is not None and reg.access in ("RW", "W1S/RO")
            txns.append((master.write(addr, data, strb), ok, None))
            if reg is not None and reg.access == "RW":
                shadow[reg.name] = _merged(shadow[reg.name], data, strb, reg.bits)
        else:
            expected = 0 if reg is None else shadow.get(reg.name, fixed.get(reg.name))
            txns.append((master.read(addr), reg is not None, expected))
    await finish([t for t, _, _ in txns])
    for n, (t, ok, expected) in enumerate(txns):
        where = f"random {t['kind']} {n} at 0x{t['addr']:x}"
        report.compare(f"{where}: resp", [t["resp"]], [OKAY if ok else SLVERR])
        if t["kind"] == "read" and expected is not None:
            report.compare(f"{where}: data", [t["data"]], [expected])


def out_of_range_starts(cfg: dict, nm: Numerics) -> list[dict]:
    """Runtime values just outside the ranges docs/engine.md gives, each on top of a valid dense run (a
    value wider than its register is left out by the caller)."""
    L, H, d = cfg["max_seq_len"], cfg["max_heads"], cfg["max_head_dim"]
    cases = [dict(SEQ_LEN=0), dict(SEQ_LEN=L + 1), dict(HEADS=0), dict(HEADS=H + 1), dict(HEAD_DIM=0),
             dict(HEAD_DIM=d + 1), dict(SCALE_SHIFT=nm.max_shift + 1), dict(QUERY_LEN=3), dict(KV_HEADS=H + 1)]
    not_dividing = [kv for kv in range(2, H) if H % kv]
    if not_dividing:
        cases.append(dict(HEADS=H, KV_HEADS=not_dividing[0]))
    if cfg["sparse"]:
        window = dict(PATTERN=1, WINDOW=1)
        grid = dict(PATTERN=3, GRID_H=1, GRID_W=2, WINDOW_H=1, WINDOW_W=1)
        cases += [dict(PATTERN=6), dict(PATTERN=7), dict(window, WINDOW=0), dict(PATTERN=5, WINDOW=0),
                  dict(PATTERN=2, WINDOW=1, DILATION=0), dict(PATTERN=2, WINDOW=1, DILATION=cfg["max_dilation"] + 1),
                  dict(grid, GRID_W=1), dict(grid, GRID_H=2), dict(grid, WINDOW_H=0), dict(grid, WINDOW_W=0),
                  dict(GLOBAL_COUNT=cfg["max_globals"] + 1), dict(GLOBAL_COUNT=1, GLOBAL_TOKEN_0=2),
                  dict(window, QUERY_LEN=1)]   # fewer queries than keys: dense and causal patterns only
    if H >= 2 and cfg["importance"]:
        cases.append(dict(HEADS=2, KV_HEADS=1, IMPORTANCE=1))   # importance runs take ungrouped heads
    if H >= 2 and cfg["row_flags"]:
        cases.append(dict(HEADS=2, KV_HEADS=1))                 # so do row flags
    return cases


@cocotb.test()
async def register_file_and_runs(dut):
    cfg, report, rng = begin(dut, "runs")
    nm = Numerics.from_dict(cfg["numerics"])
    rows, cols, w = cfg["rows"], cfg["cols"], nm.data_width
    params = {k: cfg[k] for k in ENGINE_DEFAULTS}
    top = AttentionEngineAxiLite(**params)
    top._MustUse__silence = True   # built for its register map only
    regs = {r.name: r for r in top.registers}

    Clock(dut.aclk, 10, unit="ns").start()
    master = AxiLiteMaster(dut, rng, cfg["idle"])
    sources = {name: StreamSource(dut, name, rng, idle=cfg["idle"], axis=f"s_axis_{name}") for name in "qkv"}
    sink = StreamSink(dut, "o", rng, stall=cfg["stall"], axis="m_axis_o")
    for side in ("kv_index", "token_importance", "head_importance", "row_flags"):
        if hasattr(dut, f"m_axis_{side}_tready"):   # taken as they come: this bench checks O only
            getattr(dut, f"m_axis_{side}_tready").value = 1
    bench = StreamBench(dut, dut.aclk, dut.aresetn, [master, *sources.values(), sink], reset_active_low=True)
    await bench.reset()

    async def finish(txns):
        await bench.run(lambda: master.idle, 200 * len(txns) + 200)
        return txns

    async def settled_ctrl():
        """CTRL once BUSY falls: a start is checked for a few cycles first (BUSY meanwhile)."""
        for _ in range(20):
            status = (await finish([master.read(regs["CTRL"].offset)]))[0]
            if not status["data"] & 0b10:
                break
        return status

    # --- identification, errors, strobes, read-back.
    ident = await finish([master.read(regs["ID"].offset), master.read(regs["SHAPE"].offset)])
    report.compare("ID", [ident[0]["data"], ident[0]["resp"]], [REGISTER_MAP_ID, OKAY])
    features = int(params["sparse"]) | int(params["importance"]) << 1 | int(params["row_flags"]) << 2
    report.compare("SHAPE", [ident[1]["data"]], [rows | cols << 8 | features << 16])
    unmapped = top.registers[-1].offset + 4
    errors = await finish([master.write(regs["ID"].offset, 0), master.write(regs["CYCLES"].offset, 5),
                           master.write(unmapped, 1), master.read(unmapped), master.read(regs["ID"].offset)])
    report.compare("SLVERR", [t["resp"] for t in errors[:4]] + [errors[3]["data"], errors[4]["data"]],
                   [SLVERR] * 4 + [0, REGISTER_MAP_ID])
    rw = [r for r in top.registers if r.access == "RW"]
    values = {r.name: int(rng.integers(0, 1 << r.bits)) for r in rw}
    await finish([master.write(r.offset, values[r.name] | (0xFFFFFFFF << r.bits) & 0xFFFFFFFF) for r in rw])
    merged = await finish([master.write(regs["SCALE_MULT"].offset, 0xA5A5A5A5, strb=0b0010),
                           master.read(regs["SCALE_MULT"].offset)])
    mult_mask = (1 << regs["SCALE_MULT"].bits) - 1
    expect_mult = ((values["SCALE_MULT"] & ~0xFF00) | 0xA500) & mult_mask
    values["SCALE_MULT"] = expect_mult
    back = await finish([master.read(r.offset) for r in rw])
    report.compare("read-back", [t["data"] for t in back], [values[r.name] for r in rw])
    report.compare("wstrb merge", [merged[0]["resp"], merged[1]["data"]], [OKAY, expect_mult])

    if cfg.get("fuzz"):
        fixed = dict(ID=REGISTER_MAP_ID, VERSION=REGISTER_MAP_VERSION, SHAPE=rows | cols << 8 | features << 16,
                     CTRL=0, CYCLES=None)
        await random_traffic(master, finish, report, rng, top, values, fixed, cfg["fuzz"])
        baseline = dict(SEQ_LEN=2, HEADS=1, KV_HEADS=0, QUERY_LEN=0, HEAD_DIM=1, SCALE_SHIFT=0)
        if params["sparse"]:
            baseline.update(PATTERN=0, GLOBAL_COUNT=0)
        if params["importance"]:
            baseline["IMPORTANCE"] = 0
        # Bits above a register's width are ignored on write (docs): only values it can hold are tried.
        for case in [c for c in out_of_range_starts(cfg, nm) if all(v < 1 << regs[n].bits for n, v in c.items())]:
            writes = {**baseline, **case}
            await finish([master.write(regs[name].offset, value) for name, value in writes.items()])
            await finish([master.write(regs["CTRL"].offset, 1)])
            status = await settled_ctrl()
            settle = bench.cycle + 50   # room for a wrongly started run's first O beat
            await bench.run(lambda: bench.cycle >= settle, 60)
            dut._log.info("start with %s: CTRL 0x%x", case, status["data"])
            report.compare(f"start with {case}: CTRL (ERROR, not busy, not done)", [status["data"]], [0b1000])
            report.check(not sink.beats, f"start with {case}: {len(sink.beats)} O beats from a refused start")

    # --- runs through the registers.
    results = []
    for index, run in enumerate(cfg["runs"]):
        shape = (run["heads"], run["seq_len"], run["head_dim"])
        q, k, v = (operand_matrix(rng, shape, w, True, run.get("operands", "random")) for _ in range(3))
        beats = engine_beats(q, k, v, rows, cols)
        # QUERY_LEN 0 stands for SEQ_LEN; KV_HEADS is written out.
        writes = [("SEQ_LEN", run["seq_len"]), ("HEADS", run["heads"]), ("KV_HEADS", run["heads"]),
                  ("QUERY_LEN", 0), ("HEAD_DIM", run["head_dim"]),
                  ("SCALE_MULT", cfg["scale_mult"]), ("SCALE_SHIFT", cfg["scale_shift"])]
        if params["sparse"]:
            writes.append(("PATTERN", 0))
            writes.append(("GLOBAL_COUNT", 0))
        if params["importance"]:
            writes.append(("IMPORTANCE", 0))
        if params["row_flags"]:
            writes.append(("THRESHOLD", 0))
        await finish([master.write(regs[name].offset, value) for name, value in writes])
        sink.beats.clear()
        await finish([master.write(regs["CTRL"].offset, 1)])
        # While busy: random values into the registers the run took at start, and START again (ignored).
        busy_writes = []
        if cfg.get("fuzz"):
            for _ in range(6):
                name = writes[int(rng.integers(0, len(writes)))][0]
                busy_writes.append(master.write(regs[name].offset, int(rng.integers(0, 1 << 32)),
                                                int(rng.integers(1, 16))))
                busy_writes.append(master.write(regs["CTRL"].offset, 1))
        for name in "qkv":
            sources[name].first_accept_cycle = None
            sources[name].send([pack(b, w) for b in getattr(beats, name)])
        expected, _ = output_beats(engine_output(q, k, v, cfg["scale_mult"], cfg["scale_shift"], nm, cols), rows, cols)
        budget = 20 * (len(beats.k) + len(beats.v) + len(beats.q)) + 2000
        await bench.run(lambda: len(sink.beats) >= len(expected), budget)
        status = {}
        for _ in range(100):
            status = (await finish([master.read(regs["CTRL"].offset)]))[0]
            if status["data"] & 0b100:
                break
        cycles = (await finish([master.read(regs["CYCLES"].offset)]))[0]["data"]
        report.compare(f"run {index} CTRL", [status["data"]], [0b100])     # done, not busy, no error
        late = [t for t in busy_writes if t["cycle"] > sink.last_accept_cycle]
        report.check(not late, f"run {index}: {len(late)} writes meant for a busy engine landed after its last "
                               "O beat (the run is too short for this test)")
        report.compare(f"run {index} writes while busy", [t["resp"] for t in busy_writes], [OKAY] * len(busy_writes))
        got = np.array([unpack(b, cols, w, True) for b in sink.beats[:len(expected)]])
        report.compare(f"run {index} o", got.reshape(expected.shape) if len(got) == len(expected) else got, expected)
        bench_cycles = sink.last_accept_cycle - min(s.first_accept_cycle for s in sources.values()) + 1
        report.check(bench_cycles <= cycles <= bench_cycles + 40,
                     f"run {index}: CYCLES {cycles}, the bench counted {bench_cycles} from first input to last output")
        results.append(dict(run, cycles=cycles))

    # A start with seq_len 0 raises ERROR and starts nothing.  The engine checks its registers for a
    # few cycles first (BUSY meanwhile): a read may land inside that window, so poll until BUSY falls.
    await finish([master.write(regs["SEQ_LEN"].offset, 0), master.write(regs["CTRL"].offset, 1)])
    status = await settled_ctrl()
    report.compare("ERROR after seq_len 0", [status["data"] & 0b1110], [0b1000])
    report.extra.update(runs=results)
    report.finish()
