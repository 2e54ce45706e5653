"""The cost model against the RTL: predicted cycles within ±3% of simulated cycles, and the pieces
of the model (memory bits, enumeration, Pareto front, budgets, workloads) against their definitions."""

import time

import numpy as np
import pytest

from gen.cost_model import block_key_counts, enumerate_space, memory_bits, pareto_front, predict_cycles
from gen.generate import elaborate
from gen.simulate import simulate_engine, simulate_progressive
from gen.workloads import WORKLOADS, Workload, load_workload, workload_from_dict
from sim.sparse import allowed_mask, parse_pattern, scheduled_tiles

# The dense builds are tests/test_engine.py's (one Verilator build each, shared through the cache).
DENSE_3X2 = dict(rows=3, cols=2, max_seq_len=64, max_head_dim=32, max_heads=2)
DENSE_8X8 = dict(rows=8, cols=8, max_seq_len=64, max_head_dim=64, max_heads=2)
# Sparse tiles at 64 cycles: the sparse engine takes about 36 cycles per tile at least (4x4, d = 16).
SPARSE_2X2 = dict(rows=2, cols=2, max_seq_len=64, max_head_dim=32, max_heads=2, sparse=True)
# SpAtten on Icarus (a build of seconds), inside the model's domain (d ≥ 4·max(rows, cols), 48-cycle tiles).
SPATTEN_2X2 = dict(rows=2, cols=2, max_seq_len=32, max_head_dim=24, max_heads=2, importance=True, row_flags=True)
SCALE = dict(scale_mult=36490, scale_shift=17)


def _pattern(*args, **kwargs):
    return parse_pattern(*args, **kwargs)


#: (name, engine build, workload, the run that realizes it: a pruned layer is the dense run over the
#: tokens and heads the DMA gathers, as gen.simulate.simulate_layer runs it)
VALIDATION = [
    ("dense 8x8", DENSE_8X8, Workload("dense", 64, 64, 1), dict(seq_len=64, head_dim=64)),
    ("dense 8x8, L and d off the tile", DENSE_8X8, Workload("dense", 50, 40, 2), dict(seq_len=50, head_dim=40, heads=2)),
    ("dense 3x2", DENSE_3X2, Workload("dense", 37, 19, 2), dict(seq_len=37, head_dim=19, heads=2)),
    ("pruned 3x2 (half the tokens and heads)", DENSE_3X2, Workload("pruned", 64, 24, 2, token_keep=0.5, head_keep=0.5),
     dict(seq_len=32, head_dim=24, heads=1)),
    ("pruned 8x8 (3/4 tokens, half the heads)", DENSE_8X8,
     Workload("pruned", 64, 64, 2, token_keep=0.75, head_keep=0.5), dict(seq_len=48, head_dim=64, heads=1)),
    ("window 9", SPARSE_2X2, Workload("window", 64, 32, 1, pattern=_pattern("window", window=9)),
     dict(seq_len=64, head_dim=32, pattern=_pattern("window", window=9).to_dict())),
    ("dilated 4x3 + global", SPARSE_2X2,
     Workload("dilated", 40, 32, 2, pattern=_pattern("dilated", window=4, dilation=3, global_tokens="5")),
     dict(seq_len=40, head_dim=32, heads=2,
          pattern=_pattern("dilated", window=4, dilation=3, global_tokens="5").to_dict())),
    ("grid 6x8, 3x5 + global", SPARSE_2X2,
     Workload("grid", 48, 32, 1, pattern=_pattern("grid", grid="6x8", window2d="3x5", global_tokens="0")),
     dict(seq_len=48, head_dim=32, pattern=_pattern("grid", grid="6x8", window2d="3x5", global_tokens="0").to_dict())),
    ("ranking run 2x2", SPATTEN_2X2, Workload("rank", 24, 24, 2, rank=True),
     dict(seq_len=24, head_dim=24, heads=2, importance=True)),
]


@pytest.mark.parametrize("name, params, workload, run", VALIDATION, ids=[v[0] for v in VALIDATION])
def test_predicted_cycles_within_3_percent_of_rtl(name, params, workload, run):
    sim = "icarus" if params is SPATTEN_2X2 else "verilator"
    measured = simulate_engine(params, [run], sim=sim, seed=3, **SCALE)["runs"][0]["cycles"]
    predicted = predict_cycles(workload, params["rows"], params["cols"], params.get("prob_tiles", 3)).total[0]
    print(f"{name}: measured {measured}, predicted {predicted:.0f} ({100 * (predicted / measured - 1):+.2f}%)")
    assert predicted == pytest.approx(measured, rel=0.03)


def test_progressive_layer_cycles_within_3_percent_of_rtl():
    """Both passes: the MSB run over every row, then one run per head over the rows it flagged."""
    rng = np.random.default_rng(8)
    print("seed 8")
    q, k, v = (rng.integers(-128, 128, (2, 24, 24)) for _ in range(3))
    layer, reports = simulate_progressive(SPATTEN_2X2, q, k, v, msb_bits=4, threshold=20_000, sim="icarus", **SCALE)
    measured = reports["first"]["runs"][0]["cycles"] + sum(r["cycles"] for r in reports["recompute"]["runs"])
    flagged = layer.flags.sum(axis=1)
    assert 0 < flagged.min() and flagged.max() < 24, flagged   # some rows again, not all
    first = predict_cycles(Workload("first", 24, 24, 2, msb_bits=4), 2, 2, 3).total[0]
    again = sum(predict_cycles(Workload("again", 24, 24, 1, msb_bits=4, recompute_fraction=n / 24), 2, 2, 3).total[0]
                - predict_cycles(Workload("again", 24, 24, 1, msb_bits=4), 2, 2, 3).total[0] for n in flagged)
    print(f"progressive: measured {measured}, predicted {first + again:.0f}")
    assert first + again == pytest.approx(measured, rel=0.03)


@pytest.mark.parametrize("rows, cols, prob_tiles, max_seq_len, max_head_dim, max_heads, importance",
                         [(8, 8, 3, 1024, 128, 16, False), (8, 8, 3, 1024, 128, 16, True), (3, 5, 2, 40, 12, 3, True),
                          (1, 7, 4, 100, 33, 5, True), (16, 2, 3, 4096, 64, 1, False)])
def test_memory_bits_match_the_engine(rows, cols, prob_tiles, max_seq_len, max_head_dim, max_heads, importance):
    engine = elaborate("engine", dict(rows=rows, cols=cols, prob_tiles=prob_tiles, max_seq_len=max_seq_len,
                                      max_head_dim=max_head_dim, max_heads=max_heads, importance=importance))
    engine._MustUse__silence = True
    assert memory_bits(rows, cols, prob_tiles, max_seq_len, max_head_dim, max_heads,
                       importance=importance) == engine.memory_bits


@pytest.mark.parametrize("pattern", [_pattern("window", window=9, global_tokens="3"),
                                     _pattern("dilated", window=4, dilation=5),
                                     _pattern("grid", grid="6x7", window2d="3x5", global_tokens="0,41")])
@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 4), (8, 5)])
def test_tile_counts_follow_the_scheduler(pattern, rows, cols):
    """The model's keys per block and key tiles are the golden scheduler's (sim/sparse.py)."""
    schedule = scheduled_tiles(pattern, 42, rows, cols)
    counts = block_key_counts(pattern, 42, rows)
    assert counts.sum() == schedule.count.sum()
    assert np.sum(-(-counts // cols)) == len(schedule)
    keys = allowed_mask(pattern, 42)
    assert counts[0] == keys[:rows].any(axis=0).sum()


def test_enumeration_covers_a_million_candidates_in_seconds():
    workload = WORKLOADS["bert-base"]
    start = time.perf_counter()
    space = enumerate_space(workload, "xilinx7")
    sub = np.meshgrid(*(space.axes[n] for n in ("rows", "cols", "prob_tiles")), indexing="ij")
    cycles = space.expand(predict_cycles(workload, *sub).total, ("rows", "cols", "prob_tiles"))
    elapsed = time.perf_counter() - start
    assert len(space) >= 1_000_000 and len(cycles) == len(space)
    assert elapsed < 5, elapsed
    # The grid expansion puts each candidate's own figure in place.
    at = 123_457
    single = predict_cycles(workload, space.columns["rows"][at], space.columns["cols"][at],
                            space.columns["prob_tiles"][at]).total[0]
    assert cycles[at] == single


def test_pareto_front_is_exactly_the_non_dominated_points():
    rng = np.random.default_rng(4)
    print("seed 4")
    points = rng.integers(0, 30, (400, 2)).astype(float)
    front = pareto_front(points).tolist()
    best = [i for i, p in enumerate(points) if not np.any(np.all(points <= p, axis=1) & np.any(points < p, axis=1))]
    assert set(front) <= set(best)
    # Every non-dominated point is on the front, or equal to a point that is (duplicates kept once).
    assert all(any(np.array_equal(points[i], points[j]) for j in front) for i in best)


def test_workload_files_and_errors(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[workload]\nseq_len = 300\nhead_dim = 48\nheads = 6\npattern = "window"\nwindow = 65\n'
                    'global_tokens = [0, 7]\n')
    w = load_workload(str(path))
    assert (w.name, w.seq_len, w.pattern.kind, w.pattern.global_tokens) == ("mine", 300, "window", (0, 7))
    with pytest.raises(ValueError, match="unknown key 'sequence'"):
        workload_from_dict({"sequence": 4, "seq_len": 8, "head_dim": 4})
    with pytest.raises(ValueError, match="token_keep must be a fraction in \\(0, 1\\], not 1.5"):
        workload_from_dict({"seq_len": 8, "head_dim": 4, "token_keep": 1.5})
    with pytest.raises(ValueError, match="the window pattern needs window"):
        workload_from_dict({"seq_len": 8, "head_dim": 4, "pattern": "window"})
    with pytest.raises(ValueError, match="pruning, ranking and progressive quantization need the dense pattern"):
        workload_from_dict({"seq_len": 8, "head_dim": 4, "pattern": "window", "window": 3, "rank": True})
    bad = tmp_path / "bad.toml"
    bad.write_text("seq_len = [")
    with pytest.raises(ValueError, match="is not valid TOML"):
        load_workload(str(bad))
    with pytest.raises(ValueError, match="workload must be one of bert-base"):
        load_workload("bert")
