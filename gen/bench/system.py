"""Benchmark of the memory-mapped top through a memory of given latency and bandwidth; writes docs/system.md.

Run with ``./dev.sh bench system`` (parts ``throughput``, ``bytes``).  Every figure comes from
:func:`attn_rtl.gen.simulate.measure_engine_mm` (``tb/mm_bench_main.v`` with ``tb/axi_memory.v``, Verilator):
the run goes from the START write to ``irq``, O is read back from memory and checked against the golden
model, and the rest of memory must be unchanged.  The engine alone is :func:`measure_engine` on the same
array (streams never stall).
"""

from __future__ import annotations

import json
from pathlib import Path

from .pages import DOCS, write_page

__all__ = ["run", "PARTS", "ARRAY", "LAYER", "BUSES", "LATENCY"]

PARTS = ("throughput", "bytes", "spatten")
#: The 8×8 engine of the goal, sized for the layer: L = 512, d = 64, one head.
ARRAY = dict(rows=8, cols=8, max_seq_len=512, max_head_dim=64, max_heads=8)
LAYER = dict(seq_len=512, head_dim=64)
BUSES = (32, 64, 128)
LATENCY = 100
#: K/V buffer sizes measured: none (the smallest ring) and a whole head of 512 keys.
BUFFERS = (0, 512)
#: A pruned layer's lists: 384 of 512 tokens (every fourth dropped), 6 of 8 heads.
_KEPT_TOKENS = [t for t in range(512) if t % 4 != 3]
_KEPT_HEADS = [0, 1, 2, 4, 5, 7]
#: Runs of the bytes table on the 8×8 top with a 64-bit bus: (name, run, kv_buffer_keys, build options,
#: the cost model's workload options).
BYTE_RUNS = (
    ("dense, one head", dict(LAYER), 512, {}, {}),
    ("dense, one head, no buffer", dict(LAYER), 0, {}, {}),
    ("grouped decode: 8 heads on 2 K/V heads, q_len 1", dict(seq_len=512, query_len=1, head_dim=64, heads=8,
                                                              kv_heads=2), 512, {}, {}),
    ("grouped prefill, [L][H·d] layout, 4 heads on 2 K/V heads", dict(seq_len=200, head_dim=64, heads=4,
                                                                         kv_heads=2, layout="tokens"), 0, {}, {}),
    ("causal prefill (sparse build: keys gathered per block)", dict(LAYER, pattern={"pattern": "causal"}), 0,
     {"sparse": True}, {}),
    ("importance run (SpAtten build), no buffer: K twice per block", dict(LAYER, importance=True), 0,
     {"importance": True}, {"rank": True}),
    ("importance run, 512-key buffer: K and V once", dict(LAYER, importance=True), 512, {"importance": True},
     {"rank": True}),
    ("pruned layer: lists of 384 of 512 tokens and 6 of 8 heads, importance run", dict(
        LAYER, heads=8, tokens=_KEPT_TOKENS, head_list=_KEPT_HEADS, importance=True), 512, {"importance": True},
     {"rank": True, "token_keep": 0.75, "head_keep": 0.75}),
    ("progressive first run: K's 4-bit MSB plane, no buffer", dict(LAYER, k_msb_bits=4), 0, {"row_flags": True},
     {"msb_bits": 4}),
)


def _cached(key: str, measure) -> dict:
    """A measured point, kept in ``.cache/bench/system.json`` by HDL fingerprint (an interrupted run resumes)."""
    from attn_rtl.gen.generate import _hdl_fingerprint
    from attn_rtl.sim.runner import default_cache_dir

    cache = default_cache_dir() / "bench" / "system.json"
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    found = stored.setdefault(_hdl_fingerprint()[:16], {})
    if key not in found:
        found[key] = measure()
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(stored, indent=1))
    return found[key]


def _mm(bus: int, keys: int, run: dict, sim: str, build: dict | None = None) -> dict:
    from attn_rtl.gen.simulate import measure_engine_mm

    params = dict(ARRAY, bus_width=bus, kv_buffer_keys=keys, **(build or {}))
    return _cached(f"mm-{bus}-{keys}-{json.dumps(build or {}, sort_keys=True)}-{json.dumps(run, sort_keys=True)}",
                   lambda: measure_engine_mm(params, [run], latency=LATENCY, sim=sim)["runs"][0])


def _throughput(sim: str) -> list[str]:
    from attn_rtl.gen.simulate import measure_engine

    alone = _cached(f"alone-{json.dumps(LAYER, sort_keys=True)}",
                    lambda: measure_engine(ARRAY, [dict(LAYER)], sim=sim)["runs"][0])
    lines = ["| design | bus | K/V buffer | cycles | MAC utilization | of the engine alone's | bytes read |",
             "|---|---|---|---|---|---|---|",
             f"| engine alone (streams never stall) | – | – | {alone['cycles']:,} | "
             f"{alone['mac_utilization']:.2%} | 100% | – |"]
    for keys in BUFFERS:
        for bus in BUSES:
            found = _mm(bus, keys, dict(LAYER), sim)
            share = found["mac_utilization"] / alone["mac_utilization"]
            buffer = f"{keys} keys (the head)" if keys else "none (the smallest ring, 5 tiles: re-read per block)"
            lines.append(f"| memory-mapped | {bus} | {buffer} | {found['cycles']:,} | "
                         f"{found['mac_utilization']:.2%} | **{share:.1%}** | {found['bytes_read']:,} |")
    return lines


def _spatten(sim: str) -> list[str]:
    """SpAtten runs through memory (64-bit bus) against the engine alone with streams never stalled
    (:func:`simulate_engine`, the same build without the DMA)."""
    from attn_rtl.gen.simulate import simulate_engine

    build = dict(ARRAY, importance=True, row_flags=True)
    threshold = 1 << 13
    runs = (("importance run", dict(LAYER, importance=True), dict(LAYER, importance=True)),
            ("progressive first run, K's 4-bit MSB plane", dict(LAYER, threshold=threshold),
             dict(LAYER, k_msb_bits=4, threshold=threshold)))
    lines = ["| run | engine alone | memory-mapped, no buffer | of the engine alone's | memory-mapped, 512-key buffer "
             "| of the engine alone's |", "|---|---|---|---|---|---|"]
    for name, alone_run, mm_run in runs:
        alone = _cached(f"alone-spatten-{json.dumps(alone_run, sort_keys=True)}",
                        lambda: simulate_engine(build, [alone_run], sim=sim, seed=3)["runs"][0])
        cells = []
        for keys in BUFFERS:
            found = _mm(64, keys, mm_run, sim, {"importance": True, "row_flags": True})
            cells += [f"{found['cycles']:,}", f"{alone['cycles'] / found['cycles']:.1%}"]
        lines.append(f"| {name} | {alone['cycles']:,} | {' | '.join(cells)} |")
    return lines


def _bytes(sim: str) -> list[str]:
    from attn_rtl.gen.cost.model import offchip_bytes
    from attn_rtl.gen.cost.workloads import Workload
    from attn_rtl.sim.sparse import pattern_from_dict

    lines = ["| run | K/V buffer | BYTES_READ (RTL) | cost model | BYTES_WRITTEN (RTL) | cost model | cycles |",
             "|---|---|---|---|---|---|---|"]
    for name, run, keys, build, options in BYTE_RUNS:
        found = _mm(64, keys, run, sim, build)
        heads = run.get("heads", 1)
        w = Workload("bench", run["seq_len"], run["head_dim"], heads, kv_heads=run.get("kv_heads"),
                     q_len=run.get("query_len"), pattern=pattern_from_dict(run.get("pattern", {"pattern": "dense"})),
                     **options)
        read, written = offchip_bytes(w, [ARRAY["rows"]], cols=[ARRAY["cols"]], kv_buffer_keys=[keys])
        lines.append(f"| {name} | {keys or 'none'} | {found['bytes_read']:,} | {read[0]:,.0f} "
                     f"({100 * (read[0] / found['bytes_read'] - 1):+.2f}%) | {found['bytes_written']:,} | "
                     f"{written[0]:,.0f} | {found['cycles']:,} |")
    return lines


def run(parts=PARTS, *, sim: str = "verilator", out: Path | None = None) -> Path:
    page = out or DOCS / "system.md"
    sections = {}
    if "throughput" in parts:
        sections["throughput"] = _throughput(sim)
    if "bytes" in parts:
        sections["bytes"] = _bytes(sim)
    if "spatten" in parts:
        sections["spatten"] = _spatten(sim)
    return write_page(page, _TEMPLATE, PARTS, sections)


_TEMPLATE = """# The memory-mapped accelerator (`attention_engine_mm`)

`attn-rtl generate engine --memory-mapped` writes a drop-in accelerator: the engine, a DMA on one AXI4
master that reads Q, K and V from memory and writes O back, the AXI4-Lite register file, and `irq`.
Software places the tensors, writes a few registers and waits for the interrupt; nobody writes a
sequencer.  The streaming tops (`attention_engine`, `attention_engine_axil`) stay for users who bring
their own DMA (docs/engine.md).

## What it does

Q, K, V and O are int8 tensors in memory.  Each has a **base address**, a **row stride** and a **head
stride** in bytes: row `i` of head `h` is the `d` bytes at `BASE + h·HEAD_STRIDE + i·ROW_STRIDE`.  Any
byte address and stride work, so the usual layouts need no copy:

| layout | row stride | head stride |
|---|---|---|
| `[H][L][d]` (one tensor per head, contiguous) | `d` | `L·d` |
| `[L][H·d]` (a projection's output, heads side by side) | `H·d` | `d` |
| fused QKV `[L][(H + 2·H_kv)·d]` (Q, K, V interleaved per token) | `(H + 2·H_kv)·d` for all three | `d`; K's base `+H·d`, V's `+(H+H_kv)·d` |
| KV cache `[H_kv][L_max][d]` | `d` | `L_max·d` (`SEQ_LEN` ≤ `L_max` keys used) |

K and V have `KV_HEADS` heads of `SEQ_LEN` rows, Q and O `HEADS` heads of `QUERY_LEN` rows (decode:
`QUERY_LEN` = 1; docs/engine.md, *Decoder attention*).  Per K/V head, the DMA stacks its group's query
heads as the engine takes them and fetches that K/V head's K and V **once for the whole group**.

Inside (`hdl/engine_dma.py`): rows are read with INCR bursts of whole bus words
(`hdl/row_reader.py`: at most 256 beats, never across 4 KB, up to `outstanding` rows in flight on one
ID) and re-cut into `cols`-byte words at any alignment (`hdl/byte_gearbox.py`), one staging bank per
lane, from which the engine's beats are read: Q as columns of a block, K as columns of a key tile, V as
row pieces.  K and V go into the **K/V buffer**, a ring of key-tile slots (`kv_buffer_keys` keys of
`max_head_dim` bytes of each, block RAM): when a head's keys fit, its K and V are read from memory once
and replayed for every query block; otherwise the ring re-reads each block's tiles as they are needed
(FLAT's trade: on-chip memory against off-chip traffic, chosen at build time).  O beats collect per
block and go out row by row with `wstrb` on exactly O's bytes (`hdl/row_writer.py`).  `BYTES_READ` and
`BYTES_WRITTEN` count the tensor bytes a run moved; `CTRL.DONE` and `irq` rise when the last write is
answered.

Build parameters beside the engine's (`attn-rtl generate engine --memory-mapped --bus-width 128 …`):

| parameter | default | meaning |
|---|---|---|
| `bus_width` | 64 | AXI4 data bits: 32, 64, 128, 256 or 512 |
| `addr_width` | 32 | AXI4 address bits (12 … 32) |
| `id_width` | 4 | AXI4 ID bits (all transfers use ID 0) |
| `kv_buffer_keys` | 0 | keys of K and V held on chip (a multiple of `cols`; 0: the smallest ring, `max(4, prob_tiles + 2)` tiles) |
| `outstanding` | 16 | rows in flight per direction (enough for 100 cycles of latency at 8 bytes a cycle) |

Supported today: dense builds (every runtime shape: several heads, grouped and multi-query heads, any
`QUERY_LEN`) and sparse builds: every pattern of docs/sparse.md and the decoder's `causal` and
`causal-window`, the DMA reading the K and V rows of exactly the keys each tile gathers (taken from the
engine's key index, a multiply per row for its address), per query block (no K/V reuse across blocks in
a sparse run yet), and SpAtten builds (`importance`, `row_flags`): importance runs, pruned layers
read through token and head lists, and progressive quantization reading K's MSB plane (below).

## Ports and address map

| port | |
|---|---|
| `aclk`, `aresetn` | one clock; synchronous active-low reset of registers, DMA and engine |
| `s_axil_*` | AXI4-Lite slave, 32-bit data: the registers (`<top>_regs.md`, `<top>_regs.h`) |
| `m_axi_*` | AXI4 master: `aw*`, `w*`, `b*`, `ar*`, `r*` with `id`, `len`, `size`, `burst` (INCR), `lock`, `cache` (0b0011), `prot`, `qos` |
| `irq` | level: `CTRL.DONE`, cleared by the next START |

Registers: `ID` (0x00, "ATTN"), `VERSION`, `SHAPE` (bit 19: memory-mapped), `CTRL` (0x0C: bit 0
START, 1 BUSY, 2 DONE, 3 ERROR (a runtime value out of range; nothing ran), 4 READ_ERROR, 5
WRITE_ERROR (an AXI4 response other than OKAY)), `CYCLES` (0x10), `BYTES_READ` (0x14),
`BYTES_WRITTEN` (0x18), the runtime registers from 0x20 (`SEQ_LEN`, `HEADS`, `KV_HEADS`,
`QUERY_LEN`, `HEAD_DIM`, `SCALE_MULT`, `SCALE_SHIFT`), then `Q_BASE`, `Q_ROW_STRIDE`,
`Q_HEAD_STRIDE`, and the same for K, V and O; a SpAtten build adds the registers of the next section.
The generated `<top>_regs.md` has the offsets of a build.

## SpAtten layers through memory

A build with `importance` or `row_flags` (dense) adds, after the tensors' registers:

| register | build | meaning |
|---|---|---|
| `LISTS` | both | bit 0: Q and O rows through the token list (query `i` is token `TOKEN_LIST[i]`); bit 1: K and V rows through it (key `j` is token `TOKEN_LIST[j]`); bit 2: every tensor's head `h` is head `HEAD_LIST[h]`.  Lists take `KV_HEADS` 0 or `HEADS` (else ERROR) |
| `TOKEN_LIST_BASE`, `HEAD_LIST_BASE` | both | byte addresses of the lists: uint16, little-endian, `SEQ_LEN` (bit 1) or `QUERY_LEN` (bit 0 alone) and `HEADS` entries |
| `TOKEN_IMPORTANCE_BASE`, `HEAD_IMPORTANCE_BASE` | `importance` | where an importance run (`IMPORTANCE` = 1) writes one unsigned little-endian 32-bit word per computed key and per computed head (64-bit when the engine's widths pass 32 bits), in computed order |
| `ROW_FLAGS_BASE` | `row_flags` | every run writes a byte per computed query row (1: largest probability below `THRESHOLD`), heads after each other |
| `K_MSB_BITS` | `row_flags` | 0 or 8: K is the int8 tensor; 1, 2 or 4: `K_BASE` and its strides describe K's **MSB plane**, a row of `ceil(d·m/8)` bytes holding each element's top `m` bits, element `j` at bit `j·m` (from bit 0 of the row's first byte); the engine takes K floored to those bits.  Other values: ERROR |

The DMA reads the lists at the run's start (a row of up to `cols/2` entries per request, into a block RAM
per reader: Q, K/V and O), then places every row through them (registered multiplies per row address:
a row request every 5 cycles at most, against one a cycle without lists).  Importances and row flags leave through the write master between O's rows.
An importance run walks each query block's K twice (the scan pass, then the computing pass with V): a
head that fits the K/V buffer is read once; otherwise the scan pass reads K alone and the computing pass
K and V, per block.

The layer flows, as a driver runs them (`tb/test_engine_mm.py` does exactly this):

- **Pruned layer** (cascade pruning): the previous layer's kept tokens and heads as the lists, `LISTS` = 7,
  `SEQ_LEN`/`QUERY_LEN` = kept tokens, `HEADS` = kept heads, `IMPORTANCE` = 1; O's listed rows are
  written at their original positions (the other rows stay as they were), the importances in list
  order: rank them (top-k) and map through the lists for the next layer.
- **Progressive quantization**: store K's MSB plane beside K (`attn_rtl.sim.memory_image.msb_plane`); run
  with `K_MSB_BITS` = 4 and K's registers on the plane; read the row flags; then per head with flagged
  rows, a run with K's registers on the int8 K, `K_MSB_BITS` = 0, `LISTS` = 5, the flagged rows as the
  token list (`QUERY_LEN` = their count), the head as the head list, `HEADS` = 1.  O then holds the
  progressive layer (`attn_rtl.sim.progressive.progressive_layer`); K's bytes are the plane's (once per
  query block, or once per head that fits the buffer) plus the recomputed heads' K in full.

```sh
attn-rtl sim --memory-mapped --token-list 0,2,5,7 --head-list 0,3 --importance-run --heads 4 --seq-len 8 --json
attn-rtl sim --memory-mapped --progressive 4 --threshold 0.3 --json      # the first run, K's MSB plane
```

## Software

`generate` writes `<top>_regs.h` (offsets) and a driver, `<top>_driver.h` / `<top>_driver.c`:

```c
#include "attention_engine_mm_driver.h"

attn_job job = {{
    .seq_len = 512, .heads = 8, .kv_heads = 2, .query_len = 1, .head_dim = 64,
    .scale_mult = 16384, .scale_shift = 17,          /* docs/numerics.md, section 3 */
    .q = {{Q_ADDR, 64, 64}},                           /* [1][8·64]: row stride H·d, head stride d */
    .k = {{K_ADDR, 64, 4096 * 64}},                    /* KV cache [2][4096][64] */
    .v = {{V_ADDR, 64, 4096 * 64}},
    .o = {{O_ADDR, 64, 64}},
}};
int status = attention_engine_mm_run(ATTN_BASE, &job, wait_for_irq, NULL, 0);   /* 0: done */
```

`attention_engine_mm_run` checks `ID` and `VERSION`, programs the registers, starts, and waits through
your interrupt hook or by polling `CTRL`; it returns `ATTN_E_RANGE` for a refused start and `ATTN_E_BUS`
for an AXI error.  The memory the DMA reads must be coherent with the CPU's writes (flush the caches or
use an uncached buffer, as with any bus master).  In Python, `attn_rtl.sim.memory_image` does the host's
side: `place()` lays the tensors out (the three layouts above), `write_tensors()` fills a memory image,
`read_output()` takes O back; the tests and the benchmark use it.

## In a Vivado block design

1. `attn-rtl generate engine --memory-mapped --bus-width 128 -o ip/` and add `ip/attention_engine_mm.v`
   to the project (or package it with *Tools → Create and Package New IP*: Vivado infers the `s_axil_*`
   and `m_axi_*` interfaces from the names).
2. Zynq UltraScale+: connect `m_axi` to an `S_AXI_HP0_FPD` port (through a SmartConnect; 128 bits
   matches the port), `s_axil` to `M_AXI_HPM0_LPD` through the same interconnect as your other
   peripherals, `irq` to `pl_ps_irq0`, `aclk` to `pl_clk0` and `aresetn` to the `peripheral_aresetn` of
   a *Processor System Reset* on that clock (a registered reset: the design times its fan-out).
3. Address editor: a 4 KB window for `s_axil` (the map is under 256 bytes); give `m_axi` the DDR
   segment.  The DMA addresses 32 bits: put the tensors below 4 GB.
4. Constraints: the generated `.xdc` sets the clock for out-of-context runs; in a block design the PS
   clock carries its own constraint, so nothing more is needed.  Measured clock rates are in
   docs/timing.md.

## In a LiteX SoC

```python
from migen import Instance
from litex.soc.interconnect import axi

mm = axi.AXIInterface(data_width=64, address_width=32, id_width=4)
lite = axi.AXILiteInterface(data_width=32, address_width=32)
self.specials += Instance("attention_engine_mm",
    i_aclk=ClockSignal("sys"), i_aresetn=~ResetSignal("sys"), o_irq=self.attn_irq,
    **axi_master_ports(mm, "m_axi"), **axi_lite_slave_ports(lite, "s_axil"))
platform.add_source("attention_engine_mm.v")
self.bus.add_master(name="attn", master=mm)                 # the DMA: a bus master on main RAM
self.bus.add_slave(name="attn_regs", slave=lite, region=SoCRegion(origin=0x9000_0000, size=0x1000))
self.irq.add("attn", use_loc_if_exists=True)
```

(`axi_*_ports` stand for a dict of `i_…`/`o_…` connections of each channel's signals; LiteX's
`AXIInterface` names them `aw.addr`, `w.data`, … .)  On ECP5 boards the SDRAM gives a few hundred MB/s:
build with a K/V buffer that holds your sequence (`--kv-buffer-keys`), so K and V are read once per head.

## Throughput through memory

Written by `./dev.sh bench system` (`gen/bench/system.py`) on {date} ({machine}); {versions}.

One 8×8 engine (`max_seq_len` 512, `max_head_dim` 64), L = 512, d = 64, one head, through
`tb/axi_memory.v`: every read's data starts 100 cycles after its address (addresses queue, so latencies
overlap), data moves at the bus width a cycle at most.  Cycles from the START write to `irq`; O checked
bit-exact in memory.  Utilization = useful MACs / (64 × cycles).  The engine alone is the same array with
its streams never stalled (`measure_engine`).  Goal: with the K/V buffer and a 64-bit bus of 100-cycle
latency, at least 95% of the engine alone's utilization.  Re-run: `./dev.sh bench system --parts throughput`.

<!-- begin throughput -->
{throughput}
<!-- end throughput -->

Without the buffer every query block reads its K and V again: 64 blocks × 64 KB, about 8 bytes per
engine cycle, which a 64-bit bus just carries and a 32-bit one halves.  A 128-bit bus does no better than
a 64-bit one here: the DMA lands one `cols`-byte word a cycle from memory (8 bytes on 8×8), and the
re-reads need all of it (landing two words a cycle is the next step for buffer-less builds).  Rows in flight matter as much
as the bus: 100 cycles of latency at 8 bytes a cycle need 800 bytes, 13 rows of 64 bytes, in flight;
with `outstanding` = 8 the same runs reached 57.70% (64-bit) and 58.23% (128-bit), and 46.67% on
32 bits (measured 2026-12-06, the DMA of commit 404dbc5, before the default became 16).

## SpAtten runs through memory

Cycles from the START write to `irq` of the 8×8 top built with `importance` and `row_flags` (64-bit bus,
100-cycle latency, L = 512, d = 64, one head) against the same engine alone with its streams never stalled
(cocotb, Verilator).  An importance run walks every query block twice (K's scan pass, then K and V): without
a buffer the DMA reads K twice and V once per block.  The MSB plane halves K's bytes (4 of 8 bits): the
first run of progressive quantization needs less bandwidth than a plain run.
Re-run: `./dev.sh bench system --parts spatten`.

<!-- begin spatten -->
{spatten}
<!-- end spatten -->

## Bytes against the cost model

The top's `BYTES_READ` and `BYTES_WRITTEN` after a run, against the cost model's off-chip bytes with the
buffer (`gen/cost/model.py`, `offchip_bytes(..., kv_buffer_keys=)`), 8×8, 64-bit bus.  Every system test
also checks the counters against the host model (`attn_rtl.sim.memory_image.bytes_moved`).
Re-run: `./dev.sh bench system --parts bytes`.

<!-- begin bytes -->
{bytes}
<!-- end bytes -->

## Area

Yosys 0.70 for ECP5 (`synth_ecp5`, DSPs), 8×8, `max_seq_len` 512, `max_head_dim` 64, `max_heads` 8
(2026-12-06, commit 11bf485): the engine alone 31,789 LUT4, 49,795 FF, 115 MULT18X18D, 12 DP16KD; the
memory-mapped top with a 64-bit bus and a 512-key K/V buffer 38,589 LUT4, 53,312 FF, 116 MULT18X18D,
44 DP16KD (the buffer's 524,288 bits are 32 of the block RAMs; 540,672 staging bits in all).
Measured again after the SpAtten features (2026-12-06, the HDL of commit 80ba498 that the tables above
measure; `attn_rtl.gen.flows.synth.synthesize` on the generated top): the same top 38,095 LUT4, 53,454 FF,
116 MULT18X18D, 44 DP16KD; built with `importance` and `row_flags` 44,535 LUT4, 57,497 FF, 136
MULT18X18D, 57 DP16KD (565,248 staging bits: three copies of the 512-entry token list; of the 20 more
multipliers, 8 are the engine's importance unit and 12 the list placements' address products).

Clock: the DMA alone (`./dev.sh bench timing --parts engine_mm.dma`, the default engine's sizes, 64-bit
bus, reset timed; docs/timing.md) reaches 59.4 and 54.9 MHz (seeds 1, 2; median 57.1, commit 480a253),
below the engine's 79.5.  Its first critical path (56.8, 57.8 MHz at 6eb3c1a), the read gearbox's two
variable shifts in a row, is gone (the beat is aligned into a register first); the next one is O's
capture: the count of O blocks → the free-slot compare → the O banks' write enables (3.7 ns of logic,
13.2 ns of routing).  Deciding such enables from registers a cycle ahead is the next clock work.  The whole
memory-mapped top has not been placed and routed.  After the SpAtten features (the DMA of a dense build,
commit d95ab03): 63.6 and 58.6 MHz (median 61.1), 12,302 LUT4: the same logic, seed noise; the
critical paths are now the write splitter's burst arithmetic and the read address's into the fetch
counters' enables.

## Verification

`tests/test_engine_mm.py` runs the top under cocotb against cocotbext-axi's `AxiRam` with random pauses on
all five channels (Icarus by default; Verilator and an 8×8 case with `-m slow`): every layout, odd `L` and
`d`, bases at odd addresses and just below a 4 KB boundary, several heads, grouped decode and
multi-query heads, one key, heads longer than the buffer, 32/64/128/512-bit buses, every sparse and
causal pattern on a sparse build, a refused start, back-to-back runs and a reset in the middle of a burst;
on a SpAtten build, importance runs (a head in the buffer, and one re-read with K's scan pass), pruned
layers through lists (every layout, bases just below 4 KB), K's MSB plane at 1, 2 and 4 bits, the whole
progressive flow (the recomputation driven by the flags the first run wrote, O checked against the
progressive layer), refused `K_MSB_BITS` and lists on grouped heads; with `-m slow`, also on Verilator
and at 1-byte and 8-byte lanes.  Token and head importances and row flags are checked element by element
like O.  After each run: O bit-exact, **every other byte of memory unchanged** (it
is filled with a seeded pattern first), every burst at most 256 beats, aligned, not crossing 4 KB, and
touching only bus words that hold bytes of the tensors the registers describe (reads: Q, K, V and the
lists; writes: O, importances and row flags), and the byte counters.  `test_a_read_outside_the_tensors_is_caught` programs a wrong K row stride and
expects the burst check to fail the run.  Reads are of whole bus words, so a read may cover bytes beside a
row inside its first and last word; no word without a tensor byte is ever read.
"""
