"""A short soak in the default suite: random back-to-back runs on small builds, bit-exact, no hang.

The long soak (thousands of runs) is ``./dev.sh bench verification --parts soak``
(docs/verification.md); both draw runs with :mod:`attn_rtl.gen.soak`.
"""

from __future__ import annotations

import numpy as np
import pytest

from attn_rtl.gen.soak import random_engine_run, random_spatten_run, soak_engine, soak_memory_mapped
from attn_rtl.sim.golden import Numerics
from attn_rtl.sim.sparse import check_queries, pattern_from_dict

DENSE = dict(rows=2, cols=3, max_seq_len=12, max_head_dim=5, max_heads=3)
SPARSE = dict(rows=3, cols=2, max_seq_len=12, max_head_dim=4, max_heads=2, sparse=True, max_globals=2,
              max_dilation=3)
SPATTEN = dict(rows=2, cols=3, max_seq_len=10, max_head_dim=5, max_heads=2, importance=True, row_flags=True)
SLIDING = dict(SPARSE, rows=2, cols=3, sliding=True, global_row=True)


@pytest.mark.parametrize("params, seed", [(DENSE, 11), (SPARSE, 12), (SLIDING, 14)], ids=["dense", "sparse", "sliding"])
def test_short_soak_of_the_engine(params, seed):
    # Icarus: its build takes seconds where Verilator's takes most of a minute, and 20 short runs are fast.
    result = soak_engine(params, 10, seed=seed, sim="icarus", batch=10)
    assert result.runs == 10 and result.cycles > 0


@pytest.mark.parametrize("sim, runs", [("icarus", 2), pytest.param("verilator", 12, marks=pytest.mark.slow)])
def test_short_soak_of_the_memory_mapped_spatten_build(sim, runs):
    result = soak_memory_mapped(SPATTEN, runs, seed=13, sim=sim, batch=3)
    assert result.runs == runs and result.cycles > 0


def test_draws_cover_every_end_of_every_range():
    """The run generator reaches 1 and the maximum of each size, every pattern, grouped heads and fewer
    queries, and only draws runs the build takes."""
    rng = np.random.default_rng(5)
    full = dict(SPARSE, max_heads=4)
    runs = [random_engine_run(rng, full, Numerics()) for _ in range(400)]
    for key, most in (("seq_len", 12), ("heads", 4), ("head_dim", 4)):
        assert {1, most} <= {r[key] for r in runs}
    assert {r["pattern"]["pattern"] for r in runs} == {"dense", "window", "dilated", "grid", "causal",
                                                       "causal-window"}
    assert any(r.get("kv_heads", r["heads"]) < r["heads"] for r in runs)
    assert any(r.get("query_len", r["seq_len"]) < r["seq_len"] for r in runs)
    for r in runs:
        check_queries(pattern_from_dict(r["pattern"]), r["seq_len"], r.get("query_len"),
                      r["heads"] // r.get("kv_heads", r["heads"]))
    # A sliding build: every pattern the mode takes comes as diagonal tiles, never a grid whose window wraps.
    sliding = [random_engine_run(rng, SLIDING, Numerics()) for _ in range(400)]
    diagonal = [pattern_from_dict(r["pattern"]) for r in sliding if r.get("diagonal")]
    assert {p.kind for p in diagonal} == {"window", "dilated", "grid"}
    assert all((p.window2d[1] | 1) <= p.grid[1] for p in diagonal if p.kind == "grid")
    spatten = [random_spatten_run(rng, SPATTEN) for _ in range(200)]
    assert {r["k_msb_bits"] for r in spatten} == {1, 2, 4, 8}
    assert all(any(name in r for r in spatten) for name in ("tokens", "queries", "head_list"))
