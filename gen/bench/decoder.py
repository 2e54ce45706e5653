"""Benchmark of decoder attention on the engine: causal prefill and grouped KV-cache decode, in RTL.

Writes docs/decoder-benchmarks.md.  Run with ``./dev.sh bench decoder`` or pick parts with
``--parts prefill,decode``.  Every figure comes from the full-rate harness (``tb/engine_bench.v`` via
:func:`attn_rtl.gen.simulate.measure_engine`): streams never stall, every output beat is checked
against the golden model, and utilization counts the allowed pairs of every query head.
"""

from __future__ import annotations

import json
from pathlib import Path

from .pages import DOCS, write_page

__all__ = ["run", "PARTS", "BUILD", "PREFILL", "DECODE"]

PARTS = ("prefill", "decode")
#: One sparse 8×8 build for every point: a 4096-key cache, 64 query heads, d = 128.
BUILD = dict(rows=8, cols=8, max_seq_len=4096, max_head_dim=128, max_heads=64, sparse=True)
#: Prefill points: (seq_len, head_dim), one head, causal against dense.
PREFILL = ((512, 128), (2048, 128))
#: Decode points: (name, heads, kv_heads, q_len, pattern, array) at kv_len 4096, d = 128.
DECODE = (
    ("LLaMA-3-70B-like, 8 query heads per K/V head", 64, 8, 1, {"pattern": "causal"}, (8, 8)),
    ("LLaMA-3-8B-like, 4 per K/V head", 32, 8, 1, {"pattern": "causal"}, (8, 8)),
    ("the same on explore's pick for it (`llama3-8b-decode`, ecp5-85f)", 32, 8, 1, {"pattern": "causal"}, (4, 15)),
    ("the same heads, not grouped (32 K/V heads)", 32, 32, 1, {"pattern": "causal"}, (8, 8)),
    ("a sliding window of 1024 keys (Mistral-style), speculative q_len 2", 32, 8, 2,
     {"pattern": "causal-window", "window": 1024}, (8, 8)),
)
KV_LEN, DECODE_DIM = 4096, 128


def _cached(key: str, run: dict, sim: str, build: dict = BUILD) -> dict:
    """A measured point, kept in ``.cache/bench/decoder.json`` by HDL fingerprint (an interrupted run resumes)."""
    from attn_rtl.gen.generate import _hdl_fingerprint
    from attn_rtl.sim.runner import default_cache_dir

    cache = default_cache_dir() / "bench" / "decoder.json"
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    from attn_rtl.gen.simulate import measure_engine

    found = stored.setdefault(_hdl_fingerprint()[:16] + f"-{sim}", {})
    if key not in found:
        found[key] = measure_engine(build, [run], sim=sim)["runs"][0]
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(stored, indent=1))
    return found[key]


def _predicted(run: dict, rows: int, cols: int) -> float:
    """The cost model's cycles for ``run`` (gen/cost/model.py), to set beside the RTL's."""
    from attn_rtl.gen.cost.model import predict_cycles
    from attn_rtl.gen.cost.workloads import Workload
    from attn_rtl.sim.sparse import pattern_from_dict

    w = Workload("bench", run["seq_len"], run["head_dim"], run.get("heads", 1), kv_heads=run.get("kv_heads"),
                 q_len=run.get("query_len"), pattern=pattern_from_dict(run["pattern"]))
    return float(predict_cycles(w, rows, cols, 3).total[0])


def _model_cell(run: dict, found: dict, rows: int, cols: int) -> str:
    predicted = _predicted(run, rows, cols)
    return f"{predicted:,.0f} ({100 * (predicted / found['cycles'] - 1):+.2f}%)"


def _prefill(sim: str) -> list[str]:
    lines = ["| L | d | causal cycles | utilization (allowed pairs) | dense cycles | dense / causal | "
             "cost model, causal (error) |",
             "|---|---|---|---|---|---|---|"]
    for seq_len, d in PREFILL:
        base = dict(seq_len=seq_len, head_dim=d)
        causal_run = dict(base, pattern={"pattern": "causal"})
        causal = _cached(f"prefill-causal-{seq_len}-{d}", causal_run, sim)
        dense = _cached(f"prefill-dense-{seq_len}-{d}", dict(base, pattern={"pattern": "dense"}), sim)
        lines.append(f"| {seq_len} | {d} | {causal['cycles']:,} | **{causal['mac_utilization']:.2%}** | "
                     f"{dense['cycles']:,} | {dense['cycles'] / causal['cycles']:.2f}× | "
                     f"{_model_cell(causal_run, causal, BUILD['rows'], BUILD['cols'])} |")
    return lines


def kv_bytes(run: dict, rows: int, cols: int, data_bytes: int = 1) -> int:
    """Bytes of K and V the DMA streams for ``run``: K and V of every key each query block of each K/V
    head computes (the keys ``m_axis_kv_index`` names)."""
    from attn_rtl.sim.sparse import pattern_from_dict, scheduled_tiles

    kv_heads = run["kv_heads"]
    tiles = scheduled_tiles(pattern_from_dict(run["pattern"]), run["seq_len"], rows, cols,
                            query_len=run["query_len"], group=run["heads"] // kv_heads)
    return 2 * kv_heads * int(tiles.count.sum()) * run["head_dim"] * data_bytes


def _decode(sim: str) -> list[str]:
    lines = ["| layer | array | heads / K/V heads | q_len | cycles | MAC utilization | K/V bytes streamed | "
             "cost model (error) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, heads, kv_heads, q_len, pattern, (rows, cols) in DECODE:
        run = dict(seq_len=KV_LEN, query_len=q_len, head_dim=DECODE_DIM, heads=heads, kv_heads=kv_heads,
                   pattern=pattern)
        build = dict(BUILD, rows=rows, cols=cols)
        key = f"decode-{rows}x{cols}-{heads}-{kv_heads}-{q_len}-{json.dumps(pattern, sort_keys=True)}"
        found = _cached(key, run, sim, build)
        lines.append(f"| {name} | {rows}×{cols} | {heads} / {kv_heads} | {q_len} | {found['cycles']:,} | "
                     f"**{found['mac_utilization']:.2%}** | {kv_bytes(run, rows, cols):,} | "
                     f"{_model_cell(run, found, rows, cols)} |")
    return lines


def run(parts=PARTS, *, sim: str = "verilator", out: Path | None = None) -> Path:
    page = out or DOCS / "decoder-benchmarks.md"
    sections = {}
    if "prefill" in parts:
        sections["prefill"] = _prefill(sim)
    if "decode" in parts:
        sections["decode"] = _decode(sim)
    return write_page(page, _TEMPLATE, PARTS, sections)


_TEMPLATE = """# Decoder attention: measured prefill and decode

Written by `./dev.sh bench decoder` (`gen/bench/decoder.py`) on {date} ({machine}); {versions}.
Re-run one part with `./dev.sh bench decoder --parts prefill` (or `decode`).
The modes are in docs/engine.md (*Decoder attention*) and docs/numerics.md (section 10).

Every figure is from RTL simulation (Verilator) of one sparse 8×8 engine (`max_seq_len` = 4096,
`max_head_dim` = 128, `max_heads` = 64, `prob_tiles` = 3) with the DMA-model harness `tb/engine_bench.v`:
streams never stall, K and V are fetched by the keys `m_axis_kv_index` names, every output beat is
compared with the golden model.  Cycles run from the first input beat accepted to the last output beat.
Utilization = useful MACs (`2·d` per allowed (query, key) pair of every query head) / (PEs × cycles).
The last column is the cost model's prediction (gen/cost/model.py, docs/cost-model.md) and its error.

## Prefill (causal)

One head, every query of the sequence.  Key tiles wholly above the diagonal are skipped, diagonal tiles
masked per element; the dense run is the same engine with the dense pattern.  Goal: at least 97% at
L = 2048, d = 128, and about twice as fast as dense.

<!-- begin prefill -->
{prefill}
<!-- end prefill -->

## Decode (KV cache of 4096 keys, d = 128)

One step of a layer: `q_len` new queries per head against the cache.  The query heads of a group are
stacked into the rows of one block, so each K/V beat serves the whole group: with 8 heads per K/V head
the 8 rows are full; with 4 they are half full (a block holds the 4 heads at `q_len` positions, so
`q_len` = 2 fills them); `attn-rtl explore --workload llama3-8b-decode --target ecp5-85f` picks a 4×15 array
for it, whose 4 rows the group fills.  Not grouped, each head's single query fills one row of eight.  K/V bytes: int8
K and V of every key a query block computes (the keys `m_axis_kv_index` names), per block of each K/V head.  Goal: at least 90% for 64 heads on
8 K/V heads.

<!-- begin decode -->
{decode}
<!-- end decode -->
"""
