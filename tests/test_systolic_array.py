"""The systolic MAC array in RTL simulation (cocotb) against numpy matmul, on Icarus and Verilator."""

import pytest

from gen.generate import cached_verilog, unit
from gen.simulate import simulate_array
from sim.runner import SimulationFailure, run_cocotb

# (rows, cols, max_reduction): odd, non-square and degenerate shapes.
ICARUS_SHAPES = [(1, 1, 5), (2, 3, 13), (3, 2, 16), (4, 4, 37), (8, 8, 64)]
VERILATOR_SHAPES = [(2, 3, 13), (3, 2, 16), (8, 8, 64)]


def _tiles(depth):
    """Reduction lengths 1, the maximum, and ones that are multiples of nothing."""
    return [1, depth, max(1, depth // 2 + 1), 7 if depth >= 7 else depth, depth]


def _shape_cases():
    for rows, cols, depth in ICARUS_SHAPES:
        yield pytest.param("icarus", rows, cols, depth, id=f"icarus-{rows}x{cols}")
    for rows, cols, depth in VERILATOR_SHAPES:
        yield pytest.param("verilator", rows, cols, depth, id=f"verilator-{rows}x{cols}")
    yield pytest.param("verilator", 16, 16, 32, id="verilator-16x16", marks=pytest.mark.slow)


@pytest.mark.parametrize("sim, rows, cols, depth", list(_shape_cases()))
def test_random_tiles_with_idle_and_backpressure(sim, rows, cols, depth):
    report = simulate_array(dict(rows=rows, cols=cols, max_reduction=depth), sim=sim, seed=rows * 100 + cols,
                            tiles=_tiles(depth), idle=0.3, stall=0.3)
    assert report["passed"] and report["elements"] == rows * cols * 5


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_reset_in_the_middle_of_a_tile_then_clean_tiles(sim):
    report = simulate_array(dict(rows=3, cols=2, max_reduction=16), sim=sim, seed=11, tiles=[16, 5],
                            idle=0.2, stall=0.2, reset_mid=True)
    assert report["passed"] and report["elements"] == 3 * 2 * 2


@pytest.mark.parametrize("operands", ["min", "max", "mixed"])
@pytest.mark.parametrize("a_signed, b_signed", [(True, True), (False, True)])
def test_extreme_operands_at_the_full_reduction_length(operands, a_signed, b_signed):
    # All -2^(w-1) (or all max) over max_reduction steps is the largest sum the derived width must hold.
    params = dict(rows=2, cols=3, a_width=8 if a_signed else 16, a_signed=a_signed, b_width=8, max_reduction=33)
    report = simulate_array(params, sim="icarus", seed=5, tiles=[33, 33, 1], operands=operands)
    assert report["passed"]


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_cycles_without_stalls_match_the_model(sim):
    report = simulate_array(dict(rows=4, cols=4, max_reduction=32), sim=sim, seed=2, tiles=[32, 32, 1, 9])
    assert report["cycles"] == report["model_cycles"], report


def test_many_tiles_back_to_back():
    report = simulate_array(dict(rows=4, cols=3, max_reduction=8), sim="icarus", seed=9,
                            tiles=[1, 8, 3, 8, 2, 5, 8, 8, 1, 7] * 3, idle=0.1, stall=0.1)
    assert report["passed"] and report["elements"] == 4 * 3 * 30


def test_a_wrong_result_fails_with_the_mismatch_in_the_message():
    # Tell the testbench the operands are unsigned while the hardware's are signed: 255 reaches the
    # hardware as -1, so every product is wrong and the check must fail and say where.
    path, component = cached_verilog("array", dict(rows=2, cols=2, max_reduction=4))
    cfg = dict(component.params, a_signed=False, b_signed=False, seed=3, tiles=[4], idle=0.0, stall=0.0,
               reset_mid=False, operands="max")
    with pytest.raises(SimulationFailure, match=r"tile 0 row 0 \[0\]: got -?\d+, expected \d+"):
        run_cocotb(sources=[path], toplevel=unit("array").top, test_module=unit("array").testbench,
                   sim="icarus", config=cfg)


def test_bad_stimulus_parameters_are_rejected_before_simulation():
    with pytest.raises(ValueError, match="reduction length must be at most 8, not 9"):
        simulate_array(dict(rows=2, cols=2, max_reduction=8), tiles=[9])
    with pytest.raises(ValueError, match="idle must be a probability .* not 1.0"):
        simulate_array(dict(rows=2, cols=2, max_reduction=8), idle=1.0)
    with pytest.raises(ValueError, match="sim must be one of icarus, verilator, not 'vcs'"):
        simulate_array(dict(rows=2, cols=2, max_reduction=8), sim="vcs")
