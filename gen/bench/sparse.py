"""Benchmark of sparse attention on the engine: utilization over allowed pairs and speedup over dense.

Writes docs/sparse-benchmarks.md.  Run with ``./dev.sh bench sparse``.  Every
workload runs in the full-rate harness (``tb/engine_bench.v`` built with
``SPARSE``: the DMA model follows the engine's ``m_axis_kv_index``), every
output beat checked against the golden model; dense runs of the same length
on the same hardware give the speedup.  Finished workloads are kept in
``.cache/bench/sparse.json`` (keyed by the HDL sources), so a re-run resumes.
"""

from __future__ import annotations

import json

from .pages import DOCS, write_page

__all__ = ["run", "PARTS", "WORKLOADS"]

PARTS = ("utilization", "diagonal", "global_row")
ARRAY = 8
#: (name, pattern flags, seq_len, SALO's model's utilization)
WORKLOADS = (
    ("Longformer (L 4096, w 512, 1 global)", dict(pattern="window", window=512, global_tokens="0"), 4096, 0.74),
    ("ViL stage 1 (56×56, 15×15, 1 global)", dict(pattern="grid", grid="56x56", window2d="15x15",
                                                  global_tokens="0"), 3136, 0.65),
)
#: Diagonal runs on a sliding build (docs/sparse.md): (name, pattern flags, seq_len, floor or None).
DIAGONAL = (
    ("ViL stage 1 (56×56, 15×15, 1 global)", WORKLOADS[1][1], 3136, 0.85),
    ("Longformer (L 4096, w 512, 1 global)", WORKLOADS[0][1], 4096, 0.98),
    ("dilated (L 4096, w 64, δ 4)", dict(pattern="dilated", window=64, dilation=4), 4096, None),
    ("grid 28×28, 7×7, 1 global", dict(pattern="grid", grid="28x28", window2d="7x7", global_tokens="0"), 784, None),
)
#: Diagonal runs of one global token on a build with the global PE row (docs/sparse.md): (name, flags,
#: seq_len, goal or None).
GLOBAL_ROW = (DIAGONAL[0][:3] + (0.90,), DIAGONAL[1], DIAGONAL[3])
HEAD_DIM = 64


def _params(seq_len: int, sliding: bool = False, global_row: bool = False) -> dict:
    return dict(rows=ARRAY, cols=ARRAY, max_seq_len=seq_len, max_head_dim=HEAD_DIM, max_heads=1, sparse=True,
                **({"sliding": True} if sliding else {}), **({"global_row": True} if global_row else {}))


def _measure(sim: str, flags: dict, seq_len: int, diagonal: bool = False, global_row: bool = False) -> dict:
    from attn_rtl.gen.simulate import measure_engine
    from attn_rtl.sim.sparse import parse_pattern

    run = dict(seq_len=seq_len, head_dim=HEAD_DIM, pattern=parse_pattern(**flags).to_dict(), diagonal=diagonal)
    return measure_engine(_params(seq_len, diagonal, global_row), [run], sim=sim)["runs"][0]


def _cache():
    from attn_rtl.sim.runner import default_cache_dir

    return default_cache_dir() / "bench" / "sparse.json"


def _store(sim: str):
    """The finished measurements of this HDL version (name -> run), and a function that measures one
    that is missing, saves it and rewrites the page."""
    from attn_rtl.gen.generate import _hdl_fingerprint

    cache = _cache()
    key = _hdl_fingerprint()[:16] + f"-{sim}"
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    found = stored.setdefault(key, {})

    def measured(name, flags, seq_len, rewrite, diagonal=False, global_row=False):
        if name not in found:
            found[name] = _measure(sim, flags, seq_len, diagonal, global_row)
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(stored, indent=1))
            rewrite()
        return found[name]

    return found, measured


def _utilization(sim: str, store, write) -> list[str]:
    from attn_rtl.sim.sparse import allowed_pairs, parse_pattern, scheduled_tiles

    found, measure = store

    def measured(name, flags, seq_len):
        return measure(name, flags, seq_len, lambda: write(lines()))

    def lines():
        out = ["| workload | allowed pairs | key tiles computed / dense | cycles | ideal | sparse utilization | "
               "SALO model | dense cycles | speedup | ideal speedup (MACs) |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        for name, flags, seq_len, salo in WORKLOADS:
            sparse, dense = found.get(name), found.get(f"dense {seq_len}")
            if sparse is None:
                out.append(f"| {name} | not measured | | | | | {salo:.2f} | | | |")
                continue
            pattern = parse_pattern(**flags)
            pairs = allowed_pairs(pattern, seq_len)
            computed = len(scheduled_tiles(pattern, seq_len, ARRAY, ARRAY))
            dense_tiles = (-(-seq_len // ARRAY)) ** 2
            ideal_speedup = seq_len * seq_len / pairs
            dense_cycles = f"{dense['cycles']:,}" if dense else "not measured"
            speedup = f"{dense['cycles'] / sparse['cycles']:.2f}×" if dense else ""
            out.append(f"| {name} | {pairs:,} | {computed:,} / {dense_tiles:,} | {sparse['cycles']:,} | "
                       f"{sparse['ideal_cycles']:,} | **{sparse['mac_utilization']:.1%}** | {salo:.2f} | "
                       f"{dense_cycles} | {speedup} | {ideal_speedup:.2f}× |")
        return out

    for name, flags, seq_len, _ in WORKLOADS:
        measured(name, flags, seq_len)
    for seq_len in sorted({w[2] for w in WORKLOADS}):
        measured(f"dense {seq_len}", dict(pattern="dense"), seq_len)
    return lines()


def _diagonal(sim: str, store, write) -> list[str]:
    from attn_rtl.gen.cost.model import predict_cycles
    from attn_rtl.gen.cost.workloads import Workload
    from attn_rtl.sim.sliding import sliding_bound
    from attn_rtl.sim.sparse import parse_pattern

    found, measure = store

    def lines():
        out = ["| workload | allowed pairs | diagonal tiles | bound (tiling) | cycles | ideal | sparse utilization | "
               "floor | gathered tiles | cost model | dense cycles | speedup | ideal speedup (MACs) |",
               "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, flags, seq_len, floor in DIAGONAL:
            run = found.get(f"diagonal {name}")
            if run is None:
                out.append(f"| {name} | not measured | | | | | | | | | | | |")
                continue
            pattern = parse_pattern(**flags)
            bound = sliding_bound(pattern, seq_len, ARRAY, ARRAY)
            gathered = found.get(name)
            gathered_text = f"{gathered['mac_utilization']:.1%}" if gathered else "not measured"
            dense = found.get(f"dense {seq_len}")
            predicted = predict_cycles(Workload("diagonal", seq_len, HEAD_DIM, 1, pattern=pattern), ARRAY, ARRAY, 3,
                                       sliding=True).total[0]
            dense_cycles = f"{dense['cycles']:,}" if dense else "not measured"
            speedup = f"{dense['cycles'] / run['cycles']:.2f}×" if dense else ""
            out.append(f"| {name} | {bound['pairs']:,} | {bound['tiles']:,} | {bound['bound']:.2%} | "
                       f"{run['cycles']:,} | {run['ideal_cycles']:,} | **{run['mac_utilization']:.2%}** | "
                       f"{f'{floor:.0%}' if floor else '–'} | {gathered_text} | "
                       f"{predicted:,.0f} ({100 * (predicted / run['cycles'] - 1):+.2f}%) | {dense_cycles} | "
                       f"{speedup} | {seq_len * seq_len / bound['pairs']:.2f}× |")
        return out

    for name, flags, seq_len, _ in DIAGONAL:
        measure(f"diagonal {name}", flags, seq_len, lambda: write(lines()), diagonal=True)
        measure(name, flags, seq_len, lambda: write(lines()))   # the gathered tiles beside them
    for seq_len in sorted({w[2] for w in DIAGONAL}):
        measure(f"dense {seq_len}", dict(pattern="dense"), seq_len, lambda: write(lines()))
    return lines()


def _global_row(sim: str, store, write) -> list[str]:
    from attn_rtl.gen.cost.model import predict_cycles
    from attn_rtl.gen.cost.workloads import Workload
    from attn_rtl.sim.sliding import diagonal_tiles, sliding_bound
    from attn_rtl.sim.sparse import parse_pattern

    found, measure = store
    row_multipliers = ARRAY + 1   # the row's lanes: a block's rows and the global lane

    def lines():
        out = ["| workload | tiles with the row | bound with the row | cycles | ideal | sparse utilization (array) | "
               "over every multiplier | goal | without the row | cost model |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        for name, flags, seq_len, goal in GLOBAL_ROW:
            run, plain = found.get(f"global row {name}"), found.get(f"diagonal {name}")
            if run is None:
                out.append(f"| {name} | not measured | | | | | | | | |")
                continue
            pattern = parse_pattern(**flags)
            tiles = len(diagonal_tiles(pattern, seq_len, ARRAY, ARRAY, global_row=1))
            bound = sliding_bound(pattern, seq_len, ARRAY, ARRAY)["global_row_bound"]
            predicted = predict_cycles(Workload("row", seq_len, HEAD_DIM, 1, pattern=pattern), ARRAY, ARRAY, 3,
                                       sliding=True, global_row=True).total[0]
            every = run["useful_macs"] / ((ARRAY * ARRAY + row_multipliers) * run["cycles"])
            plain_text = (f"{plain['mac_utilization']:.2%} ({plain['cycles']:,} cycles)" if plain
                          else "not measured")
            out.append(f"| {name} | {tiles:,} | {bound:.2%} | {run['cycles']:,} | {run['ideal_cycles']:,} | "
                       f"**{run['mac_utilization']:.2%}** | {every:.2%} | {f'{goal:.0%}' if goal else '–'} | "
                       f"{plain_text} | {predicted:,.0f} ({100 * (predicted / run['cycles'] - 1):+.2f}%) |")
        return out

    for name, flags, seq_len, _ in GLOBAL_ROW:
        measure(f"global row {name}", flags, seq_len, lambda: write(lines()), diagonal=True, global_row=True)
        measure(f"diagonal {name}", flags, seq_len, lambda: write(lines()), diagonal=True)
    return lines()


def run(parts=PARTS, *, sim: str = "verilator", out=None):
    page = out or DOCS / "sparse-benchmarks.md"
    sections = {}

    def writer(part):
        return lambda lines: write_page(page, _TEMPLATE, PARTS, {**sections, part: lines})

    store = _store(sim)   # one HDL version for the whole run
    if "utilization" in parts:
        sections["utilization"] = _utilization(sim, store, writer("utilization"))
    if "diagonal" in parts:
        sections["diagonal"] = _diagonal(sim, store, writer("diagonal"))
    if "global_row" in parts:
        sections["global_row"] = _global_row(sim, store, writer("global_row"))
    return write_page(page, _TEMPLATE, PARTS, sections)


_TEMPLATE = """# Sparse attention on the engine: measured utilization and speedup

Written by `./dev.sh bench sparse` (`gen/bench/sparse.py`) on {date} ({machine}); {versions}.
The patterns and the scheduler are in docs/sparse.md.

Sparse utilization = useful MACs over allowed pairs only (`2·d` per allowed (query, key) pair) /
(PEs × cycles from the first input beat accepted to the last output beat sent); one head, d = 64,
8×8 array, streams that never stall, measured in RTL simulation (Verilator, the DMA-model harness
`tb/engine_bench.v` built with `SPARSE`, which gathers K and V by the key indices of the engine's
`m_axis_kv_index`); every output beat is compared with the golden model. Dense cycles: the same
engine and length with `--pattern dense`; speedup = dense cycles / sparse cycles, next to the ideal
ratio of MACs (L² / allowed pairs). Goal (issue 6): at least 90% sparse utilization on both; anchor:
SALO's own performance model, 0.74 (Longformer) and 0.65 (ViL).
Command: `./dev.sh bench sparse` (results kept in `.cache/bench/sparse.json`; a re-run resumes).

<!-- begin utilization -->
{utilization}
<!-- end utilization -->

## Diagonal runs (SALO's sliding-window dataflow)

The same workloads, and a dilated window and a second 2-D shape, as diagonal runs of a sliding build
(`sparse = true, sliding = true`; docs/sparse.md, *Diagonal runs in the engine*): row `i` of a tile takes keys offset by
`i`, so each query row sees its own window; the harness built with `SPARSE` and `SLIDING` gathers K and V by
the lanes `m_axis_kv_index` names (`rows + cols` of them), every output beat compared with the golden model
(`attn_rtl.sim.sliding`). Bound: allowed pairs / (tiles · 64), what the tiling allows if the engine never
waited (`sliding_bound`); gathered: the table above, same workload on the gathered tiles; cost model: the
cycles `predict_cycles(..., sliding=True)` predicts and its error; dense cycles and speedup as above (the
dense runs above, same array). Goal (issue 24): ViL floor 85% (goal 90%), Longformer ≥ 98%.
Command: `./dev.sh bench sparse --parts diagonal` (results kept with the table above's).

<!-- begin diagonal -->
{diagonal}
<!-- end diagonal -->

## Diagonal runs with the global PE row

The workloads above that have one global token, as diagonal runs of a build with SALO's global PE row
(`sparse = true, sliding = true, global_row = true`; docs/sparse.md, *The global PE row*): the global query is
computed beside the array as the keys pass, so its blocks of diagonal tiles go. Utilization counts every allowed
pair's MACs (the global query's included) over the array's 64 PEs and the cycles, as above; "over every
multiplier" divides by the row's 9 multipliers too. Without the row: the same run on a sliding build without it,
measured beside it (same HDL). Bound with the row: every allowed pair over the tiles left (`sliding_bound`'s
`global_row_bound`); cost model: `predict_cycles(..., sliding=True, global_row=True)`. Goal (issue 24):
Longformer ≥ 98%, ViL 90% (floor 85%).
Command: `./dev.sh bench sparse --parts global_row` (results kept with the tables above).

<!-- begin global_row -->
{global_row}
<!-- end global_row -->
"""
