"""What `attn-rtl generate` writes besides Verilog: FuseSoC core, constraints, the AXI4-Lite register top and map."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attn_rtl.gen.cli import main
from attn_rtl.gen.flows.collateral import check_clock_mhz
from attn_rtl.gen.generate import UNITS, write_outputs
from attn_rtl.gen.presets import PRESETS
from attn_rtl.gen.simulate import simulate_engine_axil

TINY = {name: presets.get("tiny", presets["default"]) for name, presets in PRESETS.items()}


def _fusesoc() -> str:
    return shutil.which("fusesoc") or str(Path(sys.executable).with_name("fusesoc"))


@pytest.mark.parametrize("unit_name", sorted(UNITS))
def test_every_unit_writes_a_core_fusesoc_parses_and_constraints(unit_name, tmp_path):
    paths = write_outputs(unit_name, TINY[unit_name], tmp_path / "a", clock_mhz=150)
    top = UNITS[unit_name].top
    clock = "aclk" if unit_name == "engine" else "clk"
    for kind in ("sdc", "xdc"):
        text = Path(paths[f"{top}.{kind}"]).read_text()
        assert f"create_clock -name {clock} -period 6.667 [get_ports {{{clock}}}]" in text
    manifest = json.loads(Path(paths[f"{top}.manifest.json"]).read_text())
    assert manifest["clock_mhz"] == 150.0
    shown = subprocess.run([_fusesoc(), "--cores-root", str(tmp_path / "a"), "core", "show",
                            f"attn-rtl:attn:{top}:0.1.0"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert shown.returncode == 0, shown.stderr
    for target in ("default", "sim", "lint"):
        assert re.search(rf"^{target}\s*:", shown.stdout, re.M), shown.stdout
    # Every file the core names exists.
    core = Path(paths[f"{top}.core"]).read_text()
    for name in re.findall(r"^\s+- (\S+)$", core, re.M):
        assert (tmp_path / "a" / name).exists(), name


def test_generated_files_are_byte_identical_for_the_same_config(tmp_path):
    params = dict(PRESETS["engine"]["tiny"], importance=True, row_flags=True)
    first = write_outputs("engine", params, tmp_path / "a")
    second = write_outputs("engine", params, tmp_path / "b")
    assert sorted(Path(p).name for p in first.values()) == sorted(Path(p).name for p in second.values())
    for name, path in first.items():
        assert Path(path).read_bytes() == Path(second[name]).read_bytes(), name


def test_register_map_header_and_table_match_the_manifest(tmp_path):
    params = dict(PRESETS["engine"]["tiny"], sparse=True, max_globals=2)
    paths = write_outputs("engine", params, tmp_path)
    regs = json.loads(Path(paths["attention_engine.manifest.json"]).read_text())["register_map"]
    header = Path(paths["attention_engine_regs.h"]).read_text()
    table = Path(paths["attention_engine_regs.md"]).read_text()
    for reg in regs:
        assert f"#define ATTENTION_ENGINE_{reg['name']} 0x{reg['offset']:02X}u" in header
        assert f"| 0x{reg['offset']:02X} | {reg['name']} | {reg['access']} | {reg['bits']} |" in table
    names = [r["name"] for r in regs]
    assert names[:5] == ["ID", "VERSION", "SHAPE", "CTRL", "CYCLES"] and "GLOBAL_TOKEN_1" in names
    offsets = [r["offset"] for r in regs]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    # The header compiles as C when a compiler is here.
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        source = tmp_path / "use.c"
        source.write_text('#include "attention_engine_regs.h"\nint main(void) { return ATTENTION_ENGINE_CTRL == 0x0Cu ? 0 : 1; }\n')
        built = subprocess.run([cc, "-Wall", "-Werror", "-I", str(tmp_path), str(source), "-o", str(tmp_path / "use")],
                               capture_output=True, text=True)
        assert built.returncode == 0, built.stderr
        assert subprocess.run([str(tmp_path / "use")]).returncode == 0


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_axi_lite_register_top(sim):
    params = dict(rows=2, cols=3, max_seq_len=32, max_head_dim=8, max_heads=2, importance=True, row_flags=True)
    report = simulate_engine_axil(params, [dict(seq_len=7, head_dim=5, heads=2), dict(seq_len=1, head_dim=1)],
                                  sim=sim, seed=41, idle=0.3, stall=0.3)
    assert report["passed"] and report["elements"] > 100


def test_clock_is_validated(tmp_path, capsys):
    for bad in (0, -5, 2000, "fast", True):
        with pytest.raises(ValueError, match="clock_mhz must be a number from 1 to 1000"):
            check_clock_mhz(bad)
    assert main(["generate", "array", "--preset", "tiny", "-o", str(tmp_path), "--clock-mhz", "0"]) == 2
    assert "clock_mhz must be a number from 1 to 1000, not 0.0" in capsys.readouterr().err
