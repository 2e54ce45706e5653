"""Benchmark of the fused engine: MAC utilization from RTL simulation, Yosys area, nextpnr-ecp5 Fmax.

Writes docs/engine-benchmarks.md.  Run with ``./dev.sh bench engine`` or pick
parts with ``--parts utilization,area,fmax``.  Utilization comes from the
full-rate harness (``tb/engine_bench.v`` via :func:`gen.simulate.measure_engine`):
streams never stall, every output beat is checked against the golden model.
"""

from __future__ import annotations

import concurrent.futures as futures
from pathlib import Path

from .bench_docs import DOCS, write_page
from .generate import cached_verilog
from .synth import synthesize

__all__ = ["run", "PARTS"]

PARTS = ("utilization", "area", "fmax")
SEQ_LENS = (64, 128, 256, 512, 1024)
HEAD_DIMS = (32, 64, 128)
SIZES = (4, 8, 16)
DEFAULT = dict(rows=8, cols=8, max_seq_len=1024, max_head_dim=128, max_heads=16)
AREA_TARGETS = ("ecp5", "xilinx7")


def _measure(size: int, sim: str, seq_lens, head_dims) -> list[dict]:
    from .simulate import measure_engine

    params = dict(rows=size, cols=size, max_seq_len=max(seq_lens), max_head_dim=max(head_dims), max_heads=1)
    runs = [dict(seq_len=n, head_dim=d) for d in head_dims for n in seq_lens]
    report = measure_engine(params, runs, sim=sim)
    return report["runs"]


def _utilization(sim: str, jobs: int, sizes=SIZES, seq_lens=SEQ_LENS, head_dims=HEAD_DIMS) -> list[str]:
    with futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        found = dict(zip(sizes, pool.map(_measure, sizes, [sim] * len(sizes), [seq_lens] * len(sizes),
                                         [head_dims] * len(sizes))))
    lines = ["| array | d | " + " | ".join(f"L = {n}" for n in seq_lens) + " |",
             "|---|---|" + "---|" * len(seq_lens)]
    for size, runs in found.items():
        by = {(r["head_dim"], r["seq_len"]): r for r in runs}
        for d in head_dims:
            cells = []
            for n in seq_lens:
                r = by[d, n]
                text = f"{r['mac_utilization']:.2%}"
                cells.append(f"**{text}**" if (size, d, n) == (8, 64, 512) else text)
            lines.append(f"| {size}×{size} | {d} | " + " | ".join(cells) + " |")
    lines += ["", "Cycles (first input beat accepted to last output beat) and the ideal (useful MACs / PEs):", "",
              "| array | d | L | cycles | ideal | mismatched output beats |", "|---|---|---|---|---|---|"]
    for size, runs in found.items():
        for r in runs:
            lines.append(f"| {size}×{size} | {r['head_dim']} | {r['seq_len']} | {r['cycles']} | "
                         f"{r['ideal_cycles']} | {r['mismatched_beats']} |")
    return lines


def _synth_job(target):
    path, _ = cached_verilog("engine", DEFAULT)
    return synthesize(path, "attention_engine", target, dsp=True)


def _area(jobs: int) -> list[str]:
    with futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        return area_lines(dict(zip(AREA_TARGETS, pool.map(_synth_job, AREA_TARGETS))))


def area_lines(results: dict) -> list[str]:
    """The area table from ``{target: synthesize(...) result}`` of the default engine."""
    from hdl.engine import AttentionEngine

    engine = AttentionEngine(**DEFAULT)
    engine._MustUse__silence = True
    lines = ["| design | target | LUT | FF | carry | DSP | BRAM | LUT RAM |", "|---|---|---|---|---|---|---|---|"]
    for target, a in results.items():
        lines.append(f"| engine 8×8, d ≤ 128, L ≤ 1024 | {target} | {a['lut']} | {a['ff']} | {a['carry']} | "
                     f"{a['dsp']} | {a['bram']} | {a['lutram']} |")
    lines += ["", f"On-chip buffer memory (manifest `memory_bits`): {engine.memory_bits:,} bits."]
    return lines


def _fmax_unit():
    from hdl.engine import AttentionEngine

    return AttentionEngine(**DEFAULT)


def _fmax_build(_config):
    return _fmax_unit()


def _fmax(seeds, jobs: int) -> list[str]:
    from .pnr import fmax_cells, fmax_sweep

    found = fmax_sweep(_fmax_build, [("default",)], seeds, jobs=jobs, timeout=40 * 60)
    lines = ["| design | Fmax per seed (MHz) | median | goal |", "|---|---|---|---|"]
    for _, per_seed in found.items():
        shown, median = fmax_cells(per_seed, timeout=40 * 60)
        lines.append(f"| engine 8×8 (generic multipliers, register FIFOs) | {shown} | {median} | 200 |")
    return lines


def run(parts=PARTS, *, sim: str = "verilator", jobs: int = 2, seeds=(1, 2, 3), out: Path | None = None) -> Path:
    sections = {}
    if "utilization" in parts:
        sections["utilization"] = _utilization(sim, jobs)
    if "area" in parts:
        sections["area"] = _area(jobs)
    if "fmax" in parts:
        sections["fmax"] = _fmax(seeds, jobs)
    return write_page(out or DOCS / "engine-benchmarks.md", _TEMPLATE, PARTS, sections)


_TEMPLATE = """# Fused engine: measured MAC utilization, area and Fmax

Written by `./dev.sh bench engine` (`gen/bench_engine.py`) on {date} ({machine}); {versions}.
Re-run one part with `./dev.sh bench engine --parts utilization` (or `area`, `fmax`).
The design is in docs/engine.md.

## MAC utilization

Useful MACs (`2·L²·d` per head: Q·Kᵀ and P·V) / (PEs × cycles from the first input beat accepted to the
last output beat sent), one head, streams that never stall, measured in RTL simulation (Verilator) with the
DMA-model harness `tb/engine_bench.v`; every output beat is compared with the golden model on the fly.
Goal: at least 95% for L = 512, d = 64 on 8×8 (bold). Anchors: FlatAttention 89.3%; SALO's own model 64–74%.
Each array size is one build with `max_seq_len` = 1024, `max_head_dim` = 128, `prob_tiles` = 3.
Command: `./dev.sh bench engine --parts utilization`.

<!-- begin utilization -->
{utilization}
<!-- end utilization -->

## Area (Yosys via YoWASP)

The default engine (8×8 array, softmax unit, output accumulators, Q and probability buffers, AXI top) with
`synth_ecp5` and `synth_xilinx -flatten` (DSP inference on). The array alone is in docs/array-benchmarks.md
(8×8 ECP5: 3,955 LUT, 9,657 FF, 64 DSP) and the softmax unit in docs/softmax-benchmarks.md.
Command: `./dev.sh bench engine --parts area`.

<!-- begin area -->
{area}
<!-- end area -->

## Fmax on ECP5 (LFE5U-85F, CABGA381, speed 6)

nextpnr-ecp5 (`--freq 200 --timing-allow-fail`), the default engine inside `hdl/pin_wrapper.py`, one run per
seed (40-minute limit per run). Command: `./dev.sh bench engine --parts fmax`.

<!-- begin fmax -->
{fmax}
<!-- end fmax -->
"""
