"""Benchmark of the fused engine: MAC utilization from RTL simulation, Yosys area, nextpnr-ecp5 Fmax.

Writes docs/engine-benchmarks.md.  Run with ``./dev.sh bench engine`` or pick
parts with ``--parts utilization,area,fmax``.  Utilization comes from the
full-rate harness (``tb/engine_bench.v`` via :func:`attn_rtl.gen.simulate.measure_engine`):
streams never stall, every output beat is checked against the golden model.
"""

from __future__ import annotations

import concurrent.futures as futures
from pathlib import Path

from attn_rtl.gen.flows.synth import synthesize
from attn_rtl.gen.generate import cached_verilog

from .pages import DOCS, write_page

__all__ = ["run", "PARTS"]

PARTS = ("utilization", "area", "fmax")
SEQ_LENS = (64, 128, 256, 512, 1024)
HEAD_DIMS = (32, 64, 128)
SIZES = (4, 8, 16)
DEFAULT = dict(rows=8, cols=8, max_seq_len=1024, max_head_dim=128, max_heads=16)
AREA_TARGETS = ("ecp5", "xilinx7")
FMAX_TIMEOUT = 120 * 60


def _params(size: int) -> dict:
    return dict(rows=size, cols=size, max_seq_len=max(SEQ_LENS), max_head_dim=max(HEAD_DIMS), max_heads=1)


def _measure_point(size: int, seq_len: int, head_dim: int, sim: str) -> dict:
    from attn_rtl.gen.simulate import measure_engine

    return measure_engine(_params(size), [dict(seq_len=seq_len, head_dim=head_dim)], sim=sim)["runs"][0]


def _results_cache() -> Path:
    from attn_rtl.sim.runner import default_cache_dir

    return default_cache_dir() / "bench" / "engine-utilization.json"


def _utilization_lines(found: dict, sizes, seq_lens, head_dims) -> list[str]:
    lines = ["| array | d | " + " | ".join(f"L = {n}" for n in seq_lens) + " |",
             "|---|---|" + "---|" * len(seq_lens)]
    for size in sizes:
        for d in head_dims:
            cells = []
            for n in seq_lens:
                r = found.get(f"{size}-{n}-{d}")
                text = "not measured" if r is None else f"{r['mac_utilization']:.2%}"
                cells.append(f"**{text}**" if (size, d, n) == (8, 64, 512) else text)
            lines.append(f"| {size}×{size} | {d} | " + " | ".join(cells) + " |")
    lines += ["", "Cycles (first input beat accepted to last output beat) and the ideal (useful MACs / PEs):", "",
              "| array | d | L | cycles | ideal | mismatched output beats |", "|---|---|---|---|---|---|"]
    for size in sizes:
        for d in head_dims:
            for n in seq_lens:
                r = found.get(f"{size}-{n}-{d}")
                if r is not None:
                    lines.append(f"| {size}×{size} | {d} | {n} | {r['cycles']} | {r['ideal_cycles']} | "
                                 f"{r['mismatched_beats']} |")
    return lines


def _utilization(sim: str, jobs: int, write, sizes=SIZES, seq_lens=SEQ_LENS, head_dims=HEAD_DIMS) -> list[str]:
    """Measure every (size, L, d) point, shortest runs first, one simulation per point.

    Finished points are kept in ``.cache/bench/engine-utilization.json`` (keyed by the HDL sources),
    so an interrupted benchmark resumes; ``write(lines)`` is called after every point.
    """
    import json

    from attn_rtl.gen.generate import _hdl_fingerprint

    cache = _results_cache()
    key = _hdl_fingerprint()[:16] + f"-{sim}"
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    found = stored.get(key, {})
    todo = sorted(((s, n, d) for s in sizes for n in seq_lens for d in head_dims if f"{s}-{n}-{d}" not in found),
                  key=lambda p: p[1] * p[1] * p[2] / (p[0] * p[0]))
    with futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        pending = {pool.submit(_measure_point, s, n, d, sim): (s, n, d) for s, n, d in todo}
        for done in futures.as_completed(pending):
            s, n, d = pending[done]
            found[f"{s}-{n}-{d}"] = done.result()
            stored[key] = found
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(stored, indent=1))
            write(_utilization_lines(found, sizes, seq_lens, head_dims))
    return _utilization_lines(found, sizes, seq_lens, head_dims)


#: The designs of the area table: the default engine, and with SpAtten's importance and row flags.
AREA_DESIGNS = {"engine 8×8, d ≤ 128, L ≤ 1024": DEFAULT,
                "+ importance, row flags (SpAtten)": dict(DEFAULT, importance=True, row_flags=True)}


def _synth_job(job):
    design, target = job
    path, _ = cached_verilog("engine", AREA_DESIGNS[design])
    return synthesize(path, "attention_engine", target, dsp=True)


def _area(jobs: int) -> list[str]:
    points = [(design, target) for design in AREA_DESIGNS for target in AREA_TARGETS]
    with futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        return area_lines(dict(zip(points, pool.map(_synth_job, points))))


def area_lines(results: dict) -> list[str]:
    """The area table from ``{(design, target): synthesize(...) result}``."""
    from attn_rtl.hdl.engine import AttentionEngine

    lines = ["| design | target | LUT | FF | carry | DSP | BRAM | LUT RAM |", "|---|---|---|---|---|---|---|---|"]
    for (design, target), a in results.items():
        lines.append(f"| {design} | {target} | {a['lut']} | {a['ff']} | {a['carry']} | "
                     f"{a['dsp']} | {a['bram']} | {a['lutram']} |")
    lines.append("")
    for design, params in AREA_DESIGNS.items():
        engine = AttentionEngine(**params)
        engine._MustUse__silence = True
        lines.append(f"On-chip buffer memory of {design} (manifest `memory_bits`): {engine.memory_bits:,} bits.")
    return lines


#: The engine Fmax is measured with the ECP5 primitives: Yosys maps a generic 22×16 multiply onto two
#: unregistered MULT18X18D and a fabric adder, which caps the softmax at about 90 MHz by itself
#: (docs/softmax-benchmarks.md), so the generic build would measure Yosys's mapping, not the engine.  The
#: FIFOs are DP16KD block RAM with output registers: in flip-flops the array's result FIFO alone closed at
#: 56 MHz (its write decode), in block RAM at 101 MHz (docs/timing.md).
FMAX_CONFIG = dict(multiplier="ecp5", fifo_memory="ecp5")


def _fmax_build(_config):
    from attn_rtl.hdl.engine import AttentionEngine

    return AttentionEngine(**DEFAULT, **FMAX_CONFIG)


def _fmax(seeds, jobs: int) -> list[str]:
    from attn_rtl.gen.flows.pnr import fmax_cells, fmax_sweep

    # router1 did not finish the engine in 40 minutes; router2 routes congested designs faster.
    found = fmax_sweep(_fmax_build, [("default",)], seeds, jobs=jobs, timeout=FMAX_TIMEOUT,
                       nextpnr_args=("--router", "router2"))
    lines = ["| design | Fmax per seed (MHz) | median | goal |", "|---|---|---|---|"]
    for _, per_seed in found.items():
        shown, median = fmax_cells(per_seed, timeout=FMAX_TIMEOUT)
        lines.append(f"| engine 8×8 (ECP5 multipliers, register FIFOs) | {shown} | {median} | 200 |")
    return lines


def run(parts=PARTS, *, sim: str = "verilator", jobs: int = 2, seeds=(1, 2, 3), out: Path | None = None) -> Path:
    sections = {}
    page = out or DOCS / "engine-benchmarks.md"

    def write(lines):
        write_page(page, _TEMPLATE, PARTS, {"utilization": lines})

    if "utilization" in parts:
        sections["utilization"] = _utilization(sim, jobs, write)
    if "area" in parts:
        sections["area"] = _area(jobs)
    if "fmax" in parts:
        sections["fmax"] = _fmax(seeds, jobs)
    return write_page(page, _TEMPLATE, PARTS, sections)


_TEMPLATE = """# Fused engine: measured MAC utilization, area and Fmax

Written by `./dev.sh bench engine` (`gen/bench/engine.py`) on {date} ({machine}); {versions}.
Re-run one part with `./dev.sh bench engine --parts utilization` (or `area`, `fmax`).
The design is in docs/engine.md.

## MAC utilization

Useful MACs (`2·L²·d` per head: Q·Kᵀ and P·V) / (PEs × cycles from the first input beat accepted to the
last output beat sent), one head, streams that never stall, measured in RTL simulation (Verilator) with the
DMA-model harness `tb/engine_bench.v` (driven by `tb/engine_bench_main.v`, a standalone Verilator binary
built with `-O3`/`-O2`, about 200,000 engine cycles per second); every output beat is compared with the
golden model on the fly.
Goal: at least 95% for L = 512, d = 64 on 8×8 (bold). Anchors: FlatAttention 89.3%; SALO's own model 64–74%.
Each array size is one build with `max_seq_len` = 1024, `max_head_dim` = 128, `prob_tiles` = 3.
16×16 with d = 32 plateaus near 89.5% because a probability buffer's lifetime (score tile, array
latency, drain, softmax, value tile) exceeds three 64-cycle tile pairs there (94.5% on 2026-11-30: the
timing work of docs/timing.md added pipeline registers on that loop, among them the exp2 table read in
two stages and the probability rows landing a cycle later; the other sizes lost at most 0.32 points at
L = 64 and nothing from L = 512); with `prob_tiles` = 4 the
same engine measured 99.38% (L = 256) and 99.96% (L = 1024) (`measure_engine` with `prob_tiles=4`,
2026-11-22).
Command: `./dev.sh bench engine --parts utilization` (points are measured shortest first and kept in
`.cache/bench/engine-utilization.json`, so an interrupted run resumes; "not measured" marks points still to run).

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

nextpnr-ecp5 (`--freq 200 --timing-allow-fail --router router2`), the default engine with
`multiplier = "ecp5"` (MULT18X18D with its registers; what Yosys makes of a generic 22×16 multiply caps
the softmax at about 90 MHz) inside `hdl/pin_wrapper.py`, one run per seed (2-hour limit per run; with the default router1 the engine did not
route in 40 minutes). Command: `./dev.sh bench engine --parts fmax --seeds 1`.

<!-- begin fmax -->
{fmax}
<!-- end fmax -->

The first figure (seed 1, 2026-11-22, the engine as of commit 8fa9e3e: dense-only scheduler inside) routed
in 55 minutes (placement 45, router2 42 iterations) on 48% of the LUT4s, 52% of the flip-flops and 114 of 156
MULT18X18D. Its critical path is a handshake, not arithmetic: the output accumulator's hazard check
(`address` of stage 1 against the later stages) makes `partials.ready`, which through the result router
(`c.ready`) gates the array's result FIFO and comes back as the clock enable of the accumulator's wide
`partials` payload register across the die: 1.9 ns of logic and 22.1 ns of routing. That path is cut
since 2026-11-30 (a register slice in front of the softmax and one in front of the accumulator,
docs/engine.md), and the bench now builds the engine with `multiplier = "ecp5"`; the figure has not been
re-measured since (one run takes about an hour on an idle machine).
"""
