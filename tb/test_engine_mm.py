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
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from attn_rtl.sim.decoder import stack_queries, unstack_queries
from attn_rtl.sim.engine_stream import engine_output, ranked_output, row_flags
from attn_rtl.sim.golden import Numerics
from attn_rtl.sim.memory_image import (LIST_BUFFERS, SIDE_BUFFERS, burst_problems, place, read_output, read_side,
                                       side_bytes, tensor_bytes, write_lists, write_tensors)
from attn_rtl.sim.progressive import msb_only
from attn_rtl.sim.sparse import allowed_mask, pattern_from_dict, scheduled_tiles

from .harness import begin, operand_matrix


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
                 "engine.error", "dma.q_rows_active", "dma.o_rows_active", "dma.o_out_active"):
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


async def _reset(dut, cycles: int = 3):
    dut.aresetn.value = 0
    await ClockCycles(dut.aclk, cycles)
    dut.aresetn.value = 1
    await ClockCycles(dut.aclk, 3)


@cocotb.test()
async def memory_mapped_runs(dut):
    cfg, report, rng = begin(dut, "runs")
    regs, bus_bytes = cfg["registers"], cfg["bus_width"] // 8
    nm = Numerics.coerce(cfg["numerics"])
    cocotb.start_soon(Clock(dut.aclk, 10, unit="ns").start())
    size = cfg["memory_bytes"]
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.aclk, dut.aresetn, reset_active_level=False, size=size)
    for channel in (ram.read_if.ar_channel, ram.read_if.r_channel, ram.write_if.aw_channel,
                    ram.write_if.w_channel, ram.write_if.b_channel):
        channel.set_pause_generator(_pauses(rng, cfg["pause"]))
    host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.aclk, dut.aresetn, reset_active_level=False)
    log = BurstLog(dut)
    await _reset(dut)

    pattern = rng.integers(0, 256, size, dtype=np.uint8)
    ram.write(0, pattern.tobytes())
    image = pattern.copy()
    cycles = []
    for n, run in enumerate(cfg["runs"]):
        heads, kv_heads, q_len, kv_len, d = (run[k] for k in ("heads", "kv_heads", "query_len", "seq_len",
                                                             "head_dim"))
        ranked, msb_bits = bool(run.get("importance")), run.get("k_msb_bits", 8)
        # Lists: bit 0 Q and O rows, bit 1 K and V rows by the token list, bit 2 heads by the head list.
        lists = run.get("lists", 0)
        token_list, head_list = (np.asarray(run.get(k, []), np.int64) for k in ("token_list", "head_list"))
        q_rows = token_list if lists & 1 else np.arange(q_len)
        kv_rows = token_list if lists & 2 else np.arange(kv_len)
        head_rows = head_list if lists & 4 else np.arange(heads)
        computed = (len(head_rows), len(q_rows), len(kv_rows))
        layout = place(heads=heads, kv_heads=kv_heads, q_len=q_len, kv_len=kv_len, head_dim=d,
                       layout=run["layout"], base=run["base"], gap=run["gap"], row_flags=cfg["row_flags"],
                       importance_bytes=tuple(cfg["importance_bytes"]) if ranked else None, k_msb_bits=msb_bits,
                       lists=(len(token_list) if lists & 3 else 0, len(head_list) if lists & 4 else 0),
                       computed=computed)
        if layout.end > size:
            raise ValueError(f"run {n} needs {layout.end} bytes of memory, the bench has {size}")
        kind = run.get("operands", "random")
        q = operand_matrix(rng, (heads, q_len, d), nm.data_width, True, kind)
        k = operand_matrix(rng, (kv_heads, kv_len, d), nm.data_width, True, kind)
        v = operand_matrix(rng, (kv_heads, kv_len, d), nm.data_width, True, kind)
        write_tensors(image, layout, q, k, v)
        write_lists(image, layout, token_list if lists & 3 else None, head_list if lists & 4 else None)
        for t in layout.placements(("q", "k", "v", *LIST_BUFFERS)):
            lo, hi = int(t.byte_addresses().min()), t.end
            ram.write(lo, image[lo:hi].tobytes())
        if lists:
            # The run computes the listed rows and heads: the golden model takes them gathered.
            q, k, v = q[head_rows][:, q_rows], k[head_rows][:, kv_rows], v[head_rows][:, kv_rows]
            heads = kv_heads = computed[0]

        values = dict(SEQ_LEN=computed[2], HEADS=computed[0], KV_HEADS=kv_heads, QUERY_LEN=computed[1], HEAD_DIM=d,
                      SCALE_MULT=cfg["scale_mult"], SCALE_SHIFT=cfg["scale_shift"], **layout.registers())
        if cfg["importance"] or cfg["row_flags"]:
            values["LISTS"] = lists
        if cfg["importance"]:
            values["IMPORTANCE"] = int(ranked)
        if cfg["row_flags"]:
            values["THRESHOLD"] = run["threshold"]
        values.update(run.get("pattern_registers", {}))
        # A deliberately wrong register (the memory-safety checks must catch what it does).
        values.update(run.get("override", {}))
        for name, value in values.items():
            await host.write_dword(regs[name], value)
        log.clear()
        await host.write_dword(regs["CTRL"], 1)
        if cfg.get("reset_mid") and n == 0:
            # Cut the run once reads are in flight, then go on: the next runs must be clean.
            for _ in range(10_000):
                await RisingEdge(dut.aclk)
                if len(log.reads) >= 3:
                    break
            await _reset(dut)
            image = np.frombuffer(ram.read(0, size), np.uint8).copy()   # whatever the cut run wrote stays
            continue
        if run.get("refused"):
            # A runtime value out of range: the engine refuses the start, the DMA never moves.
            await ClockCycles(dut.aclk, 200)
            ctrl = await host.read_dword(regs["CTRL"])
            report.check(ctrl & 0x0E == 0x08, f"run {n}: CTRL 0x{ctrl:x} after a refused start, expected ERROR only")
            report.check(not log.reads and not log.writes and not dut.irq.value,
                         f"run {n}: a refused start moved data ({len(log.reads)} reads, {len(log.writes)} writes)")
            continue
        started = cocotb.utils.get_sim_time("ns")
        for _ in range(cfg["timeout_cycles"]):
            await RisingEdge(dut.aclk)
            if dut.irq.value:
                break
        else:
            report.check(False, f"run {n}: no irq after {cfg['timeout_cycles']} cycles "
                                f"({len(log.reads)} read and {len(log.writes)} write bursts; {_state(dut)})")
            break
        cycles.append(int((cocotb.utils.get_sim_time("ns") - started) // 10))

        if "pattern" in run:   # a sparse build: each block's gathered tiles, masked per element
            pattern, shape = pattern_from_dict(run["pattern"]), dict(query_len=q_len, group=heads // kv_heads)
            o_stacked = engine_output(stack_queries(q, kv_heads), k, v, cfg["scale_mult"], cfg["scale_shift"], nm,
                                      cfg["cols"], None if pattern.is_dense else allowed_mask(pattern, kv_len, **shape),
                                      schedule=scheduled_tiles(pattern, kv_len, cfg["rows"], cfg["cols"], **shape),
                                      rows=cfg["rows"])
        else:
            # K as the engine takes it: floored to its MSBs when read from the MSB plane.
            k_used = msb_only(k, msb_bits, 8)
            if ranked:
                out = ranked_output(q, k_used, v, cfg["scale_mult"], cfg["scale_shift"], nm, cfg["cols"])
                o_stacked = out.o
                side = {"token_importance": out.tokens, "head_importance": out.heads}
            else:
                o_stacked = engine_output(stack_queries(q, kv_heads), k_used, v, cfg["scale_mult"],
                                          cfg["scale_shift"], nm, cfg["cols"])
                side = {}
            if cfg["row_flags"]:
                side["row_flags"] = row_flags(q, k_used, cfg["scale_mult"], cfg["scale_shift"], nm, cfg["cols"],
                                              run["threshold"]).astype(np.int64)
        expected = unstack_queries(o_stacked, heads)
        for what, bursts, names in (("read", log.reads, ("q", "k", "v", *LIST_BUFFERS)),
                                    ("write", log.writes, ("o", *SIDE_BUFFERS))):
            allowed = set((tensor_bytes(layout, names) // bus_bytes).tolist())
            problems = [p for addr, beats in bursts for p in burst_problems(addr, beats, bus_bytes, allowed)]
            report.check(not problems, f"run {n}: {what} bursts: {'; '.join(problems[:3])}")
        memory = np.frombuffer(ram.read(0, size), np.uint8)
        listed = np.ix_(head_rows, q_rows)     # O's rows the run computed (all without lists)
        report.compare(f"run {n} O", read_output(memory, layout)[listed], expected)
        image[layout.o.byte_addresses()[listed]] = (expected & 0xFF).astype(np.uint8)
        for name, values in ({} if "pattern" in run else side).items():
            placement = getattr(layout, name)
            report.compare(f"run {n} {name}", read_side(memory, placement),
                           np.reshape(values, (placement.heads, placement.rows)))
            image[placement.byte_addresses()] = side_bytes(values, placement)
        changed = np.nonzero(memory != image)[0]
        report.check(changed.size == 0, f"run {n}: {changed.size} bytes outside O changed or O wrong "
                                        f"(first at 0x{int(changed[0]) if changed.size else 0:x})")
        ctrl = await host.read_dword(regs["CTRL"])
        report.check(ctrl & 0x3E == 0x04, f"run {n}: CTRL 0x{ctrl:x}, expected DONE only")
        moved = (await host.read_dword(regs["BYTES_READ"]), await host.read_dword(regs["BYTES_WRITTEN"]))
        expected_moved = (run["bytes_read"], run["bytes_written"])
        report.check(moved == expected_moved, f"run {n}: bytes read, written {moved}, expected {expected_moved}")
        dut._log.info("run %d (%s, H %d/%d, L %d, q %d, d %d): %d cycles, %d reads, %d writes", n, run["layout"],
                      heads, kv_heads, kv_len, q_len, d, cycles[-1], len(log.reads), len(log.writes))
    report.cycles = cycles[-1] if cycles else None
    report.extra["run_cycles"] = cycles
    report.finish()
