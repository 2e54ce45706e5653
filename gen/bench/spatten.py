"""SpAtten in the engine, measured in RTL simulation: the cost of importance runs, what pruning and
progressive quantization save (cycles, fetched bytes).  Writes docs/spatten-benchmarks.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .pages import DOCS, write_page

__all__ = ["run", "PARTS"]

PARTS = ("cycles", "layers")
ENGINE = dict(rows=8, cols=8, max_seq_len=256, max_head_dim=64, max_heads=4, importance=True, row_flags=True)
#: Logits of int8 operands drawn as N(0, 1) quantized (what the CLI's float inputs give): rows neither flat
#: nor one-hot, so thresholds select some rows.
SCALE = dict(scale_mult=36490, scale_shift=17)


def _cycles(sim: str) -> list[str]:
    from attn_rtl.gen.simulate import simulate_engine

    lines = ["| L | d | plain run | importance run | ratio | row-flag run (threshold 0.6) |", "|---|---|---|---|---|---|"]
    for seq_len in (64, 256):
        runs = [dict(seq_len=seq_len, head_dim=64, heads=1), dict(seq_len=seq_len, head_dim=64, heads=1, importance=True),
                dict(seq_len=seq_len, head_dim=64, heads=1, threshold=round(0.6 * (1 << 15)))]
        report = simulate_engine(ENGINE, runs, sim=sim, seed=3, **SCALE)
        plain, ranked, flagged = (r["cycles"] for r in report["runs"])
        lines.append(f"| {seq_len} | 64 | {plain:,} | {ranked:,} | {ranked / plain:.2f} | {flagged:,} |")
    return lines


def _layers(sim: str) -> list[str]:
    from attn_rtl.gen.simulate import simulate_layer, simulate_progressive

    rng = np.random.default_rng(5)
    q, k, v = (rng.integers(-128, 128, (4, 128, 64)) for _ in range(3))
    lines = ["| run | tokens × heads | cycles | bytes fetched (K) |", "|---|---|---|---|"]
    first, rep1 = simulate_layer(ENGINE, q, k, v, token_keep=64, head_keep=2, sim=sim, seed=5, **SCALE)
    second, rep2 = simulate_layer(ENGINE, q, k, v, tokens=first.kept_tokens, heads=first.kept_heads, sim=sim, seed=6,
                                  **SCALE)
    plain, rep0 = simulate_layer(dict(ENGINE, importance=False), q, k, v, sim=sim, seed=7, **SCALE)
    for name, layer, rep in (("layer, no pruning", plain, rep0),
                             ("layer 1: importance run, keep 64 tokens, 2 heads", first, rep1),
                             ("layer 2: the kept tokens and heads", second, rep2)):
        lines.append(f"| {name} | {len(layer.tokens)} × {len(layer.heads)} | {rep['engine']['runs'][0]['cycles']:,} | "
                     f"{layer.fetched.total:,} ({layer.fetched.k:,}) |")
    lines += ["", "| progressive (K's 4 MSBs first) | rows recomputed | cycles (both runs) | K bytes fetched / in full |",
              "|---|---|---|---|"]
    for threshold in (0.0, 0.3, 0.6):
        layer, reps = simulate_progressive(ENGINE, q[:1], k[:1], v[:1], msb_bits=4,
                                           threshold=round(threshold * (1 << 15)), sim=sim, seed=8, **SCALE)
        cycles = sum(r["cycles"] for rep in reps.values() for r in rep["runs"])
        lines.append(f"| threshold {threshold} | {layer.recomputed_rows} of {layer.flags.size} "
                     f"({layer.recomputed_fraction:.1%}) | {cycles:,} | {layer.k_bytes_fetched:,} / "
                     f"{layer.k_bytes_full:,} ({layer.k_bytes_fetched / layer.k_bytes_full:.0%}) |")
    return lines


def run(parts=PARTS, *, sim: str = "verilator", out: Path | None = None) -> Path:
    sections = {}
    if "cycles" in parts:
        sections["cycles"] = _cycles(sim)
    if "layers" in parts:
        sections["layers"] = _layers(sim)
    return write_page(out or DOCS / "spatten-benchmarks.md", _TEMPLATE, PARTS, sections)


_TEMPLATE = """# SpAtten in the engine: measured cost and savings

Written by `./dev.sh bench spatten` (`gen/bench/spatten.py`) on {date} ({machine}); {versions}.
Engine 8×8, d = 64, L ≤ 256, built with `importance` and `row_flags`; cycles from RTL simulation
(cocotb, streams never stalled) from the first input beat accepted to the last output beat; every
output checked bit-exact against the golden models on the way. Design: docs/engine.md.

## Importance runs and row flags

An importance run walks each query block twice (scan pass, then the computing pass): about 1.5× the
MACs of a plain run. Row flags cost no cycles. Command: `./dev.sh bench spatten --parts cycles`.

<!-- begin cycles -->
{cycles}
<!-- end cycles -->

## Cascade pruning and progressive quantization

Random int8 Q, K, V of 4 heads × 128 tokens (seed 5). Layer 1 ranks and keeps half the tokens and
heads (the top-k engine's RTL selects them); layer 2 computes only those. Bytes are what the DMA
streams (Q once, K and V once per query block, K twice in an importance run). Progressive runs on
head 0: first K's 4 most significant bits, then the rows whose largest probability is below the
threshold again with the full K. Command: `./dev.sh bench spatten --parts layers`.

<!-- begin layers -->
{layers}
<!-- end layers -->
"""
