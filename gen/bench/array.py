"""Benchmark of the systolic array: utilization in RTL simulation, Yosys area, nextpnr-ecp5 Fmax.

Writes docs/array-benchmarks.md.  Run with ``./dev.sh bench array`` (all
parts, about 30 minutes on 2 cores) or pick parts with ``--parts``.
"""

from __future__ import annotations

import concurrent.futures as futures
from pathlib import Path

from attn_rtl.gen.flows.synth import TARGETS, synthesize
from attn_rtl.gen.generate import cached_verilog, elaborate
from attn_rtl.gen.simulate import simulate_array

from .pages import DOCS, write_page

__all__ = ["run", "PARTS"]

PARTS = ("utilization", "area", "fmax", "sliding")
SIZES = [(4, 4), (8, 8), (16, 16)]
TILES, DEPTH = 64, 64
# Published per-PE LUT figures (Xilinx, LUT-only) quoted by the issue.
PUBLISHED = "Gemmini's PE: 737 LUT; a hand-written PE: 325 LUT (both Xilinx, no DSP)"


def _utilization(sim: str) -> list[str]:
    lines = ["| array | tiles × K | cycles (first step in → last row out) | ideal = tiles × K | "
             "of ideal | cycles per tile (steady state) | model |", "|---|---|---|---|---|---|---|"]
    for rows, cols in SIZES:
        params = dict(rows=rows, cols=cols, max_reduction=DEPTH)
        report = simulate_array(params, sim=sim, seed=1, tiles=[DEPTH] * TILES)
        assert report["passed"], report
        ideal = TILES * DEPTH
        component = elaborate("array", params)
        component._MustUse__silence = True  # asked for its cycle model only
        steady = component.run_cycles([DEPTH] * 2) - component.run_cycles([DEPTH])
        lines.append(f"| {rows}×{cols} | {TILES} × {DEPTH} | {report['cycles']} | {ideal} | "
                     f"{ideal / report['cycles']:.1%} | {steady} | {report['model_cycles']} |")
    return lines


def _sliding_block(sim: str, head_dim: int = 64, tiles: int = 28) -> list[str]:
    """One query block of a diagonal run as the engine will issue it (docs/sparse.md): score tile t
    (head_dim diagonal steps), then the value tile of t - 1 (its weights loaded on p, head_dim / cols
    stationary chunks of cols steps), the global column in one tile; 8×8, ECP5 primitives, the result
    FIFO sized as the engine sizes it for value tiles."""
    rows = cols = 8
    order = [("score", 0)] + [step for t in range(1, tiles) for step in (("score", t), ("value", t - 1))]
    order.append(("value", tiles - 1))
    depths, kinds, loads, globals_ = [], [], [], []
    for kind, t in order:
        chunks = 1 if kind == "score" else head_dim // cols
        for c in range(chunks):
            depths.append(head_dim if kind == "score" else cols)
            kinds.append("diagonal" if kind == "score" else "stationary")
            loads.append(kind == "value" and c == 0)
            globals_.append(t == 1)
    params = dict(rows=rows, cols=cols, max_reduction=head_dim, sliding=True, multiplier="ecp5", fifo_memory="ecp5")
    probe = elaborate("array", dict(params, result_tiles=1))
    probe._MustUse__silence = True  # asked for its credit hold only
    params["result_tiles"] = -(-probe.credit_hold // cols)
    report = simulate_array(params, sim=sim, seed=3, tiles=depths, kinds=kinds, loads=loads, global_columns=globals_)
    assert report["passed"], report
    steps = sum(depths)
    return ["| array | tiles (score + value) | steps | cycles (first step in → last row out) | model | "
            "steps per cycle |", "|---|---|---|---|---|---|",
            f"| 8×8 sliding | {tiles} + {tiles} (d = {head_dim}) | {steps} | {report['cycles']} | "
            f"{report['model_cycles']} | {steps / report['cycles']:.1%} |"]


def _synth_job(rows, cols, target, dsp):
    path, _ = cached_verilog("array", dict(rows=rows, cols=cols, max_reduction=DEPTH))
    return synthesize(path, "systolic_array", target, dsp=dsp)


def _area(jobs: int, sizes) -> list[str]:
    points = [(r, c, t, dsp) for dsp in (True, False) for r, c in sizes for t in TARGETS]
    with futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        results = dict(zip(points, pool.map(_synth_job, *zip(*points))))
    lines = []
    for dsp in (True, False):
        lines += ["", f"**{'DSP inference on' if dsp else 'DSP inference off (LUT-only multipliers)'}**", "",
                  "| array | target | LUT | FF | carry | DSP | BRAM | LUT RAM | LUT/PE | FF/PE |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for rows, cols in sizes:
            for target in TARGETS:
                a = results[(rows, cols, target, dsp)]
                pes = rows * cols
                lines.append(f"| {rows}×{cols} | {target} | {a['lut']} | {a['ff']} | {a['carry']} | {a['dsp']} | "
                             f"{a['bram']} | {a['lutram']} | {a['lut'] / pes:.1f} | {a['ff'] / pes:.1f} |")
    return lines


#: (multiplier, fifo_memory, sliding) of the Fmax table: what Yosys infers, then the ECP5 primitives, then
#: the same with the diagonal dataflow built in.
FMAX_CONFIGS = [("generic", "registers", False), ("ecp5", "registers", False), ("ecp5", "ecp5", False),
                ("ecp5", "ecp5", True)]


def _fmax_array(multiplier, fifo_memory, sliding=False):
    from attn_rtl.hdl.systolic_array import SystolicArray

    return SystolicArray(rows=8, cols=8, max_reduction=DEPTH, multiplier=multiplier, fifo_memory=fifo_memory,
                         sliding=sliding)


def _fmax(seeds, jobs: int) -> list[str]:
    from attn_rtl.gen.flows.pnr import fmax_cells, fmax_sweep

    found = fmax_sweep(_fmax_array, FMAX_CONFIGS, seeds, jobs=jobs)
    lines = ["| array | multiplier | result FIFO | Fmax per seed (MHz) | median |", "|---|---|---|---|---|"]
    for (mul, mem, sliding), per_seed in found.items():
        shown, median = fmax_cells(per_seed)
        lines.append(f"| 8×8{' sliding' if sliding else ''} | {mul} | {mem} | {shown} | {median} |")
    return lines


def run(parts=PARTS, *, sim: str = "verilator", jobs: int = 2, seeds=(1, 2, 3), sizes=SIZES,
        out: Path | None = None) -> Path:
    sections = {}
    if "utilization" in parts:
        sections["utilization"] = _utilization(sim)
    if "area" in parts:
        sections["area"] = _area(jobs, sizes)
    if "fmax" in parts:
        sections["fmax"] = _fmax(seeds, jobs)
    if "sliding" in parts:
        sections["sliding"] = _sliding_block(sim)
    return write_page(out or DOCS / "array-benchmarks.md", _TEMPLATE, PARTS, sections, tiles=TILES, depth=DEPTH,
                      published=PUBLISHED)


_TEMPLATE = """# Systolic array: measured utilization, area and Fmax

Written by `./dev.sh bench array` (`gen/bench/array.py`) on {date} ({machine}); {versions}.
Re-run one part with `./dev.sh bench array --parts utilization` (or `area`, `fmax`, `sliding`); the other
parts' sections stay as they were measured.
The default array is 8-bit signed × 8-bit signed, `max_reduction = {depth}` (22-bit accumulators).

## Utilization: {tiles} tiles of reduction length {depth}, streams never stalled

Measured in RTL simulation (Verilator, cocotb), from the first operand step accepted to the last
result row sent. Goal: at least 98% of ideal (ideal = tiles × reduction length).
Command: `./dev.sh bench array --parts utilization`.

<!-- begin utilization -->
{utilization}
<!-- end utilization -->

## Area (Yosys 0.70 via YoWASP)

`synth_ecp5`, `synth_ice40 -dsp`, `synth_xilinx -flatten` (ABC instead of ABC9 at the LUT-mapping step,
see gen/flows/synth.py); the second table adds `-nodsp` (ECP5, Xilinx) or drops `-dsp` (iCE40), to compare like
for like with published LUT-only figures: {published}. Per-PE figures divide the whole array (control,
skew registers and result FIFO included) by rows × cols.
Command: `./dev.sh bench array --parts area`.

<!-- begin area -->
{area}
<!-- end area -->

## Fmax on ECP5 (LFE5U-85F, CABGA381, speed 6)

nextpnr-ecp5 (`--freq 200 --timing-allow-fail`), the 8×8 array inside `hdl/pin_wrapper.py` (inputs from a shift
register, outputs through a registered XOR tree, four pins), one run per seed. Multiplier `generic` lets Yosys
map `*` (an unregistered MULT18X18D with registers in the fabric); `ecp5` instantiates MULT18X18D with its input
and output registers on (`--multiplier ecp5`). Result FIFO `registers` keeps it in flip-flops behind a read
multiplexer; `ecp5` puts it in DP16KD block RAM with the output register on (`--fifo-memory ecp5`).
Anchors: a naive unpipelined 8×8 reaches about 75 MHz here; goal: 200 MHz.
Command: `./dev.sh bench array --parts fmax`.

<!-- begin fmax -->
{fmax}
<!-- end fmax -->

The sliding row is the array with the diagonal dataflow built in ([mac-array.md](mac-array.md#diagonal-tiles---sliding):
diagonal Q·Kᵀ, weight-stationary P·V, the global column); alone: `fmax_sweep(_fmax_array, [("ecp5", "ecp5", True)],
(1, 2), jobs=1)` of `attn_rtl.gen.bench.array`. Its earlier builds and their critical paths are in mac-array.md.

## The sliding-window dataflow: one query block, back to back

One query block of a diagonal run as the engine is to issue it ([sparse.md](sparse.md#sliding-window-diagonal-tiling-design-and-bounds)):
score tile `t` (`d` diagonal steps), then the value tile of `t − 1` (its weights loaded on `p` meanwhile, `d/8`
stationary chunks of 8 steps), 28 tiles (ViL stage 1's 2 × 14 a block inside the image), the global column in
one of them; 8×8 with the ECP5 primitives, the result FIFO sized as the engine sizes it for value tiles;
RTL simulation (Verilator), streams never stalled. The model is `SystolicArray.run_cycles`.
Command: `./dev.sh bench array --parts sliding`.

<!-- begin sliding -->
{sliding}
<!-- end sliding -->
"""
