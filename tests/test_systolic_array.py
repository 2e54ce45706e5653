"""The systolic MAC array in RTL simulation (cocotb) against the numpy golden model, on Icarus and Verilator."""

import numpy as np
import pytest

from attn_rtl.gen.generate import cached_verilog, elaborate, unit
from attn_rtl.gen.simulate import simulate_array
from attn_rtl.sim.matmul import matmul
from attn_rtl.sim.runner import SimulationFailure, run_cocotb

# (rows, cols, max_reduction): degenerate, odd, non-square and the sizes of the issue.
ICARUS_SHAPES = [(1, 1, 5), (2, 3, 13), (3, 2, 16), (4, 4, 37), (8, 8, 64)]
VERILATOR_SHAPES = [(2, 3, 13), (3, 2, 16), (8, 8, 64), (16, 16, 32)]


def _tiles(depth):
    """Reduction lengths 1, the maximum, and ones that are multiples of nothing."""
    return [1, depth, max(1, depth // 2 + 1), 7 if depth >= 7 else depth, depth, 1, 1]


def _shape_cases():
    cases = [pytest.param("icarus", r, c, d, id=f"icarus-{r}x{c}") for r, c, d in ICARUS_SHAPES]
    # 8x8 and 16x16 take half a minute and two minutes (Verilator builds): behind the slow marker.
    cases += [pytest.param("verilator", r, c, d, id=f"verilator-{r}x{c}",
                           marks=[pytest.mark.slow] if r * c >= 64 else []) for r, c, d in VERILATOR_SHAPES]
    return cases


@pytest.mark.parametrize("sim, rows, cols, depth", _shape_cases())
def test_random_tiles_with_idle_and_backpressure(sim, rows, cols, depth):
    tiles = _tiles(depth)
    report = simulate_array(dict(rows=rows, cols=cols, max_reduction=depth), sim=sim, seed=rows * 100 + cols,
                            tiles=tiles, idle=0.3, stall=0.3)
    assert report["passed"] and report["elements"] == rows * cols * len(tiles)


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_reset_in_the_middle_of_a_tile_then_clean_tiles(sim):
    report = simulate_array(dict(rows=3, cols=2, max_reduction=16), sim=sim, seed=11, tiles=[16, 5],
                            idle=0.2, stall=0.2, reset_mid=True)
    assert report["passed"] and report["elements"] == 3 * 2 * 2


@pytest.mark.parametrize("sim, rows, cols, diagonal", [
    pytest.param(sim, rows, cols, diagonal, id=f"{'diagonal' if diagonal else 'dense'}-{sim}-{rows}x{cols}",
                 marks=[pytest.mark.slow] if sim == "verilator" else [])   # a Verilator build: 20 s
    for sim, rows, cols in [("icarus", 1, 1), ("icarus", 3, 4), ("icarus", 4, 3), ("icarus", 5, 1), ("verilator", 3, 4)]
    for diagonal in (True, False)])
def test_sliding_build_runs_diagonal_and_dense_tiles(sim, rows, cols, diagonal):
    """A sliding build (docs/sparse.md): diagonal tiles, row i against lanes i … i + cols - 1 of b, with the
    2i row skew; dense tiles, whose extra lanes are random and must be ignored.  Tiles of 1 step to the
    longest, shorter than the tile spacing (rows) included; idle, backpressure, a reset mid-tile.  Without
    stalls the cycles are the cycle model's in both modes: the same latency and tile spacing as a plain
    array (the drain moves down, so row 0's sum does not wait for the bottom row's)."""
    tiles = [13, 1, 5, 13, 2, 1, 1, 8]
    params = dict(rows=rows, cols=cols, max_reduction=13, sliding=True)
    report = simulate_array(params, sim=sim, seed=rows * 10 + cols, tiles=tiles, idle=0.3, stall=0.3, reset_mid=True,
                            diagonal=diagonal)
    assert report["passed"] and report["elements"] == rows * cols * len(tiles)
    clean = simulate_array(params, sim=sim, seed=rows * 10 + cols + 1, tiles=[13, 13, rows, 2, 13, 1, 13],
                           diagonal=diagonal)
    assert clean["passed"] and clean["cycles"] == clean["model_cycles"], clean


@pytest.mark.parametrize("rows, cols", [(4, 3), (5, 2), (2, 5)])
def test_a_reset_that_turns_sliding_off_drops_the_cut_tile(rows, cols):
    """The engine turns the array's mode off with a reset: a diagonal tile cut at any cycle between its last
    step and its drain sends none of its rows, and the dense tiles after it are exact (a stale load in the
    dense mode's drain delays once sent a row: the engine's reset test found it)."""
    report = simulate_array(dict(rows=rows, cols=cols, max_reduction=13, sliding=True), seed=rows * 10 + cols + 7,
                            tiles=[13, 1, rows, 5], reset_from_sliding=True)
    assert report["passed"] and report["elements"] == rows * cols * 4


def _mixed_tiles(rng, cols, count):
    """Diagonal tiles (Q·Kᵀ, 1 to 13 steps) and runs of stationary ones (P·V, 1 to cols steps), in
    random order; each stationary run's first tile, and some others, swap in new weights."""
    tiles, kinds, loads = [], [], []
    for _ in range(count):
        if rng.random() < 0.4:
            tiles.append(int(rng.integers(1, 14)))
            kinds.append("diagonal")
            loads.append(False)
        else:
            for _ in range(int(rng.integers(1, 4))):
                tiles.append(int(rng.integers(1, cols + 1)))
                loads.append(not kinds or kinds[-1] != "stationary" or rng.random() < 0.3)
                kinds.append("stationary")
    return tiles, kinds, loads


@pytest.mark.parametrize("sim, rows, cols, multiplier", [
    pytest.param(sim, rows, cols, multiplier, id=f"{sim}-{rows}x{cols}-{multiplier}",
                 marks=[pytest.mark.slow] if sim == "verilator" else [])
    for sim, rows, cols, multiplier in [("icarus", 1, 1, "generic"), ("icarus", 3, 4, "generic"),
                                        ("icarus", 4, 3, "generic"), ("icarus", 5, 1, "generic"),
                                        ("icarus", 2, 5, "generic"), ("icarus", 3, 4, "ecp5"),
                                        ("verilator", 3, 4, "generic")]])
def test_sliding_build_runs_stationary_tiles(sim, rows, cols, multiplier):
    """Weight-stationary P·V tiles (docs/mac-array.md): row i of an n-step tile against lanes i … i + cols - 1
    of b, weights held, loaded on p; lane cols - n + k of row i is its step k.  Mixed with diagonal
    (Q·Kᵀ) tiles in random order, new weights for some tiles, the global lane in the last column of some,
    idle and backpressure on every stream, a reset mid-tile; without stalls, the cycle model's count (the
    longer gap after a stationary tile)."""
    seed = rows * 10 + cols + 100
    rng = np.random.default_rng(seed)
    tiles, kinds, loads = _mixed_tiles(rng, cols, 8)
    global_columns = (rng.random(len(tiles)) < 0.4).tolist()
    params = dict(rows=rows, cols=cols, max_reduction=13, sliding=True, multiplier=multiplier)
    report = simulate_array(params, sim=sim, seed=seed, tiles=tiles, kinds=kinds, loads=loads, idle=0.3, stall=0.3,
                            reset_mid=True, global_columns=global_columns)
    assert report["passed"] and report["elements"] > 0
    # Back to back, weights loaded once: short diagonal tiles right after stationary ones wait for the
    # gap (rows + cols - 1; one cycle less corrupts them: checked by hand), runs of stationary tiles do not.
    tiles = [cols, 1, cols, min(2, cols), 1, cols, 1, 1, cols, 1]
    kinds = ["stationary", "diagonal", "stationary", "diagonal", "diagonal", "stationary", "diagonal", "stationary",
             "stationary", "diagonal"]
    clean = simulate_array(params, sim=sim, seed=seed + 1, tiles=tiles, kinds=kinds, loads=[True] + [False] * 9)
    assert clean["passed"] and clean["cycles"] == clean["model_cycles"], clean


def test_diagonal_tiles_need_a_sliding_build():
    with pytest.raises(ValueError, match="diagonal tiles need an array built with sliding = true"):
        simulate_array(dict(rows=2, cols=2, max_reduction=4), tiles=[4], diagonal=True)


@pytest.mark.parametrize("params, tiles, kinds, message", [
    (dict(), [2], ["stationary"], "stationary tiles need an array built with sliding = true"),
    (dict(sliding=True), [3], ["stationary"], "a stationary tile has at most cols = 2 steps, not 3"),
    (dict(sliding=True), [2, 2], ["dense", "diagonal"], "dense tiles and diagonal or stationary ones need different"),
    (dict(sliding=True), [2], ["sparse"], "a tile's kind must be dense, diagonal or stationary, not 'sparse'"),
    (dict(sliding=True), [2, 2], ["diagonal"], r"kinds must name one kind per tile \(2\), not 1"),
])
def test_tile_kinds_are_checked_before_simulation(params, tiles, kinds, message):
    with pytest.raises(ValueError, match=message):
        simulate_array(dict(rows=2, cols=2, max_reduction=4, **params), tiles=tiles, kinds=kinds)


@pytest.mark.parametrize("operands", ["min", "max", "mixed"])
@pytest.mark.parametrize("a_signed", [True, False], ids=["s8xs8", "u16xs8"])
@pytest.mark.parametrize("saturate", [False, True], ids=["exact", "saturating"])
def test_extreme_operands_at_the_full_reduction_length(operands, a_signed, saturate):
    # All -2^(w-1) (or all max) over max_reduction steps is the largest sum the derived width must
    # hold; a narrower accumulator must clip every partial sum instead.
    a_width = 8 if a_signed else 16
    params = dict(rows=2, cols=3, a_width=a_width, a_signed=a_signed, b_width=8, max_reduction=33)
    if saturate:
        params["acc_width"] = a_width + 8 + 1
    report = simulate_array(params, sim="icarus", seed=5, tiles=[33, 33, 1, 20], operands=operands,
                            idle=0.2, stall=0.2)
    assert report["passed"]


def test_saturating_accumulator_clips_where_the_exact_sum_does_not_fit():
    """The saturating golden model is not vacuous for the widths above."""
    a = np.full((2, 33), -128)
    b = np.full((33, 3), -128)
    assert np.all(matmul(a, b, 17, True) == (1 << 16) - 1)
    assert np.all(matmul(a, -b - 1, 17, True) == -(1 << 16))
    assert np.all(matmul(a, b, 22, True) == 33 * 128 * 128)


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_saturation_on_both_simulators(sim):
    report = simulate_array(dict(rows=3, cols=2, max_reduction=16, acc_width=12), sim=sim, seed=8,
                            tiles=[16, 3, 16], operands="mixed", idle=0.1, stall=0.1)
    assert report["passed"]


@pytest.mark.parametrize("sim, rows, cols", [("icarus", 4, 4), pytest.param("verilator", 8, 8, marks=pytest.mark.slow),
                                             ("icarus", 3, 5)])
def test_tiles_stream_back_to_back_without_bubbles(sim, rows, cols):
    """With no stall on any stream, the simulated cycle count equals the cycle model exactly (which
    counts the waits of short tiles for spacing and credits), and long tiles follow each other
    with no gap: one step per cycle in steady state."""
    depth = 32
    tiles = [depth] * 6 + [1, 2, depth, rows, 3, depth]
    report = simulate_array(dict(rows=rows, cols=cols, max_reduction=depth), sim=sim, seed=2, tiles=tiles)
    assert report["cycles"] == report["model_cycles"], report
    component = elaborate("array", dict(rows=rows, cols=cols, max_reduction=depth))
    steady = component.run_cycles([depth] * 7) - component.run_cycles([depth] * 6)
    assert steady == depth  # one step per cycle in steady state


def test_many_tiles_back_to_back_under_stalls():
    report = simulate_array(dict(rows=4, cols=3, max_reduction=8), sim="icarus", seed=9,
                            tiles=[1, 8, 3, 8, 2, 5, 8, 8, 1, 7] * 4, idle=0.1, stall=0.4)
    assert report["passed"] and report["elements"] == 4 * 3 * 40


def test_small_result_fifo_throttles_instead_of_losing_rows():
    report = simulate_array(dict(rows=4, cols=4, max_reduction=8, result_tiles=1), sim="icarus", seed=4,
                            tiles=[8, 1, 1, 4, 8, 2] * 3, stall=0.6)
    assert report["passed"]


def test_a_wrong_result_fails_with_the_mismatch_in_the_message():
    # Tell the testbench the operands are unsigned while the hardware's are signed: 255 reaches the
    # hardware as -1, so every product is wrong and the check must fail and say where.
    path, component = cached_verilog("array", dict(rows=2, cols=2, max_reduction=4))
    cfg = dict(component.params, a_signed=False, b_signed=False, seed=3, tiles=[4], idle=0.0, stall=0.0,
               reset_mid=False, operands="max")
    with pytest.raises(SimulationFailure, match=r"tile 0 \(dense\) row 0 \[0\]: got -?\d+, expected \d+"):
        run_cocotb(sources=[path], toplevel=unit("array").top, test_module=unit("array").testbench,
                   sim="icarus", config=cfg)


def test_bad_stimulus_parameters_are_rejected_before_simulation():
    with pytest.raises(ValueError, match="reduction length must be at most 8, not 9"):
        simulate_array(dict(rows=2, cols=2, max_reduction=8), tiles=[9])
    with pytest.raises(ValueError, match="idle must be a probability .* not 1.0"):
        simulate_array(dict(rows=2, cols=2, max_reduction=8), idle=1.0)
    with pytest.raises(ValueError, match="sim must be one of icarus, verilator, not 'vcs'"):
        simulate_array(dict(rows=2, cols=2, max_reduction=8), sim="vcs")


# Every width on Icarus; Verilator (a minute's build each) for the widest, two-DSP case only.
@pytest.mark.parametrize("sim, a_width, a_signed, operands",
                         [("icarus", 8, True, "mixed"), ("icarus", 17, False, "max"), ("icarus", 18, True, "min"),
                          pytest.param("verilator", 18, True, "min", marks=pytest.mark.slow)])
def test_ecp5_dsp_primitive_path_matches_the_golden_model(sim, a_width, a_signed, operands):
    """The hand-instantiated MULT18X18D path (with its simulation model) computes what the generic one does."""
    params = dict(rows=3, cols=2, a_width=a_width, a_signed=a_signed, b_width=8, max_reduction=16,
                  multiplier="ecp5")
    report = simulate_array(params, sim=sim, seed=21, tiles=[16, 1, 5, 16], operands=operands, idle=0.2, stall=0.2)
    assert report["passed"]
    clean = simulate_array(params, sim=sim, seed=22, tiles=[16, 16, 3])
    assert clean["cycles"] == clean["model_cycles"]


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_result_fifo_in_ecp5_block_ram(sim):
    """fifo_memory="ecp5": the result FIFO in DP16KD block RAM (output register on, simulation model
    in hdl/models) with both ECP5 primitives; the cycle model follows their extra cycles of latency."""
    params = dict(rows=3, cols=4, max_reduction=16, multiplier="ecp5", fifo_memory="ecp5")
    report = simulate_array(params, sim=sim, seed=31, tiles=[16, 1, 5, 16, 3, 16], operands="mixed",
                            idle=0.3, stall=0.4)
    assert report["passed"]
    clean = simulate_array(params, sim=sim, seed=32, tiles=[16, 3, 16, 1, 16, 16])
    # input register, skew (rows-1 + cols-1), PE (hand-off 1 + MULT18X18D 3 + accumulator input register 1
    # + accumulator 1 + shadow register 1 = 7), drain-chain load, block-RAM FIFO 4
    assert clean["cycles"] == clean["model_cycles"] and clean["latency"] == 1 + 2 + 3 + 7 + 1 + 4


def test_pe_options_of_the_sliding_array_are_checked():
    from amaranth.hdl import signed

    from attn_rtl.hdl.pe import ProcessingElement
    common = dict(a_width=8, b_width=8, a_signed=True, b_signed=True, acc_shape=signed(20))
    with pytest.raises(ValueError, match="collect_delay must be a non-negative integer, not -1"):
        ProcessingElement(**common, stationary=True, collect_delay=-1)
    with pytest.raises(ValueError, match="alternate_b needs a stationary PE"):
        ProcessingElement(**common, alternate_b=True)
    assert "alt_b_in" in ProcessingElement(**common, stationary=True, alternate_b=True).signature.members
