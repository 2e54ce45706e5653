"""cocotb testbench of :class:`attn_rtl.hdl.engine_mm.AttentionEngineMM`: runs through memory, as a system.

The top's AXI4 master talks to cocotbext-axi's ``AxiRam`` (random pauses on
all five channels), its registers to an ``AxiLiteMaster``.  The whole memory
is first filled with a seeded pattern; per run the bench places Q, K, V and O
(``sim.memory_image.place``, the run's layout and gap), writes the tensors,
programs the registers, starts, and waits for ``irq``.  Then it checks:

- O read back from memory against the golden model, every element;
- every other byte of memory unchanged (the pattern, or the tensors);
- every read and write burst: at most 256 beats, no 4 KB crossing, aligned,
  and each bus word it touches holding a byte of the tensors it may touch
  (Q, K, V for reads, O for writes);
- ``BYTES_READ`` and ``BYTES_WRITTEN`` against the host model, ``CTRL`` DONE.

With ``reset_mid`` the first run is cut by ``aresetn`` once reads are in flight; the next runs must pass.

With ``fuzz`` that many random AXI4-Lite transactions come first (every register of the map, the DMA's
included, and addresses off it and unaligned; random data and strobes) against a shadow of the register
file, every response and read value checked; the registers are then restored and every run is started
with two more STARTs while busy (ignored: one run, its bytes counted once).
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from attn_rtl.sim.golden import Numerics
from attn_rtl.sim.memory_image import (
    LIST_BUFFERS,
    SIDE_BUFFERS,
    burst_problems,
    bytes_moved,
    listed_rows,
    place,
    read_output,
    read_side,
    run_expected,
    side_bytes,
    tensor_bytes,
    write_lists,
    write_tensors,
)
from attn_rtl.sim.progressive import progressive_layer
from attn_rtl.sim.sparse import pattern_from_dict

from .harness import begin, operand_matrix
from .test_engine_axil import random_traffic


def _pauses(rng, probability: float):
    while True:
        yield bool(probability) and rng.random() < probability


class BurstLog:
    """Every address handshake of the master, per channel: ``(addr, beats)``."""

    def __init__(self, dut):
        self.dut, self.reads, self.writes = dut, [], []
        cocotb.start_soon(self._watch())

    async def _watch(self):
        dut = self.dut
        while True:
            await RisingEdge(dut.aclk)
            if str(dut.aresetn.value) != "1":   # in reset (or before it) the master's outputs may be unknown
                continue
            if dut.m_axi_arvalid.value and dut.m_axi_arready.value:
                self.reads.append((int(dut.m_axi_araddr.value), int(dut.m_axi_arlen.value) + 1))
            if dut.m_axi_awvalid.value and dut.m_axi_awready.value:
                self.writes.append((int(dut.m_axi_awaddr.value), int(dut.m_axi_awlen.value) + 1))

    def clear(self):
        self.reads.clear()
        self.writes.clear()


def _state(dut) -> str:
    """Where a stuck run stands (the DMA's counters and the engine's handshakes), for the failure message."""
    parts = []
    for path in ("dma.kv_fetched", "dma.kv_filled", "dma.kv_released", "dma.q_fetched", "dma.q_filled",
                 "dma.q_released", "dma.o_filled", "dma.o_released", "dma.busy", "engine.busy", "engine.done",
                 "engine.error", "dma.q_rows_active", "dma.o_rows_active", "dma.o_out_active", "dma.side_active",
                 "dma.side_sel", "dma.side_req_sent", "dma.side_word", "dma.o_rows_owed", "dma.row_flags_held",
                 "dma.token_importance_held", "dma.head_importance_held", "dma.o_words__valid",
                 "dma.o_out_row_end_held", "dma.writer.words__ready", "dma.writer.req__ready"):
        obj = dut
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
            parts.append(f"{path} {int(obj.value)}")
        except (AttributeError, ValueError):
            parts.append(f"{path} ?")
    for name in ("q", "k", "v", "o"):
        try:
            parts.append(f"{name} {int(getattr(dut.engine, name + '__valid').value)}/"
                         f"{int(getattr(dut.engine, name + '__ready').value)}")
        except (AttributeError, ValueError):
            pass
    return ", ".join(parts)


class _HostTraffic:
    """:func:`~attn_rtl.tb.test_engine_axil.random_traffic`'s master on cocotbext-axi's ``AxiLiteMaster``,
    one transaction at a time: a write's strobes as writes of their contiguous byte runs (all answered
    alike), a read of the whole word."""

    def __init__(self, host):
        self.host = host

    @staticmethod
    def write(addr: int, data: int, strb: int) -> dict:
        return dict(kind="write", addr=addr, data=data, strb=strb)

    @staticmethod
    def read(addr: int) -> dict:
        return dict(kind="read", addr=addr)

    async def finish(self, txns):
        for t in txns:
            word = t["addr"] & ~3
            if t["kind"] == "read":
                answer = await self.host.read(word, 4)
                t.update(resp=int(answer.resp), data=int.from_bytes(answer.data, "little"))
                continue
            data, answers, lo = t["data"].to_bytes(4, "little"), set(), None
            for byte in range(5):
                if byte < 4 and t["strb"] >> byte & 1:
                    lo = byte if lo is None else lo
                elif lo is not None:
                    answers.add(int((await self.host.write(word + lo, data[lo:byte])).resp))
                    lo = None
            t["resp"] = answers.pop() if len(answers) == 1 else -1
        return txns


async def _register_fuzz(bench, cfg, rng) -> None:
    """``cfg["fuzz"]`` random transactions against a shadow of the register file, then every RW register
    back to its value before them."""
    from types import SimpleNamespace

    from attn_rtl.hdl.engine_axil import REGISTER_MAP_ID

    registers = [SimpleNamespace(name=n, offset=o, access=a, bits=b) for n, o, a, b in cfg["register_map"]]
    top = SimpleNamespace(registers=registers, addr_width=cfg["register_addr_width"])
    rw = [r for r in registers if r.access == "RW"]
    traffic = _HostTraffic(bench.host)
    before = [t["data"] for t in await traffic.finish([traffic.read(r.offset) for r in rw])]
    shadow = {r.name: value for r, value in zip(rw, before)}
    fixed = {r.name: None for r in registers if r.access != "RW"} | {"ID": REGISTER_MAP_ID}
    await random_traffic(traffic, traffic.finish, bench.report, rng, top, shadow, fixed, cfg["fuzz"], min_strobe=1)
    for r, value in zip(rw, before):
        await bench.host.write_dword(r.offset, value)


async def _reset(dut, cycles: int = 3):
    dut.aresetn.value = 0
    await ClockCycles(dut.aclk, cycles)
    dut.aresetn.value = 1
    await ClockCycles(dut.aclk, 3)


class MemoryBench:
    """The top, its AXI4 memory (random pauses on all five channels), the register host, the burst log and
    the image of what memory must hold."""

    def __init__(self, dut, cfg, report, rng):
        self.dut, self.cfg, self.report, self.rng = dut, cfg, report, rng
        self.regs, self.bus_bytes, self.size = cfg["registers"], cfg["bus_width"] // 8, cfg["memory_bytes"]
        self.nm = Numerics.coerce(cfg["numerics"])
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.aclk, dut.aresetn, reset_active_level=False,
                          size=self.size)
        for channel in (self.ram.read_if.ar_channel, self.ram.read_if.r_channel, self.ram.write_if.aw_channel,
                        self.ram.write_if.w_channel, self.ram.write_if.b_channel):
            channel.set_pause_generator(_pauses(rng, cfg["pause"]))
        self.host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.aclk, dut.aresetn,
                                  reset_active_level=False)
        self.log = BurstLog(dut)
        self.image = rng.integers(0, 256, self.size, dtype=np.uint8)
        self.cycles = []

    def store(self, placements):
        """Copy the image's bytes of ``placements`` into the memory."""
        for t in placements:
            lo, hi = int(t.byte_addresses().min()), t.end
            self.ram.write(lo, self.image[lo:hi].tobytes())

    def golden(self, q, k, v, run: dict, kv_heads: int, msb_bits: int, ranked: bool):
        """O and the side buffers' values of a run over ``q, k, v`` (as computed)."""
        cfg = self.cfg
        return run_expected(q, k, v, mult=cfg["scale_mult"], shift=cfg["scale_shift"], nm=self.nm, rows=cfg["rows"],
                            cols=cfg["cols"], kv_heads=kv_heads, msb_bits=msb_bits, ranked=ranked,
                            threshold=run["threshold"] if cfg["row_flags"] else None,
                            pattern=pattern_from_dict(run["pattern"]) if "pattern" in run else None)

    async def start(self, values: dict) -> None:
        for name, value in values.items():
            await self.host.write_dword(self.regs[name], value)
        self.log.clear()
        await self.host.write_dword(self.regs["CTRL"], 1)
        if self.cfg.get("fuzz"):   # STARTs while busy are ignored
            for _ in range(2):
                await self.host.write_dword(self.regs["CTRL"], 1)

    async def wait_done(self, label: str) -> bool:
        dut, cfg = self.dut, self.cfg
        started = cocotb.utils.get_sim_time("ns")
        for _ in range(cfg["timeout_cycles"]):
            await RisingEdge(dut.aclk)
            if dut.irq.value:
                self.cycles.append(int((cocotb.utils.get_sim_time("ns") - started) // 10))
                return True
        self.report.check(False, f"{label}: no irq after {cfg['timeout_cycles']} cycles ({len(self.log.reads)} "
                                 f"read and {len(self.log.writes)} write bursts; {_state(dut)})")
        return False

    async def check(self, label: str, layout, o_rows, expected_o, side: dict, moved_expected) -> None:
        """After a run: every burst, O's computed rows and the side buffers, every other byte, CTRL, counters."""
        report, bus_bytes = self.report, self.bus_bytes
        for what, bursts, names in (("read", self.log.reads, ("q", "k", "v", *LIST_BUFFERS)),
                                    ("write", self.log.writes, ("o", *SIDE_BUFFERS))):
            allowed = set((tensor_bytes(layout, names) // bus_bytes).tolist())
            problems = [p for addr, beats in bursts for p in burst_problems(addr, beats, bus_bytes, allowed)]
            report.check(not problems, f"{label}: {what} bursts: {'; '.join(problems[:3])}")
        memory = np.frombuffer(self.ram.read(0, self.size), np.uint8)
        report.compare(f"{label} O", read_output(memory, layout)[o_rows], expected_o)
        self.image[layout.o.byte_addresses()[o_rows]] = (expected_o & 0xFF).astype(np.uint8)
        for name, values in side.items():
            placement = getattr(layout, name)
            report.compare(f"{label} {name}", read_side(memory, placement),
                           np.reshape(values, (placement.heads, placement.rows)))
            self.image[placement.byte_addresses()] = side_bytes(values, placement)
        changed = np.nonzero(memory != self.image)[0]
        report.check(changed.size == 0, f"{label}: {changed.size} bytes outside O changed or O wrong "
                                        f"(first at 0x{int(changed[0]) if changed.size else 0:x})")
        ctrl = await self.host.read_dword(self.regs["CTRL"])
        report.check(ctrl & 0x3E == 0x04, f"{label}: CTRL 0x{ctrl:x}, expected DONE only")
        moved = (await self.host.read_dword(self.regs["BYTES_READ"]),
                 await self.host.read_dword(self.regs["BYTES_WRITTEN"]))
        report.check(moved == tuple(moved_expected), f"{label}: bytes read, written {moved}, "
                                                     f"expected {tuple(moved_expected)}")
        return memory


def _run_values(cfg, layout, computed, kv_heads, d, run, lists, ranked) -> dict:
    values = dict(SEQ_LEN=computed[2], HEADS=computed[0], KV_HEADS=kv_heads, QUERY_LEN=computed[1], HEAD_DIM=d,
                  SCALE_MULT=cfg["scale_mult"], SCALE_SHIFT=cfg["scale_shift"], **layout.registers())
    if cfg["importance"] or cfg["row_flags"]:
        values["LISTS"] = lists
    if cfg["importance"]:
        values["IMPORTANCE"] = int(ranked)
    if cfg["row_flags"]:
        values["THRESHOLD"] = run["threshold"]
    values.update(run.get("pattern_registers", {}))
    return values


@cocotb.test()
async def memory_mapped_runs(dut):
    cfg, report, rng = begin(dut, "runs")
    cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())
    bench = MemoryBench(dut, cfg, report, rng)
    await _reset(dut)
    bench.ram.write(0, bench.image.tobytes())
    if cfg.get("fuzz"):
        await _register_fuzz(bench, cfg, rng)
    nm = bench.nm
    for n, run in enumerate(cfg["runs"]):
        heads, kv_heads, q_len, kv_len, d = (run[k] for k in ("heads", "kv_heads", "query_len", "seq_len",
                                                             "head_dim"))
        ranked, msb_bits = bool(run.get("importance")), run.get("k_msb_bits", 8)
        # Lists: bit 0 Q and O rows, bit 1 K and V rows by the token list, bit 2 heads by the head list.
        lists = run.get("lists", 0)
        token_list, head_list = run.get("token_list"), run.get("head_list")
        rows = listed_rows(lists, token_list, head_list, heads=heads, q_len=q_len, kv_len=kv_len)
        computed = rows.computed
        placing = dict(heads=heads, kv_heads=kv_heads, q_len=q_len, kv_len=kv_len, head_dim=d, layout=run["layout"],
                       base=run["base"], gap=run["gap"], row_flags=cfg["row_flags"])
        layout = place(**placing, importance_bytes=tuple(cfg["importance_bytes"]) if ranked else None,
                       k_msb_bits=msb_bits, lists=(rows.token_entries, rows.head_entries), computed=computed)
        full_k = place(**placing) if run.get("recompute") else None   # the recomputation's K, in full
        if max(layout.end, full_k.end if full_k else 0) > bench.size:
            raise ValueError(f"run {n} needs {layout.end} bytes of memory, the bench has {bench.size}")
        kind = run.get("operands", "random")
        q = operand_matrix(rng, (heads, q_len, d), nm.data_width, True, kind)
        k = operand_matrix(rng, (kv_heads, kv_len, d), nm.data_width, True, kind)
        v = operand_matrix(rng, (kv_heads, kv_len, d), nm.data_width, True, kind)
        if full_k is not None:
            write_tensors(bench.image, full_k, q, k, v)
            bench.store([full_k.k])
        write_tensors(bench.image, layout, q, k, v)
        write_lists(bench.image, layout, token_list if rows.token_entries else None,
                    head_list if rows.head_entries else None)
        bench.store(layout.placements(("q", "k", "v", *LIST_BUFFERS)))
        # The run computes the listed rows and heads (lists take ungrouped heads).
        listed = rows.gather(q, k, v) if lists else (q, k, v)
        run_kv_heads = computed[0] if lists else kv_heads

        values = _run_values(cfg, layout, computed, run_kv_heads, d, run, lists, ranked)
        # A deliberately wrong register (the memory-safety checks must catch what it does).
        values.update(run.get("override", {}))
        await bench.start(values)
        if cfg.get("reset_mid") and n == 0:
            # Cut the run once reads are in flight, then go on: the next runs must be clean.
            for _ in range(10_000):
                await RisingEdge(dut.aclk)
                if len(bench.log.reads) >= 3:
                    break
            await _reset(dut)
            bench.image = np.frombuffer(bench.ram.read(0, bench.size), np.uint8).copy()   # what the cut run wrote
            continue
        if run.get("refused"):
            # A runtime value out of range: the start is refused, the DMA never moves.
            await ClockCycles(dut.aclk, 200)
            ctrl = await bench.host.read_dword(cfg["registers"]["CTRL"])
            report.check(ctrl & 0x0E == 0x08, f"run {n}: CTRL 0x{ctrl:x} after a refused start, expected ERROR only")
            report.check(not bench.log.reads and not bench.log.writes and not dut.irq.value,
                         f"run {n}: a refused start moved data ({len(bench.log.reads)} reads, "
                         f"{len(bench.log.writes)} writes)")
            continue
        if not await bench.wait_done(f"run {n}"):
            break
        expected, side = bench.golden(*listed, run, run_kv_heads, msb_bits, ranked)
        memory = await bench.check(f"run {n}", layout, np.ix_(rows.heads, rows.queries), expected, side,
                                   (run["bytes_read"], run["bytes_written"]))
        dut._log.info("run %d (%s, H %d/%d, L %d, q %d, d %d): %d cycles, %d reads, %d writes", n, run["layout"],
                      heads, kv_heads, kv_len, q_len, d, bench.cycles[-1], len(bench.log.reads),
                      len(bench.log.writes))
        if run.get("recompute"):
            await _recompute_flagged(bench, n, run, full_k, read_side(memory, layout.row_flags), q, k, v)
    report.cycles = bench.cycles[-1] if bench.cycles else None
    report.extra["run_cycles"] = bench.cycles
    report.finish()


async def _recompute_flagged(bench, n, run, full_k, flags, q, k, v):
    """Progressive quantization's second step, as a driver does it: per head, the rows the first run
    flagged (read from memory) again with K in full (its int8 tensor), by a query list and a head list;
    O in memory must then be the progressive layer's (:func:`attn_rtl.sim.progressive.progressive_layer`)."""
    cfg = bench.cfg
    heads, seq_len, d = k.shape
    for h in range(heads):
        again = np.flatnonzero(flags[h])
        if not again.size:
            continue
        computed = (1, again.size, seq_len)
        layout = place(heads=heads, kv_heads=heads, q_len=q.shape[1], kv_len=seq_len, head_dim=d,
                       layout=run["layout"], base=run["base"], gap=run["gap"], row_flags=True,
                       lists=(again.size, 1), computed=computed)
        write_lists(bench.image, layout, again, [h])
        bench.store(layout.placements(LIST_BUFFERS))
        await bench.start(_run_values(cfg, layout, computed, 1, d, run, 0b101, False))
        label = f"run {n} recomputing head {h}"
        if not await bench.wait_done(label):
            return
        expected, side = bench.golden(q[h:h + 1, again], k[h:h + 1], v[h:h + 1], run, 1, 8, False)
        moved = bytes_moved(heads=1, kv_heads=1, q_len=again.size, kv_len=seq_len, head_dim=d, rows=cfg["rows"],
                            cols=cfg["cols"], kv_slots=cfg["kv_slots"], row_flags=True, list_entries=again.size + 1)
        await bench.check(label, layout, np.ix_([h], again), expected, side, moved)
    memory = np.frombuffer(bench.ram.read(0, bench.size), np.uint8)
    layer = progressive_layer(q, k, v, cfg["scale_mult"], cfg["scale_shift"], bench.nm, cfg["rows"], cfg["cols"],
                              msb_bits=run["k_msb_bits"], threshold=run["threshold"])
    bench.report.compare(f"run {n} progressive layer O", read_output(memory, full_k), layer.o)
