"""The cost model against the RTL and Yosys: calibration and validation tables, enumeration speed,
the area fit.  Writes docs/cost-model.md (and, part ``area``, gen/cost/area_fit.json).

Parts: ``calibration`` (the fitted constants against the RTL cycle counts they came from),
``validation`` (new RTL runs the model never saw: dense, pruned, window, dilated, grid, ranking,
progressive), ``area`` (runs or resumes the sweeps in gen/flows/sweeps/, fits LUT/FF/DSP/BRAM per family),
``speed`` (exhaustive enumeration per workload and part).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

import attn_rtl.gen.cost
import attn_rtl.gen.flows
from attn_rtl.gen.cost.model import CALIBRATION, TARGETS, in_domain, predict_cycles
from attn_rtl.gen.cost.workloads import WORKLOADS, Workload
from attn_rtl.sim.sparse import parse_pattern

from .pages import DOCS, write_page

__all__ = ["run", "PARTS", "VALIDATION", "PROGRESSIVE", "measure_validation", "measure_progressive"]

PARTS = ("calibration", "validation", "area", "speed")
CALIBRATION_FILE = Path(attn_rtl.gen.cost.__file__).with_name("cost_calibration.json")
SWEEPS = Path(attn_rtl.gen.flows.__file__).with_name("sweeps")
SCALE = dict(scale_mult=36490, scale_shift=17)

# The dense builds are tests/test_engine.py's (one Verilator build each, shared through the cache).
DENSE_3X2 = dict(rows=3, cols=2, max_seq_len=64, max_head_dim=32, max_heads=2)
DENSE_8X8 = dict(rows=8, cols=8, max_seq_len=64, max_head_dim=64, max_heads=2)
SPARSE_2X2 = dict(rows=2, cols=2, max_seq_len=64, max_head_dim=32, max_heads=2, sparse=True)
# Decoder runs: grouped heads need max_heads of the query heads.
DECODER_2X2 = dict(rows=2, cols=2, max_seq_len=64, max_head_dim=32, max_heads=4, sparse=True)
# Diagonal runs (SALO's dataflow) on a sliding build, Icarus, inside the domain (64-cycle tiles).
SLIDING_4X4 = dict(rows=4, cols=4, max_seq_len=64, max_head_dim=32, max_heads=2, sparse=True, sliding=True)
# SpAtten on Icarus (a build of seconds), inside the model's domain (d ≥ 4·max(rows, cols), 48-cycle tiles).
SPATTEN_2X2 = dict(rows=2, cols=2, max_seq_len=32, max_head_dim=24, max_heads=2, importance=True, row_flags=True)


def _window(*args, **kwargs):
    return parse_pattern(*args, **kwargs)


#: (name, engine build, workload, the run that realizes it). A pruned layer is the dense run over the
#: tokens and heads the DMA gathers, as attn_rtl.gen.simulate.simulate_layer runs it.
VALIDATION = [
    ("dense 8×8", DENSE_8X8, Workload("dense", 64, 64, 1), dict(seq_len=64, head_dim=64)),
    ("dense 8×8, L and d off the tile", DENSE_8X8, Workload("dense", 50, 40, 2),
     dict(seq_len=50, head_dim=40, heads=2)),
    ("dense 3×2", DENSE_3X2, Workload("dense", 37, 19, 2), dict(seq_len=37, head_dim=19, heads=2)),
    ("pruned 3×2 (half the tokens and heads)", DENSE_3X2,
     Workload("pruned", 64, 24, 2, token_keep=0.5, head_keep=0.5), dict(seq_len=32, head_dim=24, heads=1)),
    ("pruned 8×8 (3/4 of the tokens, half the heads)", DENSE_8X8,
     Workload("pruned", 64, 64, 2, token_keep=0.75, head_keep=0.5), dict(seq_len=48, head_dim=64, heads=1)),
    ("window 9 on 2×2", SPARSE_2X2, Workload("window", 64, 32, 1, pattern=_window("window", window=9)),
     dict(seq_len=64, head_dim=32, pattern=_window("window", window=9).to_dict())),
    ("dilated 4, δ 3, one global", SPARSE_2X2,
     Workload("dilated", 40, 32, 2, pattern=_window("dilated", window=4, dilation=3, global_tokens="5")),
     dict(seq_len=40, head_dim=32, heads=2, pattern=_window("dilated", window=4, dilation=3, global_tokens="5").to_dict())),
    ("grid 6×8, window 3×5, one global", SPARSE_2X2,
     Workload("grid", 48, 32, 1, pattern=_window("grid", grid="6x8", window2d="3x5", global_tokens="0")),
     dict(seq_len=48, head_dim=32, pattern=_window("grid", grid="6x8", window2d="3x5", global_tokens="0").to_dict())),
    ("diagonal window 9, one global, 4×4", SLIDING_4X4,
     Workload("diagonal window", 64, 32, 2, pattern=_window("window", window=9, global_tokens="20")),
     dict(seq_len=64, head_dim=32, heads=2, diagonal=True,
          pattern=_window("window", window=9, global_tokens="20").to_dict())),
    ("diagonal dilated 6, δ 3, 4×4", SLIDING_4X4,
     Workload("diagonal dilated", 60, 32, 1, pattern=_window("dilated", window=6, dilation=3)),
     dict(seq_len=60, head_dim=32, diagonal=True, pattern=_window("dilated", window=6, dilation=3).to_dict())),
    ("diagonal grid 8×8, window 5×5, one global, 4×4", SLIDING_4X4,
     Workload("diagonal grid", 64, 32, 1, pattern=_window("grid", grid="8x8", window2d="5x5", global_tokens="27")),
     dict(seq_len=64, head_dim=32, diagonal=True,
          pattern=_window("grid", grid="8x8", window2d="5x5", global_tokens="27").to_dict())),
    ("ranking run 2×2", SPATTEN_2X2, Workload("rank", 24, 24, 2, rank=True),
     dict(seq_len=24, head_dim=24, heads=2, importance=True)),
    ("causal prefill 2×2", DECODER_2X2, Workload("causal", 64, 32, 1, pattern=_window("causal")),
     dict(seq_len=64, head_dim=32, pattern=_window("causal").to_dict())),
    ("decode 2×2: 3 queries of 4 heads on 1 K/V head, causal window 20", DECODER_2X2,
     Workload("decode", 64, 32, 4, kv_heads=1, q_len=3, pattern=_window("causal-window", window=20)),
     dict(seq_len=64, head_dim=32, heads=4, kv_heads=1, query_len=3,
          pattern=_window("causal-window", window=20).to_dict())),
]
#: Progressive quantization: the MSB run, then one run per head over the rows it flagged.
PROGRESSIVE = dict(params=SPATTEN_2X2, shape=(2, 24, 24), seed=8, msb_bits=4, threshold=20_000)


def measure_validation(case) -> tuple[int, float]:
    """(RTL cycles, predicted cycles) of one :data:`VALIDATION` case."""
    from attn_rtl.gen.simulate import simulate_engine

    name, params, workload, run = case
    sim = "icarus" if params in (SPATTEN_2X2, SPARSE_2X2, DECODER_2X2, SLIDING_4X4) else "verilator"
    measured = simulate_engine(params, [run], sim=sim, seed=3, **SCALE)["runs"][0]["cycles"]
    predicted = predict_cycles(workload, params["rows"], params["cols"], params.get("prob_tiles", 3),
                               sliding=run.get("diagonal", False)).total[0]
    return measured, float(predicted)


def measure_progressive() -> tuple[int, float, np.ndarray]:
    """(RTL cycles of both passes, predicted, rows flagged per head) of :data:`PROGRESSIVE`."""
    from attn_rtl.gen.simulate import simulate_progressive

    p = PROGRESSIVE
    heads, seq_len, d = p["shape"]
    rng = np.random.default_rng(p["seed"])
    q, k, v = (rng.integers(-128, 128, p["shape"]) for _ in range(3))
    layer, reports = simulate_progressive(p["params"], q, k, v, msb_bits=p["msb_bits"], threshold=p["threshold"],
                                          sim="icarus", **SCALE)
    measured = reports["first"]["runs"][0]["cycles"] + sum(r["cycles"] for r in reports["recompute"]["runs"])
    flagged = layer.flags.sum(axis=1)
    rows, cols = p["params"]["rows"], p["params"]["cols"]

    def cycles(heads_, fraction):
        w = Workload("progressive", seq_len, d, heads_, msb_bits=p["msb_bits"], recompute_fraction=fraction)
        return predict_cycles(w, rows, cols, 3).total[0]

    # The model's layer takes one recompute fraction; the hardware flagged a different count per head.
    predicted = cycles(heads, 0) + sum(cycles(1, n / seq_len) - cycles(1, 0) for n in flagged)
    return measured, float(predicted), flagged


def _calibration() -> list[str]:
    data = json.loads(CALIBRATION_FILE.read_text())
    lines = ["| array | prob_tiles | d | L | heads | measured | predicted | error | in domain |",
             "|---|---|---|---|---|---|---|---|---|"]
    inside, outside = [], []
    for p in data["points"]:
        w = Workload("calibration", p["seq_len"], p["head_dim"], p["heads"])
        predicted = predict_cycles(w, p["rows"], p["cols"], p["prob_tiles"]).total[0]
        error = predicted / p["cycles"] - 1
        ok = bool(in_domain(w, p["rows"], p["cols"], p["prob_tiles"]))
        (inside if ok else outside).append(abs(error))
        lines.append(f"| {p['rows']}×{p['cols']} | {p['prob_tiles']} | {p['head_dim']} | {p['seq_len']} | {p['heads']} | "
                     f"{p['cycles']:,} | "
                     f"{predicted:,.0f} | {100 * error:+.2f}% | {'yes' if ok else 'no'} |")
    summary = (f"In the domain: {len(inside)} points, largest error {100 * max(inside):.2f}%. Outside: "
               f"{len(outside)} points, largest error {100 * max(outside):.1f}%. Constants: "
               + ", ".join(f"`{k}` = {v:g}" for k, v in CALIBRATION.items()) + ".")
    return [summary, "", *lines]


def _validation() -> list[str]:
    lines = ["| run | array | measured | predicted | error |", "|---|---|---|---|---|"]
    for case in VALIDATION:
        measured, predicted = measure_validation(case)
        p = case[1]
        lines.append(f"| {case[0]} | {p['rows']}×{p['cols']} | {measured:,} | {predicted:,.0f} | "
                     f"{100 * (predicted / measured - 1):+.2f}% |")
    measured, predicted, flagged = measure_progressive()
    lines.append(f"| progressive, 4 MSBs, rows flagged per head {', '.join(map(str, flagged))} of 24 | 2×2 | "
                 f"{measured:,} | {predicted:,.0f} | {100 * (predicted / measured - 1):+.2f}% |")
    return lines


def _area(run_sweeps: bool = True) -> list[str]:
    """Run (or resume) the sweeps of gen/flows/sweeps/, fit, write gen/cost/area_fit.json; ``run_sweeps=False``
    fits the points already in the sweeps' caches."""
    from attn_rtl.gen.cost.area import FIT_FILE, fit
    from attn_rtl.gen.flows.sweep import load_sweep_file, run_sweep, sweep_points
    from attn_rtl.gen.generate import elaborate
    from attn_rtl.gen.provenance import checkout_root
    from attn_rtl.sim.runner import default_cache_dir

    if checkout_root() is None:
        raise ValueError("bench cost --parts area rewrites the package's area fit (gen/cost/area_fit.json): "
                         "run it from a checkout of attn-rtl")
    results = []
    for path in sorted(SWEEPS.glob("engine-area-*.toml")):
        spec = load_sweep_file(path)
        out = default_cache_dir() / f"sweep-{path.stem}"
        if run_sweeps:
            sweep = sweep_points("engine", spec.get("base", {}), spec["grid"], spec["targets"])
            results += run_sweep(sweep, out, jobs=1, timeout=spec.get("timeout", 3600))["results"]
        else:
            results += [json.loads(f.read_text()) for f in sorted((out / "points").glob("*.json"))]
    points = []
    for r in results:
        if r["status"] != "ok":
            continue
        engine = elaborate("engine", r["params"])
        engine._MustUse__silence = True
        points.append(dict(family=r["target"], rows=r["params"]["rows"], cols=r["params"]["cols"],
                           memory_bits=engine.memory_bits, params=r["params"],
                           **{k: r[k] for k in ("lut", "ff", "dsp", "bram")}))
    fitted = fit(points)
    FIT_FILE.write_text(json.dumps({"about": "gen/cost/area.py fit; ./dev.sh bench cost --parts area",
                                    "fit": fitted, "points": points}, indent=1, sort_keys=True) + "\n")
    lines = ["| family | points | LUT | FF | DSP | BRAM |", "|---|---|---|---|---|---|"]
    for family, f in sorted(fitted.items()):
        c, e = f["coefficients"], f["max_relative_error"]
        cells = [f"{c[r]['one']:,.0f} {c[r]['rows']:+,.1f}·R {c[r]['cols']:+,.1f}·C {c[r]['pes']:+,.1f}·RC "
                 f"{c[r]['memory_kbit']:+,.2f}·kbit (±{100 * e[r]:.0f}%)" for r in ("lut", "ff", "dsp", "bram")]
        how = f" (scaled from {f['scaled_from']})" if "scaled_from" in f else ""
        lines.append(f"| {family}{how} | {f['points']} | " + " | ".join(cells) + " |")
    lines += ["", *_held_out(fitted)]
    lines += ["", "| family | array | max_seq_len | max_head_dim | LUT | FF | DSP | BRAM |", "|---|---|---|---|---|---|---|---|"]
    for p in sorted(points, key=lambda p: (p["family"], p["rows"], p["cols"], p["params"]["max_seq_len"])):
        lines.append(f"| {p['family']} | {p['rows']}×{p['cols']} | {p['params']['max_seq_len']} | "
                     f"{p['params']['max_head_dim']} | {p['lut']:,} | {p['ff']:,} | {p['dsp']} | {p['bram']} |")
    return lines


def _held_out(fitted: dict) -> list[str]:
    """The fit against the default engine (8×8, d ≤ 128, L ≤ 1024, 16 heads; not among the fitted
    points), as synthesized for docs/engine-benchmarks.md."""
    import re

    from attn_rtl.gen.cost.area import predict_area
    from attn_rtl.gen.cost.model import memory_bits

    lines = ["Held out: the default engine (8×8, d ≤ 128, L ≤ 1024, 16 heads), synthesized by "
             "`./dev.sh bench engine --parts area` (docs/engine-benchmarks.md):", "",
             "| family | | LUT | FF | DSP | BRAM |", "|---|---|---|---|---|---|"]
    table = (DOCS / "engine-benchmarks.md").read_text()
    bits = memory_bits(8, 8, 3, 1024, 128, 16)
    for family in ("ecp5", "xilinx7"):
        found = re.search(rf"^\| engine 8×8, d ≤ 128, L ≤ 1024 \| {family} \| (\d+) \| (\d+) \| \d+ \| (\d+) \| (\d+) \|",
                          table, re.M)
        if not found or family not in fitted:
            continue
        measured = [int(x) for x in found.groups()]
        predicted = predict_area(family, 8, 8, bits, fitted=fitted)
        lines.append(f"| {family} | measured | " + " | ".join(f"{m:,}" for m in measured) + " |")
        lines.append(f"| {family} | predicted | " + " | ".join(
            f"{float(predicted[r]):,.0f} ({100 * (float(predicted[r]) / m - 1):+.0f}%)"
            for r, m in zip(("lut", "ff", "dsp", "bram"), measured)) + " |")
    return lines


def _speed() -> list[str]:
    from attn_rtl.gen.cost.explore import explore

    lines = ["| workload | part | candidates | seconds | candidates/s | feasible | best (rows×cols, prob_tiles) | "
             "cycles | latency (us) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, workload in WORKLOADS.items():
        for target in TARGETS:
            try:
                e = explore(workload, target)
            except ValueError as err:
                lines.append(f"| {name} | {target} | | | | 0 | {err} | | |")
                continue
            c = e.config(int(e.best[0]))
            i = int(e.best[0])
            lines.append(f"| {name} | {target} | {e.candidates:,} | {e.seconds:.2f} | {e.candidates_per_second:,.0f} | "
                         f"{e.feasible:,} | {c['rows']}×{c['cols']}, {c['prob_tiles']} | {e.table['cycles'][i]:,.0f} | "
                         f"{e.table['latency_us'][i]:,.0f} |")
    return lines


def run(parts=PARTS, *, out: Path | None = None, run_sweeps: bool = True) -> Path:
    """Measure ``parts`` and write docs/cost-model.md; ``run_sweeps=False`` fits the area model to
    the points already in the sweeps' caches instead of running (or resuming) the sweeps."""
    sections = {}
    for part, make in (("calibration", _calibration), ("validation", _validation),
                       ("area", lambda: _area(run_sweeps)), ("speed", _speed)):
        if part in parts:
            start = time.perf_counter()
            sections[part] = make()
            print(f"bench cost: {part} in {time.perf_counter() - start:.0f} s")
    return write_page(out or DOCS / "cost-model.md", _TEMPLATE, PARTS, sections)


_TEMPLATE = """# Cost model and design-space exploration

Written by `./dev.sh bench cost` (`gen/bench/cost.py`) on {date} ({machine}); {versions}.
Re-run one part with `./dev.sh bench cost --parts validation` (or `calibration`, `area`, `speed`).

`gen/cost/model.py` predicts, for a configuration of the engine generator and a workload
(`gen/cost/workloads.py`), the cycles of the layer, the on-chip buffer bits, the off-chip bytes read and
written and the energy; `gen/cost/area.py` predicts LUT, FF, DSP and block RAM per FPGA family from
a fit to synthesized sweeps. `attn-rtl explore` (`gen/cost/explore.py`) enumerates every configuration
at once (numpy arrays, MMEE-style), drops those that do not fit the part or the budget or that lie
outside the cycle model's validated domain, and ranks the rest.

## Cycles

Per head, per query block of `rows` queries, the scheduler computes the block's keys (every key an
allowed pair of its rows reaches; sim/sparse.py) in key tiles of `cols` keys. A key tile takes a
score tile of `max(d, rows)` cycles and `ceil(d/cols)` value tiles of `max(k, rows)` cycles (`k`
keys in the tile; shorter tiles wait for the array's drain). A probability buffer is held for the
tile's own cycles times 1.5 plus `hold + hold_edge·(rows+cols)`; with `prob_tiles` buffers the rate
is at most one tile per held/`prob_tiles` cycles. A run adds `base + per_edge·(rows+cols)` for fill
and drain. A ranking run (SpAtten importance) adds a scan pass of score tiles and, per query block,
the wait for the scan's reciprocals (the array's latency `rows+cols+8`, its drain `rows`, the
softmax's sum latency `45 + 2·log2 cols`). Pruning runs the layer over `ceil(token_keep·L)` tokens
and `ceil(head_keep·H)` heads; progressive quantization adds one run per head over the flagged rows
against every key. Decoder layers (docs/engine.md, *Decoder attention*) run per K/V head over its
group's `q_len·H/H_kv` stacked queries, the blocks' keys by the causal patterns' rule (keys from a
block's lowest allowed key to its last query's position); a causal prefill computes a little more than
half the tiles of a dense one. The figures depend on `(rows, cols, prob_tiles)` only, so the enumeration
evaluates that sub-grid and broadcasts it over the other parameters.

**Validated domain**: `d ≥ 4·max(rows, cols)`, key tiles of at least 32 cycles (64 for sparse
patterns) and `prob_tiles ≥ 3`. Outside it the probability buffers' lifetime (or the sparse engine's
key path) bounds the rate in ways the model does not capture: errors up to 20% (table below; with
two buffers the lifetime depends on the order of tiles, not on fixed latencies). `explore` ranks only
configurations inside the domain.

### Calibration: the RTL cycle counts the constants were fitted to

Full-rate runs (streams never stall) measured with `attn_rtl.gen.simulate.measure_engine`; data in
`gen/cost/cost_calibration.json` (sources named there).

<!-- begin calibration -->
{calibration}
<!-- end calibration -->

### Validation: runs the model never saw, simulated now

Cocotb on Verilator (Icarus for the 2×2 sparse, decoder and SpAtten builds), no idle cycles or backpressure; the same
runs are `tests/test_cost_model.py`, which holds them to ±3% in the default suite. At full size, every figure of
docs/decoder-benchmarks.md (causal prefill at L = 2048, grouped decode at kv_len = 4096, 8×8 and 4×15) has the
model's prediction beside it: within 0.1%.

<!-- begin validation -->
{validation}
<!-- end validation -->

## Memory, traffic and energy

On-chip bits are `AttentionEngine.memory_bits` (docs/engine.md, tested equal for several builds).
Off-chip bytes: Q once; per query block its keys' K and V (K twice in a ranking run, at `msb_bits`
in a progressive first run; again in full for the recomputed rows); O written once per computed row.
With grouped heads a block holds a group's queries, so K and V are read per K/V head, not per query head.

Energy, 45 nm figures from M. Horowitz, "Computing's energy problem (and what we can do about it)",
ISSCC 2014, Figure 1.1.9:

| event | pJ | source |
|---|---|---|
| 8-bit multiply + 32-bit add (one MAC, every PE every busy cycle) | 0.2 + 0.1 | Horowitz 2014: 8b mult 0.2 pJ, 32b add 0.1 pJ |
| SRAM bit read or written (Q bank, probability buffers, accumulators) | 10/64 | Horowitz 2014: 64-bit access of an 8 KB SRAM, 10 pJ |
| DRAM bit (every byte read or written off chip) | 2600/64 | Horowitz 2014: 64-bit DRAM access 1.3-2.6 nJ (upper end) |
| softmax per score (compare, exp2 table read, multiply) | 0.05 + 2.5 + 0.8 | derived from Horowitz 2014: a 16-bit add between 8b (0.03) and 32b (0.1), linear in width; 16 bits of the 8 KB SRAM figure; a 16-bit multiply from 8b 0.2 pJ with energy in the square of the width (which gives 32b 3.2 against his 3.1) |

## Area

A least-squares linear fit per family and resource over a constant, `rows`, `cols`, `rows·cols`
and the buffer kilobits (`gen/cost/area.py`), from the sweeps in `gen/flows/sweeps/` (Yosys 0.70 via
YoWASP; the fit and its points are `gen/cost/area_fit.json`; the `area` part runs or resumes those sweeps,
a few minutes per engine). iCE40 has two points (no engine fits a UP5K): one scale per resource on
the ECP5 fit. Largest relative error of the fit on its own points in parentheses. Not modelled:
`max_heads`, the `multiplier` and `fifo_memory` choices (the sweeps use the defaults); block RAM
is the weakest column (inference of RAM against LUT RAM depends on depth).

<!-- begin area -->
{area}
<!-- end area -->

## Enumeration

`attn-rtl explore --workload NAME --target PART`: every combination of `rows` and `cols` 1-64,
`prob_tiles` 3-16 (2 is outside the validated domain), `max_seq_len`, `max_head_dim` and `max_heads` at 1, 2, 4× (1, 2× for heads) the
workload's (powers of two), and on ECP5 the `multiplier` and `fifo_memory` primitives. Seconds are
the wall time of enumerating and evaluating every candidate (this machine, one core). Latency is at
the clock of `gen/cost/explore.py` `FMAX_MHZ`: 79.5 MHz measured on ECP5 for the default engine (reset timed, docs/timing.md); the
iCE40 and Xilinx figures are not engine measurements (said in the output).

`--memory-mapped` enumerates the memory-mapped top (docs/system.md) instead: every candidate twice,
without a K/V buffer and with one holding the workload's keys (`kv_buffer_keys`); the DMA's staging bits
(`dma_memory_bits`, equal to `EngineDMA.memory_bits`) count in the area, its off-chip bytes
(`offchip_bytes(..., kv_buffer_keys=)`: a head that fits is read once) in the energy. Dense layers only.

<!-- begin speed -->
{speed}
<!-- end speed -->
"""
