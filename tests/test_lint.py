"""Verilator lint (``--lint-only -Wall``) of every generated top level.

Waivers come only from the generated ``verilator_waivers.vlt`` (a copy is kept in
``constraints/``), which waives Amaranth's output style and nothing about widths.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

from attn_rtl.gen.flows.emit import LINT_WAIVERS
from attn_rtl.gen.generate import COMPANIONS, UNITS, cached_verilog, unit
from attn_rtl.gen.presets import PRESETS
from attn_rtl.sim.runner import verilator_env

#: Odd shapes (1, non-powers of two, non-square) with the ECP5 primitives where a unit has them.
ODD = {
    "array": {"rows": 1, "cols": 3, "a_width": 12, "b_width": 5, "max_reduction": 7,
              "multiplier": "ecp5", "fifo_memory": "ecp5"},
    "softmax": {"lanes": 3, "slots": 5, "score_width": 13, "max_seq_len": 40,
                "multiplier": "ecp5", "fifo_memory": "ecp5"},
    "engine": {"rows": 2, "cols": 3, "max_seq_len": 40, "max_head_dim": 12, "max_heads": 3, "sparse": True,
               "max_globals": 1, "multiplier": "ecp5", "fifo_memory": "ecp5"},
    "scheduler": {"rows": 3, "cols": 5, "max_seq_len": 40, "max_heads": 3, "max_globals": 1},
    "topk": {"lanes": 2, "value_width": 7, "max_n": 40, "max_k": 5},
}

#: The large presets take 15 s (the top-k engine) to two and a half minutes (the engine) to emit and lint:
#: slow marker; so are the engine's sparse and SpAtten presets (20 s each), whose features the odd engines
#: below lint in the default suite.
_SLOW_LINT = {("engine", "sparse"), ("engine", "spatten")}
CASES = ([pytest.param(name, preset, params, id=f"{name}-{preset}",
                       marks=[pytest.mark.slow] if preset == "large" or (name, preset) in _SLOW_LINT else [])
          for name, presets in PRESETS.items() for preset, params in presets.items()]
         + [pytest.param(name, "odd", params, id=f"{name}-odd") for name, params in ODD.items()]
         # The companions' SpAtten builds lint the engine-spatten core again (15 s each): slow marker.
         + [pytest.param(companion, preset, PRESETS["engine"][preset], id=f"{companion}-{preset}",
                         marks=[pytest.mark.slow] if preset == "spatten" else [])
            for companion in COMPANIONS for preset in ("tiny", "spatten")
            if (companion, preset) != ("engine_mm", "spatten")]   # the memory-mapped top refuses SpAtten builds
         + [pytest.param("engine", "odd-importance", dict(ODD["engine"], sparse=False, importance=True, row_flags=True),
                         id="engine-odd-importance")]
         # The sliding array (diagonal, stationary, global column) and its scheduler, odd shapes.
         + [pytest.param("array", "odd-sliding", dict(ODD["array"], sliding=True, a_width=9, b_width=8),
                         id="array-odd-sliding"),
            pytest.param("diagonal_scheduler", "odd", dict(rows=3, cols=5, max_seq_len=40, max_heads=3, max_globals=3),
                         id="diagonal_scheduler-odd"),
            # The engine's diagonal runs, on the stream top and behind the AXI4-Lite register file.
            pytest.param("engine", "odd-sliding", dict(ODD["engine"], sliding=True), id="engine-odd-sliding"),
            pytest.param("engine_axil", "odd-sliding", dict(ODD["engine"], sliding=True, global_row=True),
                         id="engine_axil-odd-sliding-global-row"),
            pytest.param("global_row", "odd", dict(rows=3, cols=5, max_head_dim=12, max_seq_len=40),
                         id="global_row-odd"),
            pytest.param("serial_softmax", "odd", dict(lanes=4, score_width=19, max_seq_len=40),
                         id="serial_softmax-odd")])


def lint(verilog: Path, top: str, models: list, waivers: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **verilator_env()}
    env.pop("VERILATOR_ROOT", None)
    return subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", top, str(waivers), str(verilog),
                           *map(str, models)], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def waivers(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lint") / "verilator_waivers.vlt"
    path.write_text(LINT_WAIVERS)
    return path


@pytest.mark.parametrize("name, preset, params", CASES)
def test_generated_top_lints_clean(name, preset, params, waivers):
    u = unit(name)
    path, component = cached_verilog(name, params)
    run = lint(path, u.top, u.simulation_models(component.params), waivers)
    report = "\n".join((run.stdout + run.stderr).splitlines()[:60])
    assert run.returncode == 0 and "%Warning" not in run.stderr and "%Error" not in run.stderr, \
        f"verilator -Wall on {name} ({preset}, {path}):\n{report}"


def test_waivers_cover_no_width_rule():
    rules = re.findall(r"^lint_off -rule (\w+)", LINT_WAIVERS, re.M)
    assert set(rules) == {"PROCASSINIT", "UNUSEDSIGNAL", "DECLFILENAME", "PINMISSING"}
    assert not [r for r in rules if r.startswith("WIDTH")]
    assert "lint_off" not in LINT_WAIVERS.replace("lint_off -rule", "")  # no blanket waiver


def test_lint_catches_a_width_mismatch(waivers, tmp_path):
    """The check can fail: a hand-written implicit extension is reported, waivers or not."""
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input wire [7:0] a, input wire [3:0] b, output wire [7:0] y);\n"
                   "  assign y = a + b;\nendmodule\n")
    run = lint(bad, "bad", [], waivers)
    assert run.returncode != 0 and "WIDTHEXPAND" in run.stderr, run.stderr


def test_every_unit_and_companion_is_linted():
    linted = {p.values[0] for p in CASES}
    assert linted == set(UNITS) | set(COMPANIONS) | {"diagonal_scheduler", "global_row", "serial_softmax"}
