"""The global row alone in RTL simulation (cocotb, Icarus and Verilator) against the global row of
``attn_rtl.sim.sliding``: diagonal runs' steps in the engine's orders, every O lane compared."""

import pytest

from attn_rtl.gen.simulate import simulate_global_row
from attn_rtl.hdl.global_row import GlobalRow, global_row_params
from attn_rtl.sim.sparse import parse_pattern

P = parse_pattern


def _run(pattern, seq_len, heads, head_dim, mult=40000, shift=18, operands="random"):
    return dict(pattern=pattern.to_dict(), seq_len=seq_len, heads=heads, head_dim=head_dim, scale_mult=mult,
                scale_shift=shift, operands=operands)


RUNS = [  # every pattern, the global token anywhere, head_dim below, at and past a chunk, odd sizes
    _run(P("window", window=5, global_tokens="0"), 20, 2, 6),
    _run(P("dilated", window=3, dilation=3, global_tokens="7"), 17, 1, 9),
    _run(P("grid", grid="4x5", window2d="3x3", global_tokens="19"), 20, 2, 1),
    _run(P("window", window=40, global_tokens="11"), 13, 1, 4, mult=65535, shift=12, operands="mixed"),
    _run(P("window", window=1, global_tokens="2"), 3, 3, 5),
]
PARAMS = dict(max_head_dim=16, max_seq_len=64)


# 1x1 behind -m slow (the suite's time); 5x2 stays: its value tiles of two steps let a value tile start
# two cycles after another, where value_room must answer for the step the row is taking.
@pytest.mark.parametrize("rows, cols", [(3, 4), (5, 2), pytest.param(1, 1, marks=pytest.mark.slow)])
def test_every_pattern_bit_exact_with_idle_and_backpressure(rows, cols):
    report = simulate_global_row(dict(PARAMS, rows=rows, cols=cols), RUNS, seed=rows * 10 + cols, idle=0.3, stall=0.3)
    assert report["passed"] and report["elements"] > 0


def test_full_rate_and_a_tile_in_flight():
    """No idle cycle and no backpressure, one tile in flight: value tiles follow their score tiles at once."""
    report = simulate_global_row(dict(PARAMS, rows=3, cols=4, tiles=1), RUNS[:3], seed=5)
    assert report["passed"]


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_reset_in_the_middle_then_clean_runs(sim):
    report = simulate_global_row(dict(PARAMS, rows=3, cols=4), RUNS[:3], sim=sim, seed=9, idle=0.2, stall=0.2,
                                 reset_mid=True)
    assert report["passed"]


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_ecp5_primitives_are_bit_exact(sim):
    params = dict(PARAMS, rows=3, cols=4, multiplier="ecp5", memory="ecp5")
    report = simulate_global_row(params, RUNS[:2], sim=sim, seed=3, idle=0.2, stall=0.2)
    assert report["passed"]


@pytest.mark.slow
def test_the_default_build_on_a_longformer_like_run():
    """8x8, d = 64: a window of 33 over 200 tokens, one global token."""
    run = _run(P("window", window=33, global_tokens="0"), 200, 1, 64)
    report = simulate_global_row(dict(max_seq_len=256), [run], sim="verilator", seed=17, idle=0.1, stall=0.1)
    assert report["passed"]


def test_runs_without_a_global_row_are_refused():
    with pytest.raises(ValueError, match="a global row run needs one global token and a plain query"):
        simulate_global_row(dict(PARAMS, rows=3, cols=4), [_run(P("window", window=5, global_tokens="0,1"), 20, 1, 4)])
    with pytest.raises(ValueError, match="head_dim must be"):
        simulate_global_row(dict(PARAMS, rows=3, cols=4), [_run(P("window", window=5, global_tokens="0"), 20, 1, 17)])


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("name, value, message", [
    ("rows", 0, "rows must be a positive integer, not 0"),
    ("tiles", 65, "tiles must be"),
    ("multiplier", "xilinx", "xilinx"),
    ("memory", "bram", "bram"),
    ("colour", 1, "colour"),
])
def test_bad_parameters_are_refused_by_name(name, value, message):
    with pytest.raises(ValueError, match=message):
        global_row_params(**{name: value})
    with pytest.raises(ValueError, match=message):
        GlobalRow(**{name: value})
