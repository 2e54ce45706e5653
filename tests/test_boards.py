"""`attn-rtl build --board`: demo bitstreams with amaranth-boards and YoWASP, fit checks, Vivado scripts."""

from pathlib import Path

import pytest

from attn_rtl.constraints import FOLDER
from attn_rtl.gen.cli import main
from attn_rtl.gen.flows.boards import BOARDS, build_board, check_fit
from attn_rtl.gen.presets import PRESETS

CONSTRAINTS = FOLDER


def same_constraints(built: Path, kept: str) -> bool:
    """The same constraint lines (their order is Amaranth's and may change)."""
    return sorted(built.read_text().splitlines()) == sorted((CONSTRAINTS / kept).read_text().splitlines())


@pytest.mark.slow
def test_icebreaker_bitstream_of_the_tiny_array(tmp_path):
    result = build_board("icebreaker", "array", PRESETS["array"]["tiny"], tmp_path)
    bitstream = Path(result["bitstream"])
    assert bitstream.name == "top.bin" and bitstream.stat().st_size > 100_000   # an UP5K image is ~104 kB
    assert result["fmax_mhz"] > 12.0 and result["area"]["dsp"] == 4
    # The board's pins are those kept in constraints/.
    assert same_constraints(tmp_path / "build" / "top.pcf", "icebreaker.pcf")


@pytest.mark.slow
def test_arty_gets_vivado_scripts(tmp_path, capsys):
    assert main(["build", "array", "--preset", "tiny", "--board", "arty-a7-35", "-o", str(tmp_path)]) == 0
    assert "run them where Vivado is installed" in capsys.readouterr().out
    build = tmp_path / "build"
    assert "synth_design -top top" in (build / "top.tcl").read_text()
    assert same_constraints(build / "top.xdc", "arty-a7-35.xdc")


@pytest.mark.slow
def test_a_configuration_that_does_not_fit_is_named(tmp_path, capsys):
    # A 4x4 int8 array takes 16 multipliers; the UP5K has 8 DSP blocks (synthesis: 40 s, so behind -m slow).
    assert main(["build", "array", "--preset", "tiny", "--rows", "4", "--cols", "4", "--board", "icebreaker",
                 "--check-only", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "does not fit the icebreaker (iCE40 UP5K): it needs 16 DSP, the part has 8" in err


def test_the_fit_check_names_the_shortfall(tmp_path):
    with pytest.raises(ValueError, match="it needs 9 DSP, the part has 8"):
        check_fit(BOARDS["icebreaker"], {"lut": 10, "ff": 10, "dsp": 9, "bram": 0})
    with pytest.raises(ValueError, match="board must be one of ulx3s-85f, icebreaker, arty-a7-35, not 'de10'"):
        build_board("de10", "array", PRESETS["array"]["tiny"], tmp_path)


@pytest.mark.slow
def test_ulx3s_bitstream_of_the_tiny_engine(tmp_path):
    result = build_board("ulx3s-85f", "engine", PRESETS["engine"]["tiny"], tmp_path)
    # amaranth-boards compresses ULX3S bitstreams (ecppack --compress): about 0.46 MB for this engine.
    # The header names the part and the VERIFY_ID command carries the LFE5U-85F's IDCODE.
    bitstream = Path(result["bitstream"]).read_bytes()
    assert len(bitstream) > 100_000 and b"Part: LFE5U-85F-6CABGA381" in bitstream[:64]
    assert bytes.fromhex("e2000000" "41113043") in bitstream[:64]
    assert result["fmax_mhz"] > 25.0
    assert same_constraints(tmp_path / "build" / "top.lpf", "ulx3s-85f.lpf")
