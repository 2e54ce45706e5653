"""The cost model against the RTL: predicted cycles within ±3% of simulated cycles, and the pieces
of the model (memory bits, enumeration, Pareto front, budgets, workloads) against their definitions."""

import time

import numpy as np
import pytest

from attn_rtl.gen.bench.cost import VALIDATION, measure_progressive, measure_validation
from attn_rtl.gen.cost.model import (
    block_key_counts,
    enumerate_space,
    in_domain,
    memory_bits,
    pareto_front,
    predict_cycles,
)
from attn_rtl.gen.cost.workloads import WORKLOADS, Workload, load_workload, workload_from_dict
from attn_rtl.gen.generate import elaborate
from attn_rtl.sim.sparse import allowed_mask, parse_pattern, scheduled_tiles

# The 8x8 cases take a minute each: behind -m slow (the 2x2 and 3x2 ones check the same model in seconds), as
# are the causal prefill (40 s; the causal decode cases stay in the default suite), the dilated and 2-D
# patterns (30 s each; the window pattern, whose tile counts they share, stays), the ranking run (30 s;
# the pruned run stays) and the diagonal runs (12 to 25 s; tests/test_engine.py holds the full-rate harness's
# diagonal run to the model in the default suite).
_SLOW_VALIDATION = ("causal prefill", "dilated", "grid", "ranking run", "diagonal")


@pytest.mark.parametrize("case", [pytest.param(v, id=v[0], marks=pytest.mark.slow if "8\u00d78" in v[0]
                                               or v[0].startswith(_SLOW_VALIDATION) else ()) for v in VALIDATION])
def test_predicted_cycles_within_3_percent_of_rtl(case):
    measured, predicted = measure_validation(case)
    print(f"{case[0]}: measured {measured}, predicted {predicted:.0f} ({100 * (predicted / measured - 1):+.2f}%)")
    assert in_domain(case[2], case[1]["rows"], case[1]["cols"])
    assert predicted == pytest.approx(measured, rel=0.03)


@pytest.mark.slow   # 25 s
def test_progressive_layer_cycles_within_3_percent_of_rtl():
    """Both passes: the MSB run over every row, then one run per head over the rows it flagged."""
    measured, predicted, flagged = measure_progressive()
    print(f"progressive: measured {measured}, predicted {predicted:.0f}, flagged {flagged}")
    assert 0 < flagged.min() and flagged.max() < 24, flagged   # some rows again, not all
    assert predicted == pytest.approx(measured, rel=0.03)


def test_the_model_knows_where_it_is_not_validated():
    """4x4 with d = 8 (the probability buffers bound the rate), short sparse tiles, two buffers."""
    assert not in_domain(Workload("small d", 128, 8, 2), 4, 4)
    assert in_domain(Workload("d = 64", 128, 64, 2), 16, 16)
    # Two probability buffers: 8x8, d = 32 ran 20% faster than the lifetime term says (gen/cost/cost_calibration.json).
    assert not in_domain(Workload("d = 64", 128, 64, 2), 8, 8, prob_tiles=2)
    assert not in_domain(Workload("sparse, short tiles", 128, 16, pattern=parse_pattern("window", window=9)), 4, 4)


@pytest.mark.parametrize("rows, cols, prob_tiles, max_seq_len, max_head_dim, max_heads, importance",
                         [(8, 8, 3, 1024, 128, 16, False), (8, 8, 3, 1024, 128, 16, True), (3, 5, 2, 40, 12, 3, True),
                          (1, 7, 4, 100, 33, 5, True), (16, 2, 3, 4096, 64, 1, False)])
def test_memory_bits_match_the_engine(rows, cols, prob_tiles, max_seq_len, max_head_dim, max_heads, importance):
    engine = elaborate("engine", dict(rows=rows, cols=cols, prob_tiles=prob_tiles, max_seq_len=max_seq_len,
                                      max_head_dim=max_head_dim, max_heads=max_heads, importance=importance))
    engine._MustUse__silence = True
    assert memory_bits(rows, cols, prob_tiles, max_seq_len, max_head_dim, max_heads,
                       importance=importance) == engine.memory_bits


@pytest.mark.parametrize("pattern", [parse_pattern("window", window=9, global_tokens="3"),
                                     parse_pattern("dilated", window=4, dilation=5),
                                     parse_pattern("grid", grid="6x7", window2d="3x5", global_tokens="0,41")])
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
    assert elapsed < 5 * len(space) / 1_000_000, elapsed
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


def test_decoder_workloads():
    """Grouped heads and the KV cache: one K/V head's run per group, K/V traffic by K/V heads, the
    allowed pairs of every query head; bad decoder shapes named."""
    from attn_rtl.gen.cost.model import offchip_bytes

    w = WORKLOADS["llama3-70b-decode"]
    assert (w.heads, w.groups, w.group, w.queries) == (64, 8, 8, 1)
    assert block_key_counts(w.pattern, w.seq_len, 8, w.queries, w.group).tolist() == [4096]   # one full block
    read, written = offchip_bytes(w, np.array([8]))
    assert read[0] == 64 * 128 + 2 * 8 * 4096 * 128 and written[0] == 64 * 128
    # Mistral's window: of 8192 cached keys the step reads the newest 4096.
    m = WORKLOADS["mistral-7b-decode"]
    assert block_key_counts(m.pattern, m.seq_len, 8, 1, m.group).tolist() == [4096]
    assert predict_cycles(m, 8, 8, 3).total[0] == pytest.approx(predict_cycles(
        Workload("w", 4096, 128, 32, kv_heads=8, q_len=1, pattern=parse_pattern("causal")), 8, 8, 3).total[0])
    # Causal prefill computes a little more than half the dense tiles.
    dense, causal = (predict_cycles(Workload("p", 2048, 128, 1, pattern=parse_pattern(p)), 8, 8, 3).total[0]
                     for p in ("dense", "causal"))
    assert 1.95 < dense / causal < 2.0
    spec = {"seq_len": 64, "head_dim": 8, "heads": 6, "pattern": "causal"}
    assert workload_from_dict(dict(spec, kv_heads=2, q_len=1)).is_decoder
    for extra, message in ((dict(kv_heads=4), r"heads \(6\) must be a multiple of kv_heads, not 4"),
                           (dict(q_len=65), "q_len must be at most seq_len"),
                           (dict(kv_heads=0), "kv_heads must be a positive integer, not 0"),
                           (dict(pattern="dense", kv_heads=2, token_keep=0.5), "take kv_heads = heads and q_len"),
                           (dict(pattern="window", window=3, q_len=4), "need the dense or a causal pattern")):
        with pytest.raises(ValueError, match=message):
            workload_from_dict(dict(spec, **extra))


_LONG = [(parse_pattern("grid", grid="56x56", window2d="15x15", global_tokens="0"), 3136),
         (parse_pattern("window", window=512, global_tokens="0"), 4096),
         (parse_pattern("dilated", window=64, dilation=4), 4096)]
_SHORT = [(parse_pattern("window", window=5, global_tokens="3"), 23),
          (parse_pattern("window", window=64), 13),
          (parse_pattern("dilated", window=3, dilation=7, global_tokens="1,2,3,4,5"), 50),
          (parse_pattern("grid", grid="9x10", window2d="5x5", global_tokens="0,47"), 90),
          (parse_pattern("grid", grid="5x7", window2d="1x3", global_tokens="34"), 35)]


# The benchmarks' workloads at the benchmarks' arrays; short sequences at odd shapes.
@pytest.mark.parametrize("pattern, seq_len, rows, cols",
                         [(p, n, r, c) for p, n in _LONG for r, c in ((8, 8), (16, 4))]
                         + [(p, n, r, c) for p, n in _SHORT for r, c in ((8, 8), (3, 4), (5, 2), (1, 3), (16, 4))])
def test_diagonal_tile_counts_follow_the_tiling(pattern, seq_len, rows, cols):
    """The model counts the diagonal tiles from the blocks' key ranges; the tiling builds them."""
    from attn_rtl.gen.cost.model import diagonal_tile_count
    from attn_rtl.sim.sliding import diagonal_tiles

    assert diagonal_tile_count(pattern, seq_len, rows, cols) == len(diagonal_tiles(pattern, seq_len, rows, cols))
    # With a global row (one global query's worth: the global blocks go when the pattern has one).
    assert (diagonal_tile_count(pattern, seq_len, rows, cols, 1)
            == len(diagonal_tiles(pattern, seq_len, rows, cols, global_row=1)))


def test_diagonal_cycles_need_a_window_pattern():
    with pytest.raises(ValueError, match="diagonal tiles take the window, dilated and grid patterns"):
        predict_cycles(Workload("causal", 64, 32, 1, pattern=parse_pattern("causal")), 4, 4, 3, sliding=True)
