"""The attn-rtl command line: outputs, determinism, and one clear line for every bad input."""

import json
import re

import numpy as np
import pytest

from attn_rtl.gen.cli import main
from attn_rtl.sim import golden


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attn-rtl: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


# --- generate ---------------------------------------------------------------------------

def test_generate_writes_verilog_and_a_complete_manifest(tmp_path, capsys):
    code, out, _ = run(capsys, "generate", "array", "-o", str(tmp_path), "--rows", "3", "--cols", "2",
                       "--data-width", "6", "--max-reduction", "10")
    assert code == 0
    verilog = (tmp_path / "systolic_array.v").read_text()
    manifest = json.loads((tmp_path / "systolic_array.manifest.json").read_text())
    assert manifest["parameters"] == {"rows": 3, "cols": 2, "a_width": 6, "b_width": 6, "a_signed": True,
                                      "b_signed": True, "max_reduction": 10, "acc_width": 16,
                                      "multiplier": "generic", "fifo_memory": "registers", "result_tiles": 2,
                                      "sliding": False}
    assert manifest["derived"]["latency"] == 1 + 2 + 1 + 5 + 1 + 3 and manifest["derived"]["saturating"] is False
    ports = {p["name"]: p for p in manifest["ports"]}
    assert ports["a__payload"]["width"] == 3 * 6 + 1 and ports["a__payload"]["direction"] == "in"
    assert ports["c__payload"]["width"] == 2 * 16 + 1 and ports["c__payload"]["direction"] == "out"
    a_fields = {f["name"]: f for f in ports["a__payload"]["fields"]}
    assert a_fields["data"] == {"name": "data", "offset": 0, "width": 18, "elements": 3, "element_width": 6,
                                "element_signed": True}
    assert a_fields["last"]["offset"] == 18
    for name, port in ports.items():  # every manifest port is a port of the Verilog top, at its width
        decl = re.search(rf"^\s*(input|output)\s+(\[(\d+):0\]\s+)?{re.escape(name)};", verilog, re.M)
        assert decl, name
        assert (int(decl.group(3)) + 1 if decl.group(3) else 1) == port["width"], name
        assert decl.group(1).startswith(port["direction"]), name


def test_generate_is_deterministic(tmp_path, capsys):
    for d in ("a", "b"):
        assert run(capsys, "generate", "array", "-o", str(tmp_path / d), "--preset", "tiny")[0] == 0
    for name in ("systolic_array.v", "systolic_array.manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_config_file_then_flags_override_the_preset(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[array]\nrows = 5\ncols = 3\na_signed = false\n")
    code, _, _ = run(capsys, "generate", "array", "-o", str(tmp_path), "--preset", "large", "--config", str(cfg),
                     "--cols", "4")
    assert code == 0
    params = json.loads((tmp_path / "systolic_array.manifest.json").read_text())["parameters"]
    assert (params["rows"], params["cols"], params["a_signed"], params["max_reduction"]) == (5, 4, False, 128)


@pytest.mark.parametrize("flags, fragments", [
    (["--rows", "0"], ["rows must be a positive integer, not 0"]),
    (["--cols", "-3"], ["cols must be a positive integer, not -3"]),
    (["--rows", "65"], ["rows must be at most 64, not 65"]),
    (["--a-width", "0"], ["a_width must be a positive integer, not 0"]),
    (["--max-reduction", "0"], ["max_reduction must be a positive integer, not 0"]),
    (["--acc-width", "23"], ["acc_width must be at most 22, not 23"]),
    (["--acc-width", "1"], ["acc_width must be at least 2, not 1"]),
    (["--multiplier", "xilinx"], ["multiplier must be one of generic, ecp5, not 'xilinx'"]),
    (["--multiplier", "ecp5", "--a-width", "19"], ["a_width must be at most 18 for the ecp5 multiplier"]),
    (["--result-tiles", "0"], ["result_tiles must be a positive integer, not 0"]),
    (["--rows", "eight"], ["--rows", "'eight'"]),
    (["--preset", "huge"], ["preset must be one of", "'huge'"]),
])
def test_generate_rejects_bad_parameters_in_one_line(tmp_path, capsys, flags, fragments):
    code, _, err = run(capsys, "generate", "array", "-o", str(tmp_path / "out"), *flags)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "out").exists()  # rejected before anything was elaborated or written


@pytest.mark.parametrize("text, fragments", [
    ("rows = 4\nfoo = 1\n", ["unknown array parameter 'foo'"]),
    ("rows = 'eight'\n", ["rows must be a positive integer, not 'eight'"]),
    ("a_signed = 1\n", ["a_signed must be true or false, not 1"]),
    ("rows = = 4\n", ["is not valid TOML"]),
    ("[softmax]\nlanes = 4\n", ["unknown table [softmax]"]),
    ("[array]\n[array.numerics]\nprob_frac_bits = 12\n", ["unknown table [numerics]"]),
])
def test_config_files_are_checked(tmp_path, capsys, text, fragments):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    code, _, err = run(capsys, "generate", "array", "-o", str(tmp_path / "out"), "--config", str(cfg))
    assert_one_line_error(code, err, *fragments)


def test_missing_config_file(tmp_path, capsys):
    code, _, err = run(capsys, "generate", "array", "-o", str(tmp_path), "--config", str(tmp_path / "none.toml"))
    assert_one_line_error(code, err, "cannot read config", "none.toml")


def test_unknown_unit_and_command(capsys):
    code, _, err = run(capsys, "generate", "fft", "-o", "x")
    assert_one_line_error(code, err, "'fft'")
    code, _, err = run(capsys, "frobnicate")
    assert_one_line_error(code, err, "'frobnicate'")


def test_presets_lists_every_preset(capsys):
    code, out, _ = run(capsys, "presets")
    assert code == 0
    for name in ("tiny", "default", "large", "pv"):
        assert re.search(rf"^array\s+{name}\s", out, re.M)
    for name in ("tiny", "default", "large"):
        assert re.search(rf"^softmax\s+{name}\s", out, re.M)
    # Key figures beside each preset: the default engine's on-chip memory, the 8x8 array's PEs.
    assert re.search(r"^engine\s+default\s.*\n\s+figures: .*memory_bits=54,800", out, re.M)
    assert re.search(r"^array\s+default\s.*\n\s+figures: pe_count=64,", out, re.M)


def test_generate_softmax_with_a_numerics_table(tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text("[softmax]\nlanes = 3\n[softmax.numerics]\nprob_frac_bits = 12\n")
    code, _, _ = run(capsys, "generate", "softmax", "-o", str(tmp_path), "--config", str(cfg), "--slots", "5")
    assert code == 0
    manifest = json.loads((tmp_path / "softmax_unit.manifest.json").read_text())
    assert manifest["parameters"]["lanes"] == 3 and manifest["parameters"]["slots"] == 5
    assert manifest["parameters"]["numerics"]["prob_frac_bits"] == 12
    assert manifest["derived"]["row_sum_width"] == 13 + 10
    ports = {p["name"]: p for p in manifest["ports"]}
    assert ports["probs__payload"]["fields"][0]["width"] == 3 * 13


@pytest.mark.parametrize("unit, flags, fragments", [
    ("softmax", ["--rows", "3"], ["--rows is not a parameter of softmax"]),
    ("array", ["--lanes", "3"], ["--lanes is not a parameter of array"]),
    ("softmax", ["--data-width", "6"], ["--data-width is not a parameter of softmax"]),
    ("softmax", ["--lanes", "0"], ["lanes must be a positive integer, not 0"]),
    ("softmax", ["--score-width", "1"], ["score_width must be at least 2, not 1"]),
])
def test_flags_are_checked_per_unit(tmp_path, capsys, unit, flags, fragments):
    code, _, err = run(capsys, "generate", unit, "-o", str(tmp_path / "out"), *flags)
    assert_one_line_error(code, err, *fragments)


# --- golden -----------------------------------------------------------------------------

def _write_qkv(path, shape, seed=0, **override):
    rng = np.random.default_rng(seed)
    arrays = {n: rng.standard_normal(shape) for n in ("q", "k", "v")}
    arrays.update(override)
    np.savez(path, **arrays)
    return arrays


@pytest.mark.parametrize("shape", [(37, 16), (3, 20, 8)])
def test_golden_runs_on_user_float_data(tmp_path, capsys, shape):
    arrays = _write_qkv(tmp_path / "in.npz", shape)
    code, out, _ = run(capsys, "golden", "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "o.npz"),
                       "--json")
    assert code == 0
    figures = json.loads(out)
    with np.load(tmp_path / "o.npz") as res:
        assert res["o"].shape == shape and res["o_int"].shape == shape and res["o"].dtype == np.float64
        direct = golden.attention(arrays["q"], arrays["k"], arrays["v"])
        np.testing.assert_array_equal(res["o_int"], direct.o_int)
        np.testing.assert_allclose(res["o"], res["o_int"] * float(res["scale_o"]))
    assert figures["scale"] == pytest.approx(1 / np.sqrt(shape[-1]))
    assert figures["fraction_within_1_lsb_quantized"] >= 0.99
    ref = golden.attention_float(arrays["q"], arrays["k"], arrays["v"])
    assert figures["max_abs_error"] == pytest.approx(np.abs(direct.o - ref).max())


def test_golden_scale_and_key_tile_options(tmp_path, capsys):
    arrays = _write_qkv(tmp_path / "in.npz", (30, 8))
    code, out, _ = run(capsys, "golden", "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "o.npz"),
                       "--json", "--scale", "0.5", "--key-tile", "7")
    assert code == 0 and json.loads(out)["scale"] == 0.5
    with np.load(tmp_path / "o.npz") as res:
        want = golden.attention(arrays["q"], arrays["k"], arrays["v"], scale=0.5, key_tile=7).o_int
        np.testing.assert_array_equal(res["o_int"], want)


def test_golden_rejects_bad_inputs(tmp_path, capsys):
    out = str(tmp_path / "o.npz")
    cases = []
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file")
    cases.append((garbage, ["is not a readable .npz file"]))
    single = tmp_path / "single.npy"
    np.save(single, np.zeros((4, 4)))
    cases.append((single, ["is a single array"]))
    missing = tmp_path / "missing.npz"
    np.savez(missing, q=np.zeros((4, 4)), k=np.zeros((4, 4)))
    cases.append((missing, ["has no array 'v'", "found: k, q"]))
    cases.append((tmp_path / "nowhere.npz", ["does not exist"]))
    for name, kwargs, fragments in [
        ("dims", dict(k=np.zeros((5, 3))), ["q and k must have the same head dimension, not 4 and 3"]),
        ("kvlen", dict(v=np.zeros((6, 4))), ["k and v must have the same sequence length, not 5 and 6"]),
        ("rank", dict(q=np.zeros(5)), ["q must have shape (L, d) or (H, L, d), not (5,)"]),
        ("heads", dict(q=np.zeros((2, 5, 4)), k=np.zeros((3, 5, 4)), v=np.zeros((3, 5, 4))),
         ["same number of heads"]),
        ("mixed", dict(q=np.zeros((1, 5, 4))), ["must all be (L, d) or all (H, L, d)"]),
        ("dtype", dict(v=np.array([["a"] * 4] * 5)), ["v in", "must hold real numbers", "<U1"]),
        ("complex", dict(q=np.zeros((5, 4), complex)), ["q in", "complex128"]),
        ("nan", dict(k=np.full((5, 4), np.nan)), ["k in", "non-finite"]),
        ("empty", dict(q=np.zeros((0, 4))), ["q must have at least one row"]),
    ]:
        path = tmp_path / f"{name}.npz"
        _write_qkv(path, (5, 4), **kwargs)
        cases.append((path, fragments))
    for path, fragments in cases:
        code, _, err = run(capsys, "golden", "--inputs", str(path), "--output", out)
        assert_one_line_error(code, err, *fragments)
    good = tmp_path / "good.npz"
    _write_qkv(good, (5, 4))
    for flags, fragments in [(["--scale", "0"], ["--scale must be a positive finite number, not 0.0"]),
                             (["--scale", "nan"], ["--scale must be a positive finite number"]),
                             (["--key-tile", "0"], ["--key-tile must be a positive integer, not 0"]),
                             (["--scale", "1e12"], ["too large"])]:
        code, _, err = run(capsys, "golden", "--inputs", str(good), "--output", out, *flags)
        assert_one_line_error(code, err, *fragments)
    code, _, err = run(capsys, "golden", "--inputs", str(good), "--output", str(tmp_path / "no" / "dir" / "o.npz"))
    assert_one_line_error(code, err, "cannot write output")


# --- sim (the main job) -----------------------------------------------------------------

def test_sim_prints_cycles_and_pass(capsys):
    code, out, _ = run(capsys, "sim", "array", "--preset", "tiny", "--tiles", "3", "--depth", "5")
    assert code == 0
    assert "PASS: 12 of 12 result elements bit-exact" in out
    cycles = int(re.search(r"cycles: (\d+)", out).group(1))
    model = int(re.search(r"model without stalls: (\d+)", out).group(1))
    # tiny = 2x2 with a 1-tile result FIFO: tiles of 5 steps wait for credits, which the model counts
    assert cycles == model >= 3 * 5 + 12 + 2 - 1


def test_sim_softmax_prints_pass_and_cycles(capsys):
    code, out, _ = run(capsys, "sim", "softmax", "--preset", "tiny", "--keys", "7", "--idle", "0.2", "--stall", "0.2")
    assert code == 0
    assert re.search(r"PASS: (\d+) of \1 output fields bit-exact", out) and "2 row ends" in out
    for flags, fragment in ((["--keys", "0"], "--keys must be from 1 to max_seq_len = 256, not 0"),
                            (["--tiles", "2"], "--tiles and --depth apply to the array")):
        code, _, err = run(capsys, "sim", "softmax", "--preset", "tiny", *flags)
        assert_one_line_error(code, err, fragment)


def test_sim_json_report(capsys):
    code, out, _ = run(capsys, "sim", "array", "--rows", "2", "--cols", "3", "--max-reduction", "9", "--json",
                       "--idle", "0.25", "--stall", "0.25", "--seed", "4")
    report = json.loads(out)
    assert code == 0 and report["passed"] and report["seed"] == 4 and report["elements"] == 4 * 2 * 3


@pytest.mark.parametrize("flags, fragments", [
    (["--tiles", "0"], ["--tiles must be a positive integer, not 0"]),
    (["--depth", "65"], ["reduction length must be at most 64, not 65"]),
    (["--stall", "1.5"], ["stall must be a probability", "1.5"]),
    (["--sim", "xsim"], ["--sim", "'xsim'"]),
])
def test_sim_rejects_bad_options(capsys, flags, fragments):
    code, _, err = run(capsys, "sim", "array", *flags)
    assert_one_line_error(code, err, *fragments)


# --- sim engine (the default unit) ------------------------------------------------------------

def test_sim_engine_json_reports_utilization_and_zero_mismatches(capsys, tmp_path):
    rng = np.random.default_rng(3)
    inputs = tmp_path / "qkv.npz"
    np.savez(inputs, q=rng.normal(size=(2, 9, 5)), k=rng.normal(size=(2, 9, 5)), v=rng.normal(size=(2, 9, 5)))
    out = tmp_path / "o.npz"
    code, text, _ = run(capsys, "sim", "--preset", "tiny", "--inputs", str(inputs), "--output", str(out), "--json",
                        "--idle", "0.2", "--stall", "0.2", "--seed", "3")
    report = json.loads(text)
    assert code == 0 and report["passed"] and report["mismatches"] == 0
    assert (report["heads"], report["seq_len"], report["head_dim"]) == (2, 9, 5)
    assert report["ideal_cycles"] == -(-report["useful_macs"] // 4) and report["useful_macs"] == 2 * 2 * 9 * 9 * 5
    assert 0 < report["mac_utilization"] == pytest.approx(report["useful_macs"] / (4 * report["cycles"]))
    assert report["max_abs_error_lsb_quantized"] <= 1.0
    with np.load(out) as got:
        golden = tmp_path / "g.npz"
        assert run(capsys, "golden", "--inputs", str(inputs), "--output", str(golden), "--key-tile", "2")[0] == 0
        with np.load(golden) as want:
            assert np.array_equal(got["o_int"], want["o_int"]) and np.allclose(got["o"], want["o"])


def test_sim_engine_text_report(capsys):
    code, out, _ = run(capsys, "sim", "--preset", "tiny", "--seq-len", "5", "--head-dim", "3")
    assert code == 0 and "(0 mismatches)" in out and "MAC utilization" in out


@pytest.mark.parametrize("flags, fragments", [
    (["--seq-len", "257"], ["--seq-len must be at most max_seq_len = 256, not 257"]),
    (["--head-dim", "0"], ["--head-dim must be a positive integer, not 0"]),
    (["--tiles", "2"], ["--tiles does not apply to the engine"]),
    (["--inputs", "x.npz", "--seq-len", "4"], ["--seq-len conflicts with --inputs"]),
])
def test_sim_engine_rejects_bad_options(capsys, flags, fragments):
    code, _, err = run(capsys, "sim", "--preset", "tiny", *flags)
    assert_one_line_error(code, err, *fragments)


def test_engine_flags_rejected_for_other_units(capsys):
    code, _, err = run(capsys, "sim", "array", "--seq-len", "4")
    assert_one_line_error(code, err, "--seq-len applies to the engine, not to array")


def test_generate_engine_writes_axi_top_and_manifest(capsys, tmp_path):
    code, out, _ = run(capsys, "generate", "engine", "--preset", "tiny", "-o", str(tmp_path))
    assert code == 0
    text = (tmp_path / "attention_engine.v").read_text()
    for port in ("aclk", "aresetn", "s_axis_q_tdata", "s_axis_k_tready", "s_axis_v_tlast", "m_axis_o_tlast",
                 "ctrl_start", "ctrl_cycles"):
        assert port in text
    manifest = json.loads((tmp_path / "attention_engine.manifest.json").read_text())
    assert manifest["reset"].startswith("aresetn") and manifest["parameters"]["rows"] == 2
    derived = manifest["derived"]
    assert derived["memory_bits"] > 0 and derived["array"]["acc_width"] >= derived["score_width"]
    names = {p["name"]: p for p in manifest["ports"]}
    assert names["s_axis_q_tdata"]["width"] == 2 * 8 and names["m_axis_o_tdata"]["direction"] == "out"
    code, _, _ = run(capsys, "generate", "engine", "--preset", "tiny", "-o", str(tmp_path / "again"))
    assert (tmp_path / "again" / "attention_engine.v").read_text() == text


def test_golden_sparse_pattern(tmp_path, capsys):
    from attn_rtl.sim.sparse import allowed_mask, parse_pattern

    arrays = _write_qkv(tmp_path / "in.npz", (2, 35, 8))
    code, out, _ = run(capsys, "golden", "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "o.npz"),
                       "--json", "--pattern", "grid", "--grid", "5x7", "--window2d", "3x3", "--global", "0,17")
    assert code == 0
    figures = json.loads(out)
    mask = allowed_mask(parse_pattern("grid", grid="5x7", window2d="3x3", global_tokens="0,17"), 35)
    assert figures["pattern"] == "grid" and figures["allowed_pairs"] == mask.sum() < 35 * 35
    with np.load(tmp_path / "o.npz") as res:
        want = golden.attention(arrays["q"], arrays["k"], arrays["v"], mask=mask).o_int
        np.testing.assert_array_equal(res["o_int"], want)


@pytest.mark.parametrize("flags, fragments", [
    (["--pattern", "window"], ["the window pattern needs window"]),
    (["--window", "4"], ["window does not apply to the dense pattern"]),
    (["--pattern", "grid", "--grid", "5x5", "--window2d", "3x3"], ["grid 5x5 holds 25 tokens", "length 35"]),
    (["--global", "35"], ["global token 35 is outside the sequence"]),
    (["--pattern", "dilated", "--window", "4", "--dilation", "-1"], ["dilation must be a positive integer, not -1"]),
])
def test_golden_rejects_bad_patterns(tmp_path, capsys, flags, fragments):
    _write_qkv(tmp_path / "in.npz", (35, 8))
    code, _, err = run(capsys, "golden", "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "o.npz"),
                       *flags)
    assert_one_line_error(code, err, *fragments)


def test_sim_engine_sparse_json_counts_allowed_pairs_only(capsys):
    code, text, _ = run(capsys, "sim", "--preset", "tiny", "--sparse", "--seq-len", "21", "--head-dim", "3",
                        "--pattern", "dilated", "--window", "4", "--dilation", "2", "--global", "20", "--json",
                        "--idle", "0.1", "--stall", "0.1")
    report = json.loads(text)
    assert code == 0 and report["passed"] and report["mismatches"] == 0
    assert report["useful_macs"] == 2 * report["allowed_pairs"] * 3 < 2 * 21 * 21 * 3
    assert report["mac_utilization"] == pytest.approx(report["useful_macs"] / (4 * report["cycles"]))


def test_golden_with_the_engine_tiling_equals_the_sparse_engine(tmp_path, capsys):
    """`golden --query-block R --key-tile C` gathers keys as the sparse engine does: its O is the
    engine's O, bit for bit, on a pattern where gathering changes the tiles."""
    _write_qkv(tmp_path / "in.npz", (1, 35, 4))
    pattern = ["--pattern", "grid", "--grid", "5x7", "--window2d", "3x3", "--global", "17"]
    code, _, _ = run(capsys, "sim", "--preset", "tiny", "--sparse", "--inputs", str(tmp_path / "in.npz"),
                     "--output", str(tmp_path / "hw.npz"), *pattern)
    assert code == 0
    code, _, _ = run(capsys, "golden", "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "gold.npz"),
                     "--query-block", "2", "--key-tile", "2", *pattern)
    assert code == 0
    with np.load(tmp_path / "hw.npz") as hw, np.load(tmp_path / "gold.npz") as gold:
        np.testing.assert_array_equal(hw["o_int"].reshape(gold["o_int"].shape), gold["o_int"])
    code, _, err = run(capsys, "golden", "--inputs", str(tmp_path / "in.npz"), "--output", str(tmp_path / "g.npz"),
                       "--query-block", "2", *pattern)
    assert_one_line_error(code, err, "--query-block needs --key-tile")


def test_sim_pattern_needs_a_sparse_engine(capsys):
    code, _, err = run(capsys, "sim", "--preset", "tiny", "--pattern", "window", "--window", "3")
    assert_one_line_error(code, err, "--pattern window needs an engine built with sparse = true (add --sparse)")
    code, _, err = run(capsys, "sim", "array", "--pattern", "window")
    assert_one_line_error(code, err, "--pattern applies to the engine, not to array")


def test_sim_scheduler_against_the_golden_schedule(capsys):
    code, out, _ = run(capsys, "sim", "scheduler", "--seq-len", "49", "--pattern", "grid", "--grid", "7x7",
                       "--window2d", "3x3", "--global", "24", "--stall", "0.2")
    assert code == 0 and "PASS" in out and "bit-exact against the golden schedule" in out
    code, _, err = run(capsys, "sim", "scheduler", "--seq-len", "5000")
    assert_one_line_error(code, err, "--seq-len must be at most max_seq_len = 4096, not 5000")
    code, _, err = run(capsys, "sim", "scheduler", "--head-dim", "8")
    assert_one_line_error(code, err, "--head-dim does not apply to the scheduler")


# --- top-k ------------------------------------------------------------------------------

def test_generate_topk_alone(tmp_path, capsys):
    code, out, _ = run(capsys, "generate", "topk", "-o", str(tmp_path), "--preset", "tiny", "--max-k", "20")
    assert code == 0
    manifest = json.loads((tmp_path / "topk_engine.manifest.json").read_text())
    assert manifest["parameters"] == {"lanes": 4, "value_width": 16, "signed": True, "max_n": 256, "max_k": 20}
    assert manifest["derived"]["merge_levels"] == 6 and manifest["derived"]["level_run_beats"] == [1, 2, 4, 5, 5, 5]
    ports = {p["name"]: p for p in manifest["ports"]}
    assert ports["i__payload"]["width"] == 4 * 16 + 4 + 1 and ports["o__payload"]["width"] == 4 * (8 + 16) + 4 + 1
    assert "module topk_engine" in (tmp_path / "topk_engine.v").read_text()


def test_sim_topk_checks_and_counts_cycles(capsys):
    code, out, _ = run(capsys, "sim", "topk", "--preset", "tiny", "--n", "37", "--k", "9", "--json")
    report = json.loads(out)
    assert code == 0 and report["passed"] and report["mismatch_count"] == 0
    assert len(report["cycles_per_problem"]) == 3 and min(report["cycles_per_problem"]) >= 37 // 4


@pytest.mark.parametrize("flags, fragments", [
    (["--n", "300"], ["--n must be at most max_n = 256, not 300"]),
    (["--k", "0"], ["--k must be a positive integer, not 0"]),
    (["--seq-len", "8"], ["--seq-len does not apply to the top-k engine"]),
    (["--lanes", "3"], ["lanes must be a power of two, not 3"]),
])
def test_sim_topk_rejects_bad_options(capsys, flags, fragments):
    assert_one_line_error(*run(capsys, "sim", "topk", "--preset", "tiny", *flags)[::2], *fragments)


def test_topk_flags_rejected_for_other_units(capsys):
    assert_one_line_error(*run(capsys, "sim", "array", "--k", "3")[::2], "--k applies to the top-k engine")


# --- bench ------------------------------------------------------------------------------

def test_bench_rejects_bad_parts_and_misplaced_flags_in_one_line(capsys):
    assert_one_line_error(*run(capsys, "bench", "timing", "--parts", "engine.nothing")[::2], "--parts", "'engine.nothing'")
    assert_one_line_error(*run(capsys, "bench", "array", "--widest-nets")[::2], "--widest-nets", "bench array")
    assert_one_line_error(*run(capsys, "bench", "engine", "--deep-paths")[::2], "--deep-paths", "bench engine")
    assert_one_line_error(*run(capsys, "bench", "timing", "--seeds", "one")[::2], "--seeds", "'one'")


# --- decoder attention (docs/engine.md, Decoder attention) --------------------------------

def _decoder_inputs(path, heads=6, kv_heads=2, q_len=3, kv_len=29, d=8, seed=4):
    rng = np.random.default_rng(seed)
    np.savez(path, q=rng.normal(size=(heads, q_len, d)), k=rng.normal(size=(kv_heads, kv_len, d)),
             v=rng.normal(size=(kv_heads, kv_len, d)))
    return path


def test_golden_decoder_inputs_against_the_float_reference(tmp_path, capsys):
    inputs = _decoder_inputs(tmp_path / "qkv.npz")
    code, out, _ = run(capsys, "golden", "--inputs", str(inputs), "--output", str(tmp_path / "o.npz"),
                       "--pattern", "causal-window", "--window", "7", "--kv-heads", "2", "--json")
    assert code == 0
    figures = json.loads(out)
    assert (figures["heads"], figures["kv_heads"], figures["q_len"], figures["kv_len"]) == (6, 2, 3, 29)
    assert figures["allowed_pairs"] == 3 * 7   # per query head
    assert figures["fraction_within_1_lsb_quantized"] >= 0.99
    with np.load(tmp_path / "o.npz") as f:
        assert f["o_int"].shape == (6, 3, 8)


def test_golden_with_the_engine_tiling_is_the_engine_on_decoder_inputs(tmp_path, capsys):
    """golden --query-block/--key-tile follows the engine's stacked blocks: `sim engine --output` gives the
    same integers."""
    inputs = _decoder_inputs(tmp_path / "qkv.npz", q_len=2, kv_len=19)
    assert run(capsys, "golden", "--inputs", str(inputs), "--output", str(tmp_path / "g.npz"), "--pattern",
               "causal-window", "--window", "5", "--key-tile", "3", "--query-block", "4")[0] == 0
    code, out, err = run(capsys, "sim", "engine", "--sparse", "--rows", "4", "--cols", "3", "--max-seq-len", "32",
                         "--max-heads", "6", "--max-head-dim", "8", "--inputs", str(inputs), "--pattern",
                         "causal-window", "--window", "5", "--output", str(tmp_path / "s.npz"), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["mismatches"] == 0 and report["kv_heads"] == 2 and report["query_len"] == 2
    with np.load(tmp_path / "g.npz") as g, np.load(tmp_path / "s.npz") as s:
        np.testing.assert_array_equal(g["o_int"], s["o_int"])


@pytest.mark.parametrize("flags, fragments", [
    (["--kv-heads", "3"], ["--kv-heads 3 does not match the inputs", "2"]),
    (["--pattern", "window", "--window", "3", "--q-len", "3"], ["--pattern window takes one query per key"]),
    (["--pattern", "causal-window"], ["needs window"]),
    ([], ["must have the same number of heads", "--kv-heads, --q-len, --kv-len"]),
    (["--pattern", "causal", "--token-keep", "2"], ["pruning and progressive flags take encoder inputs"]),
])
def test_golden_rejects_bad_decoder_inputs(tmp_path, capsys, flags, fragments):
    inputs = _decoder_inputs(tmp_path / "qkv.npz")
    code, _, err = run(capsys, "golden", "--inputs", str(inputs), "--output", str(tmp_path / "o.npz"), *flags)
    assert_one_line_error(code, err, *fragments)


@pytest.mark.parametrize("flags, fragments", [
    (["--pattern", "causal"], ["needs an engine built with sparse = true"]),
    (["--sparse", "--heads", "3", "--kv-heads", "2"], ["--heads 3 must be a multiple of --kv-heads, not 2"]),
    (["--sparse", "--q-len", "9", "--kv-len", "8"], ["--q-len must be at most --kv-len (8), not 9"]),
    (["--sparse", "--seq-len", "8", "--kv-len", "9"], ["--seq-len 8 and --kv-len 9 disagree"]),
    (["--sparse", "--kv-heads", "0"], ["--kv-heads must be a positive integer, not 0"]),
])
def test_sim_engine_rejects_bad_decoder_shapes(capsys, flags, fragments):
    code, _, err = run(capsys, "sim", "engine", "--max-seq-len", "16", *flags)
    assert_one_line_error(code, err, *fragments)


@pytest.mark.slow   # forty seconds: the scheduler's decoder shapes are tested in tests/test_sparse.py
def test_sim_scheduler_takes_decoder_shapes(capsys):
    code, out, err = run(capsys, "sim", "scheduler", "--rows", "4", "--cols", "3", "--max-seq-len", "32",
                         "--max-heads", "4", "--pattern", "causal", "--heads", "4", "--kv-heads", "1", "--q-len", "1",
                         "--kv-len", "30", "--stall", "0.3", "--json")
    assert code == 0, err
    assert json.loads(out)["passed"]


MM_SMALL = ["--rows", "2", "--cols", "3", "--max-seq-len", "32", "--max-heads", "4", "--max-head-dim", "16",
            "--bus-width", "32"]


def test_generate_memory_mapped_writes_top_map_driver_and_constraints(capsys, tmp_path):
    code, _, _ = run(capsys, "generate", "engine", "--memory-mapped", *MM_SMALL, "--row-flags", "-o", str(tmp_path))
    assert code == 0
    text = (tmp_path / "attention_engine_mm.v").read_text()
    for port in ("m_axi_araddr", "m_axi_wstrb", "s_axil_awaddr", "irq"):
        assert port in text
    header = (tmp_path / "attention_engine_mm_regs.h").read_text()
    for register in ("Q_BASE", "O_HEAD_STRIDE", "BYTES_READ", "LISTS", "TOKEN_LIST_BASE", "ROW_FLAGS_BASE",
                     "K_MSB_BITS"):
        assert f"ATTENTION_ENGINE_MM_{register} " in header, register
    assert (tmp_path / "attention_engine_mm_driver.c").exists()
    manifest = json.loads((tmp_path / "attention_engine_mm.manifest.json").read_text())
    assert manifest["parameters"]["bus_width"] == 32 and manifest["parameters"]["row_flags"] is True


@pytest.mark.parametrize("flags, read, written", [
    # dense: Q once, K and V per block of 2 queries (20 keys do not fit the 5-tile ring), O
    pytest.param([], 6 * 20 + 10 * 2 * 6 * 20, 6 * 20, marks=pytest.mark.slow),
    # a pruned importance run: 7 tokens, 2 heads (lists 18 bytes; K and V once), importances 4 bytes each
    (["--heads", "3", "--token-list", "1,3,5,7,9,11,13", "--head-list", "0,2", "--importance-run"],
     2 * 7 * 6 * 3 + 2 * 9, 2 * 7 * 6 + 4 * 7 + 4 * 2),
    # progressive first run: K's 4-bit MSB plane (3 bytes a row), row flags a byte per query
    pytest.param(["--progressive", "4", "--threshold", "0.3"], 6 * 20 + 10 * (3 + 6) * 20, 6 * 20 + 20,
                 marks=pytest.mark.slow),
])
def test_sim_memory_mapped_reports_cycles_and_bytes(capsys, flags, read, written):
    code, text, _ = run(capsys, "sim", "--memory-mapped", *MM_SMALL, "--seq-len", "20", "--head-dim", "6",
                        "--mem-latency", "20", "--sim", "icarus", "--json", *flags)
    report = json.loads(text)
    assert code == 0 and report["passed"]
    r = report["runs"][0]
    assert (r["bytes_read"], r["bytes_written"]) == (read, written) == tuple(r["expected_bytes"])
    assert 0 < r["mac_utilization"] < 1 and r["cycles"] > 0


@pytest.mark.parametrize("flags, fragment", [
    (["--progressive", "3", "--threshold", "0.3"], "reads K's MSB plane of 1, 2 or 4 bits, not 3"),
    (["--token-keep", "4"], "--token-keep and --head-keep select in software"),
])
def test_sim_memory_mapped_rejects_what_the_top_cannot_run(capsys, flags, fragment):
    code, _, err = run(capsys, "sim", "--memory-mapped", *MM_SMALL, "--sim", "icarus", *flags)
    assert_one_line_error(code, err, fragment)


def test_importance_run_needs_the_memory_mapped_top(capsys):
    code, _, err = run(capsys, "sim", "--preset", "tiny", "--importance-run")
    assert_one_line_error(code, err, "--importance-run applies to --memory-mapped")


def test_sim_engine_diagonal_run(capsys):
    """`--diagonal` on a sliding build: bit-exact against the diagonal tiles' golden model, O written back
    in query order; clear errors without the build or with a pattern the mode does not take."""
    code, text, _ = run(capsys, "sim", "--preset", "tiny", "--sparse", "--sliding", "--seq-len", "30", "--head-dim",
                        "5", "--pattern", "grid", "--grid", "5x6", "--window2d", "3x3", "--global", "7", "--diagonal",
                        "--json", "--stall", "0.1")
    report = json.loads(text)
    assert code == 0 and report["passed"] and report["mismatches"] == 0 and report["elements"] >= 30 * 5
    # With the global PE row: the global query's O from the row, the same check.
    code, text, _ = run(capsys, "sim", "--preset", "tiny", "--sparse", "--sliding", "--global-row", "--seq-len", "30",
                        "--head-dim", "5", "--pattern", "grid", "--grid", "5x6", "--window2d", "3x3", "--global", "7",
                        "--diagonal", "--json")
    report = json.loads(text)
    assert code == 0 and report["passed"] and report["mismatches"] == 0 and report["elements"] >= 30 * 5
    code, _, err = run(capsys, "sim", "--preset", "tiny", "--sparse", "--global-row")
    assert_one_line_error(code, err, "global_row needs a sliding engine (sliding = true)")
    code, _, err = run(capsys, "sim", "--preset", "tiny", "--sparse", "--pattern", "window", "--window", "3",
                       "--diagonal")
    assert_one_line_error(code, err, "--diagonal needs an engine built with sliding = true (add --sliding)")
    code, _, err = run(capsys, "sim", "--preset", "tiny", "--sparse", "--sliding", "--pattern", "causal", "--diagonal")
    assert_one_line_error(code, err, "--diagonal takes --pattern window, dilated or grid, not causal")
    code, _, err = run(capsys, "sim", "array", "--diagonal")
    assert_one_line_error(code, err, "--diagonal applies to the engine, not to array")
