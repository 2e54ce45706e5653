"""No dependence on power-up values: every unit and top bit-exact when its registers start unknown.

Inside :func:`~attn_rtl.sim.runner.unknown_power_up` the generated Verilog loses its
initializers: Icarus starts every register and memory word at X (an X that reaches a
compared output or a handshake fails the run), Verilator at a random value per register
drawn from ``+verilator+seed+``.  Each case resets, runs, is reset in the middle of a run,
and must stay bit-exact.  The control shows the mechanism works: a register without a
reset reads X on Icarus and differs across Verilator seeds.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.back.verilog import convert
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.gen.simulate import (
    simulate_accumulator,
    simulate_array,
    simulate_diagonal_scheduler,
    simulate_engine,
    simulate_engine_mm,
    simulate_scheduler,
    simulate_softmax,
    simulate_topk,
)
from attn_rtl.sim.runner import run_cocotb, unknown_power_up, without_power_up_values

SEEDS = (1, 2, 3)


class _Unreset(wiring.Component):
    """One register loaded by ``en``: no reset (``reset_less``), so only its initializer sets it at power-up."""

    def __init__(self, width=16):
        super().__init__({"en": In(1), "d": In(width), "held": Out(width)})

    def elaborate(self, platform):
        m = Module()
        held = Signal(len(self.held), init=0x1234, reset_less=True)
        with m.If(self.en):
            m.d.sync += held.eq(self.d)
        m.d.comb += self.held.eq(held)
        return m


def _control(tmp_path: Path, sim: str, seed: int | None) -> str:
    source = tmp_path / "unreset.v"
    source.write_text(convert(_Unreset(), name="unreset"))
    with contextlib.nullcontext() if seed is None else unknown_power_up(seed):
        report = run_cocotb(sources=[source], toplevel="unreset", test_module="attn_rtl.tb.test_power_up", sim=sim,
                            config=dict(seed=7, width=16))
    assert report["passed"]
    return report["before_write"]


def test_initializers_and_memory_initial_blocks_are_dropped():
    text = ("(* generator = \"Amaranth\" *)\nmodule m;\n  reg [7:0] \\a$1  = 8'h05;\n  reg b = 1'h1;\n"
            "  reg [3:0] mem [1:0];\n  initial begin\n    mem[0] = 4'h0;\n    mem[1] = 4'h0;\n  end\n"
            "  assign c = b;\n  always @(posedge clk) b <= 1'h0;\nendmodule\n")
    stripped = without_power_up_values(text)
    assert "reg [7:0] \\a$1 ;" in stripped and "reg b ;" in stripped
    assert "initial" not in stripped and "= 8'h05" not in stripped
    assert "assign c = b;" in stripped and "b <= 1'h0;" in stripped


def test_control_register_reads_unknown_values(tmp_path):
    assert _control(tmp_path, "icarus", None) == format(0x1234, "016b")
    assert set(_control(tmp_path, "icarus", 1).lower()) == {"x"}


@pytest.mark.slow
def test_control_register_differs_across_verilator_seeds(tmp_path):
    values = {_control(tmp_path, "verilator", seed) for seed in SEEDS}
    assert len(values) == len(SEEDS) and format(0x1234, "016b") not in values


def _tests_module(name):
    """Runs and shapes from the units' own tests (one list per unit, not a second copy here)."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def _scheduler(sim):
    runs = _tests_module("test_sparse")._runs(64)
    return simulate_scheduler(dict(rows=4, cols=3, max_seq_len=64, max_heads=3, max_dilation=8, max_globals=3), runs,
                              sim=sim, seed=3, stall=0.3, reset_mid=True)


def _sliding_array(sim):
    module = _tests_module("test_systolic_array")
    rng = np.random.default_rng(5)
    tiles, kinds, loads = module._mixed_tiles(rng, 4, 8)
    return simulate_array(dict(rows=3, cols=4, max_reduction=13, sliding=True), sim=sim, seed=5, tiles=tiles,
                          kinds=kinds, loads=loads, global_columns=(rng.random(len(tiles)) < 0.4).tolist(),
                          idle=0.2, stall=0.2, reset_mid=True)


def _diagonal_scheduler(sim):
    module = _tests_module("test_diagonal_scheduler")
    runs = module._random_runs(np.random.default_rng(7), 6)
    return simulate_diagonal_scheduler(dict(rows=3, cols=4, max_seq_len=module.MAX_SEQ_LEN, max_heads=2,
                                            max_dilation=module.MAX_DILATION, max_globals=module.MAX_GLOBALS),
                                       runs, sim=sim, seed=7, stall=0.3, reset_mid=True)


def _topk(sim):
    problems = [dict(p, k=min(p["k"], 9)) for p in _tests_module("test_topk").PROBLEMS]
    return simulate_topk(dict(lanes=4, max_n=37, max_k=9, signed=True, value_width=8), problems, sim=sim, seed=3,
                         idle=0.3, stall=0.3, reset_mid=True)


def _engine(params, runs, seed):
    return lambda sim: simulate_engine(params, runs(), sim=sim, seed=seed, idle=0.2, stall=0.2, reset_mid=True)


_DENSE_RUNS = [dict(heads=2, seq_len=13, head_dim=6), dict(heads=1, seq_len=5, head_dim=3)]
_SMALL_ENGINE = dict(rows=3, cols=2, max_seq_len=64, max_head_dim=16, max_heads=2)
_MM_RUNS = [dict(seq_len=20, head_dim=16, heads=2), dict(seq_len=6, head_dim=5, layout="tokens", gap=1),
            dict(seq_len=9, query_len=2, head_dim=4, heads=2, kv_heads=1)]

#: name -> (run on a simulator, whether its Icarus case is in the default suite).  Each resets in the middle
#: of a run and runs again.
UNITS = {
    "array": (lambda sim: simulate_array(dict(rows=3, cols=2, max_reduction=16), sim=sim, seed=11, tiles=[16, 5],
                                         idle=0.2, stall=0.2, reset_mid=True), True),
    "array_sliding": (_sliding_array, True),
    "diagonal_scheduler": (_diagonal_scheduler, True),
    "softmax": (lambda sim: simulate_softmax({}, sim=sim, seed=3, idle=0.2, stall=0.2, reset_mid=True), True),
    "accumulator": (lambda sim: simulate_accumulator({}, sim=sim, seed=3, idle=0.2, stall=0.2, reset_mid=True),
                    True),
    "scheduler": (_scheduler, True),
    "topk": (_topk, True),
    "engine": (_engine(_SMALL_ENGINE, lambda: _DENSE_RUNS, 5), True),
    "engine_ecp5_primitives": (_engine(dict(_SMALL_ENGINE, max_seq_len=256, multiplier="ecp5", fifo_memory="ecp5"),
                                       lambda: [*_tests_module("test_engine").RUNS, *_DENSE_RUNS], 23), False),
    "engine_sparse": (_engine(dict(rows=4, cols=3, max_seq_len=64, max_heads=2, max_head_dim=8, sparse=True),
                              lambda: _tests_module("test_engine")._sparse_runs(), 43), False),
    "engine_sliding": (_engine(dict(rows=3, cols=4, max_seq_len=64, max_heads=2, max_head_dim=16, sparse=True,
                                    sliding=True), lambda: _tests_module("test_engine")._diagonal_runs(), 34), False),
    "engine_decoder": (_engine(dict(rows=4, cols=3, max_seq_len=64, max_heads=6, max_head_dim=8, sparse=True),
                               lambda: _tests_module("test_decoder_engine").DECODER_RUNS, 43), False),
    "engine_importance": (_engine(_tests_module("test_importance").ODD,
                                  lambda: _tests_module("test_importance").RANKED_RUNS, 21), False),
    "engine_mm": (lambda sim: simulate_engine_mm(dict(rows=2, cols=3, max_seq_len=32, max_heads=4, max_head_dim=16),
                                                 _MM_RUNS, sim=sim, seed=5, pause=0.2, reset_mid=True), True),
}


def _cases():
    cases = [pytest.param("icarus", 1, name, id=f"icarus-{name}", marks=() if default else pytest.mark.slow)
             for name, (_, default) in UNITS.items()]
    # Every unit at three Verilator seeds with -m slow (a Verilator build each).
    cases += [pytest.param("verilator", seed, name, id=f"verilator-seed{seed}-{name}", marks=pytest.mark.slow)
              for name in UNITS for seed in SEEDS]
    return cases


@pytest.mark.parametrize("sim, seed, name", _cases())
def test_bit_exact_from_unknown_power_up(sim, seed, name):
    with unknown_power_up(seed):
        report = UNITS[name][0](sim)
    assert report["passed"] and report["elements"] > 0
