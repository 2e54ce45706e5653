"""The diagonal-tile scheduler in RTL simulation (cocotb) against ``attn_rtl.sim.sliding.diagonal_tiles``."""

from dataclasses import replace

import numpy as np
import pytest

from attn_rtl.gen.simulate import simulate_diagonal_scheduler
from attn_rtl.hdl.diagonal_scheduler import DiagonalScheduler, diagonal_scheduler_params
from attn_rtl.hdl.sparse_scheduler import PATTERN_CODES
from attn_rtl.sim.sparse import SparsePattern

MAX_SEQ_LEN, MAX_DILATION, MAX_GLOBALS = 40, 4, 4


def _random_runs(rng, count: int) -> list:
    """Window, dilated and grid patterns of random sizes (windows of 1, even, wider than the sequence;
    dilations to the maximum; grids down to one row or column), one or two heads."""
    runs = []
    for _ in range(count):
        kind = ("window", "dilated", "grid")[int(rng.integers(3))]
        if kind == "grid":
            h, w = int(rng.integers(1, 7)), int(rng.integers(1, 7))
            kw = int(rng.integers(1, w + 1))
            kw = kw if (kw | 1) <= w else kw - 1 or 1
            pattern = SparsePattern(kind="grid", grid=(h, w), window2d=(int(rng.integers(1, 2 * h + 2)), kw))
            seq_len = h * w
        else:
            seq_len = int(rng.integers(1, MAX_SEQ_LEN + 1))
            window = int(rng.integers(1, 2 * seq_len + 2))
            pattern = (SparsePattern(kind="window", window=window) if kind == "window" else
                       SparsePattern(kind="dilated", window=window, dilation=int(rng.integers(1, MAX_DILATION + 1))))
        if rng.random() < 0.5:   # global tokens: up to MAX_GLOBALS, at the ends and anywhere
            count = int(rng.integers(1, min(MAX_GLOBALS, seq_len) + 1))
            tokens = rng.choice(seq_len, size=count, replace=False).tolist()
            pattern = replace(pattern, global_tokens=tuple(int(t) for t in tokens))
        runs.append(dict(pattern=pattern.to_dict(), seq_len=seq_len, heads=int(rng.integers(1, 3)),
                         global_row=int(rng.random() < 0.5)))
    return runs


ERROR_RUNS = [
    dict(pattern=SparsePattern(kind="dense").to_dict(), seq_len=8, heads=1),
    dict(pattern=SparsePattern(kind="causal").to_dict(), seq_len=8, heads=1),
    dict(pattern=SparsePattern(kind="window", window=3).to_dict(), seq_len=8, heads=1, registers=dict(window=0)),
    dict(pattern=SparsePattern(kind="dilated", window=3, dilation=2).to_dict(), seq_len=8, heads=1,
         registers=dict(dilation=MAX_DILATION + 1)),
    dict(pattern=SparsePattern(kind="grid", grid=(2, 4), window2d=(3, 3)).to_dict(), seq_len=8, heads=1,
         registers=dict(grid_h=3)),                      # the grid does not hold seq_len tokens
    dict(pattern=SparsePattern(kind="grid", grid=(2, 4), window2d=(3, 3)).to_dict(), seq_len=8, heads=1,
         registers=dict(window_w=4)),                    # 2·⌊4/2⌋ + 1 = 5 columns on a grid of 4: keys would wrap
    dict(pattern=SparsePattern(kind="window", window=3).to_dict(), seq_len=8, heads=1, registers=dict(heads=3)),
    dict(pattern=SparsePattern(kind="window", window=3).to_dict(), seq_len=8, heads=1,
         registers=dict(seq_len=MAX_SEQ_LEN + 1)),
    dict(pattern=SparsePattern(kind="window", window=3, global_tokens=(1, 2)).to_dict(), seq_len=8, heads=1,
         registers=dict(global_count=MAX_GLOBALS + 1)),
    dict(pattern=SparsePattern(kind="window", window=3, global_tokens=(1, 8)).to_dict(), seq_len=9, heads=1,
         registers=dict(seq_len=8)),                     # a global token past the sequence
]


@pytest.mark.parametrize("sim, rows, cols", [
    pytest.param(sim, rows, cols, id=f"{sim}-{rows}x{cols}", marks=[pytest.mark.slow] if sim == "verilator" else [])
    for sim, rows, cols in [("icarus", 1, 1), ("icarus", 3, 4), ("icarus", 4, 3), ("icarus", 2, 5),
                            ("icarus", 8, 8), ("verilator", 3, 4)]])
def test_every_tile_matches_the_model(sim, rows, cols):
    """Random window, dilated and grid runs, half of them with global tokens, error runs between them
    (refused, nothing sent), random backpressure, a reset in the middle of the first run: every field of
    every tile as the model has it."""
    seed = 1000 + rows * 10 + cols
    runs = _random_runs(np.random.default_rng(seed), 10)
    runs[3:3] = [dict(run, expect_error=True) for run in ERROR_RUNS]
    # Global keys where the first tiles with a free last column are empty (window rows above the image),
    # a block of global queries only, global queries at both ends.
    runs += [dict(pattern=SparsePattern(kind="grid", grid=(6, 6), window2d=(5, 3), global_tokens=(0, 20)).to_dict(),
                  seq_len=36, heads=1),
             dict(pattern=SparsePattern(kind="dilated", window=5, dilation=3, global_tokens=(1, 4, 7, 10)).to_dict(),
                  seq_len=13, heads=1)]
    # A global row: the head's last block of the global query alone (no tile: the head's last tile is the
    # block before), its first block so (the head's first tile is the next block's), a grid, two heads.
    runs += [dict(pattern=SparsePattern(kind="window", window=3, global_tokens=(2 * rows,)).to_dict(),
                  seq_len=2 * rows + 1, heads=2, global_row=1),
             dict(pattern=SparsePattern(kind="dilated", window=3, dilation=2, global_tokens=(0,)).to_dict(),
                  seq_len=7, heads=2, global_row=1),
             dict(pattern=SparsePattern(kind="grid", grid=(5, 6), window2d=(3, 5), global_tokens=(13,)).to_dict(),
                  seq_len=30, heads=1, global_row=1)]
    params = dict(rows=rows, cols=cols, max_seq_len=MAX_SEQ_LEN, max_heads=2, max_dilation=MAX_DILATION,
                  max_globals=MAX_GLOBALS, global_row=True)
    report = simulate_diagonal_scheduler(params, runs, sim=sim, seed=seed, stall=0.3, reset_mid=True)
    assert report["passed"] and report["elements"] > 0


def test_vil_and_longformer_shapes_on_8x8():
    """The issue's 2-D shape at a smaller image (14×14, a 7×7 window, as ViL's 15×15 on 56×56 is in
    tiles per window row) and a 1-D window wider than a tile, back to back, no stalls: five cycles a
    candidate, so the scheduler outruns the array (2·d cycles a tile)."""
    params = dict(rows=8, cols=8, max_seq_len=256, max_heads=1, max_dilation=4)
    runs = [dict(pattern=SparsePattern(kind="grid", grid=(14, 14), window2d=(7, 7)).to_dict(), seq_len=196, heads=1),
            dict(pattern=SparsePattern(kind="window", window=41).to_dict(), seq_len=256, heads=1)]
    report = simulate_diagonal_scheduler(params, runs, seed=5)
    assert report["passed"] and report["elements"] > 0
    # Grid: 25 blocks of 7 window rows of one tile each; window: 32 blocks of 6 tiles.
    assert report["cycles_per_run"][0] <= 5 * 25 * 7 + 60
    assert report["cycles_per_run"][1] <= 5 * 32 * 6 + 60


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="rows must be a positive integer, not 0"):
        diagonal_scheduler_params(rows=0)
    with pytest.raises(ValueError, match="unknown"):
        diagonal_scheduler_params(sparse=True)
    scheduler = DiagonalScheduler(rows=3, cols=4)
    assert scheduler.lanes == 6 and PATTERN_CODES["grid"] == 3
