"""Benchmark of the top-k engine: cycles in RTL simulation and Yosys area for several (n, k, lanes).

Writes docs/topk-benchmarks.md.  Run with ``./dev.sh bench topk``.  Each
point is a top-k engine elaborated for exactly that ``max_n``/``max_k``; its
cycles are the worst of three problems (random values, an ascending ramp,
all equal) sent one at a time, every answer checked against the golden
model.  Synthesis results are kept in ``.cache/bench/topk.json`` (keyed by
the HDL sources), so a re-run resumes.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor

from .pages import DOCS, write_page

__all__ = ["run", "PARTS", "POINTS"]

PARTS = ("table",)
#: (n, k, lanes); the first is issue 7's goal (SpAtten's setting).
POINTS = ((1024, 128, 16), (1024, 128, 8), (1024, 128, 32), (1024, 32, 16), (4096, 256, 16), (256, 32, 4),
          (64, 8, 1))
TARGETS = ("ecp5", "xilinx7")
GOAL, SPATTEN = 108, 215


def _params(n, k, lanes) -> dict:
    return dict(lanes=lanes, max_n=n, max_k=k, value_width=16, signed=True)


def _cycles(sim: str, n, k, lanes) -> dict:
    from attn_rtl.gen.simulate import simulate_topk

    problems = [dict(n=n, k=k, kind=kind) for kind in ("random", "ascending", "equal")]
    report = simulate_topk(_params(n, k, lanes), problems, sim=sim, seed=1, measure=True)
    return dict(cycles=max(report["cycles_per_problem"]), levels=report["levels"])


def _synth(n, k, lanes, target) -> dict:
    from attn_rtl.gen.flows.synth import synthesize
    from attn_rtl.gen.generate import cached_verilog

    path, _ = cached_verilog("topk", _params(n, k, lanes))
    result = synthesize(path, "topk_engine", target)
    return {key: result[key] for key in ("lut", "ff", "carry", "lutram", "bram", "dsp")}


def _table(sim: str, jobs: int, write) -> list[str]:
    from attn_rtl.gen.generate import _hdl_fingerprint
    from attn_rtl.sim.runner import default_cache_dir

    cache = default_cache_dir() / "bench" / "topk.json"
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    found = stored.setdefault(_hdl_fingerprint()[:16], {})

    def save():
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(stored, indent=1))
        write(lines())

    def lines():
        out = ["| n | k | lanes | merge levels | cycles (first value in → last pair out) | input beats | "
               "after the last input beat | ECP5 LUT4 / FF / CCU2C / DPR16X4 | "
               "Xilinx 7 LUT / FF / CARRY4 / LUTRAM |",
               "|---|---|---|---|---|---|---|---|---|"]
        for n, k, lanes in POINTS:
            name = f"{n}-{k}-{lanes}"
            c = found.get(f"cycles {name}")
            beats = -(-n // lanes)
            cycles = "not measured" if c is None else (
                f"**{c['cycles']}** (goal ≤ {GOAL}; SpAtten ≈ {SPATTEN})" if (n, k, lanes) == POINTS[0]
                else str(c["cycles"]))
            after = "" if c is None else str(c["cycles"] - beats)
            areas = []
            for target in TARGETS:
                a = found.get(f"{target} {name}")
                areas.append("not synthesized" if a is None else
                             f"{a['lut']:,} / {a['ff']:,} / {a['carry']:,} / {a['lutram']:,}"
                             + (f" (+{a['bram']} BRAM)" if a["bram"] else ""))
            levels = "" if c is None else str(c["levels"])
            out.append(f"| {n} | {k} | {lanes} | {levels} | {cycles} | {beats} | {after} | {areas[0]} | {areas[1]} |")
        return out

    for n, k, lanes in POINTS:
        key = f"cycles {n}-{k}-{lanes}"
        if key not in found:
            found[key] = _cycles(sim, n, k, lanes)
            save()
    todo = [(n, k, lanes, target) for n, k, lanes in POINTS for target in TARGETS
            if f"{target} {n}-{k}-{lanes}" not in found]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_synth, *point): point for point in todo}
        for future in futures:
            n, k, lanes, target = futures[future]
            found[f"{target} {n}-{k}-{lanes}"] = future.result()
            save()
    return lines()


def run(parts=PARTS, *, sim: str = "icarus", jobs: int = 2, out=None):
    page = out or DOCS / "topk-benchmarks.md"

    def write(lines):
        write_page(page, _TEMPLATE, PARTS, {"table": lines}, sim=sim)

    sections = {"table": _table(sim, jobs, write)} if "table" in parts else {}
    return write_page(page, _TEMPLATE, PARTS, sections, sim=sim)


_TEMPLATE = """# Top-k engine: measured cycles and area

Written by `./dev.sh bench topk` (`gen/bench/topk.py`) on {date} ({machine}); {versions}.
The design is in docs/topk.md.

Each row is a top-k engine elaborated for exactly that n (`max_n`) and k (`max_k`), 16-bit signed
values. Cycles: from the first input beat accepted to the last output beat taken, streams that never
stall, RTL simulation ({sim}), the worst of three problems of n values (random, an ascending ramp,
all equal), every answer checked pair by pair against `sim/topk.py`. The input alone takes ⌈n/lanes⌉
beats; the column after it is the fixed latency of the sorter, the merge levels and the output queue.
Goal (issue 7): at most 108 cycles for n = 1024, k = 128, 16 lanes; anchor: SpAtten's QuickSelect
cost model, about 215. Area: Yosys (`synth_ecp5`; `synth_xilinx` with ABC at the LUT step, see
gen/flows/synth.py), cells of the whole engine; DPR16X4 and LUTRAM are the merge levels' banks.
Command: `./dev.sh bench topk` (results kept in `.cache/bench/topk.json`; a re-run resumes).

<!-- begin table -->
{table}
<!-- end table -->
"""
