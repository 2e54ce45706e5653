"""`attn-rtl sweep`: a parameter grid x targets through Yosys, parallel, resumable, failures recorded."""

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from attn_rtl.gen.cli import main
from attn_rtl.gen.flows import synth
from attn_rtl.gen.flows.sweep import load_sweep_file, parse_grid, run_sweep, sweep_points
from attn_rtl.gen.presets import PRESETS

TINY = PRESETS["array"]["tiny"]


def _points(**kw):
    return sweep_points("array", TINY, {"rows": [1, 2]}, ["ecp5"], **kw)


def test_a_tiny_sweep_end_to_end_then_resumed(tmp_path):
    first = run_sweep(_points(), tmp_path, jobs=2, progress=None)
    assert first["computed"] == 2 and first["reused"] == 0
    assert [r["status"] for r in first["results"]] == ["ok", "ok"]
    luts = [r["lut"] for r in first["results"]]
    assert 0 < luts[0] < luts[1] and [r["dsp"] for r in first["results"]] == [2, 4]
    with open(first["files"]["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [(r["rows"], r["target"], int(r["lut"])) for r in rows] == [("1", "ecp5", luts[0]), ("2", "ecp5", luts[1])]
    assert len(json.loads(Path(first["files"]["json"]).read_text())["points"]) == 2
    assert Path(first["files"]["png"]).read_bytes()[:4] == b"\x89PNG"

    again = run_sweep(_points(), tmp_path, progress=None)
    assert again["computed"] == 0 and again["reused"] == 2 and again["results"] == first["results"]
    # An interrupted sweep: the second point never wrote its result; only it runs again.
    Path(tmp_path, "points", f"{first['results'][1]['key']}.json").unlink()
    resumed = run_sweep(_points(), tmp_path, progress=None)
    assert resumed["computed"] == 1 and resumed["reused"] == 1 and resumed["results"][1]["lut"] == luts[1]


def test_a_failing_point_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    real = synth.synthesize

    def flaky(path, top, target, **kw):
        if "pe_1_0" in Path(path).read_text():   # the 2-row array
            raise RuntimeError("yosys exploded on purpose")
        return real(path, top, target, **kw)

    monkeypatch.setattr(synth, "synthesize", flaky)
    with ThreadPoolExecutor(2) as pool:   # threads see the patched module
        outcome = run_sweep(_points(), tmp_path, executor=pool, progress=None)
    ok, bad = outcome["results"]
    assert ok["status"] == "ok" and bad["status"] == "failed" and "exploded on purpose" in bad["error"]
    assert "RuntimeError" in Path(bad["log"]).read_text()
    # A failed point is retried by the next run; the good one is reused.
    monkeypatch.setattr(synth, "synthesize", real)
    retried = run_sweep(_points(), tmp_path, progress=None)
    assert retried["computed"] == 1 and [r["status"] for r in retried["results"]] == ["ok", "ok"]


def test_a_timed_out_point_is_recorded(tmp_path):
    outcome = run_sweep(_points()[:1], tmp_path, timeout=0.01, progress=None)
    (result,) = outcome["results"]
    assert result["status"] == "timeout" and "timed out after 0.01 s" in result["error"]
    assert Path(result["log"]).exists()


def test_the_dask_path_on_a_local_cluster(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        outcome = run_sweep(_points(), tmp_path, scheduler=cluster.scheduler_address, progress=None)
    assert outcome["computed"] == 2 and [r["status"] for r in outcome["results"]] == ["ok", "ok"]


def test_cli_sweep_and_its_errors(tmp_path, capsys):
    spec = tmp_path / "sweep.toml"
    spec.write_text('unit = "array"\ntargets = ["ecp5"]\n[grid]\ncols = [1, 2]\n[base]\nrows = 1\n')
    assert main(["sweep", "array", "--preset", "tiny", "--sweep-file", str(spec), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "2 points (2 computed, 0 reused), 0 failed" in out
    for argv, message in [
        (["--grid", "rows"], "grid items must look like name=v1,v2"),
        (["--grid", "rows=0"], "grid point {'rows': 0}: rows must be a positive integer"),
        (["--grid", "rows=1", "--targets", "asic"], "target must be one of ecp5, ice40, xilinx7, not 'asic'"),
        (["--grid", "rows=1", "--targets", "ice40", "--pnr"], "ecp5 only"),
        ([], "give the parameters to vary"),
        (["--grid", "rows=1", "--timeout", "-1"], "--timeout must be a positive number"),
        (["--grid", "rows=1", "--workload", "bert-base"], "--workload applies to the engine, not to array"),
    ]:
        assert main(["sweep", "array", "--preset", "tiny", *argv, "-o", str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err


def test_grid_and_sweep_file_parsing(tmp_path):
    assert parse_grid("rows=2,4; multiplier=generic,ecp5 saturating=true") == {
        "rows": [2, 4], "multiplier": ["generic", "ecp5"], "saturating": [True]}
    with pytest.raises(ValueError, match="grid names 'rows' twice"):
        parse_grid("rows=1 rows=2")
    bad = tmp_path / "bad.toml"
    for text, message in [("unit = 'array'\nbogus = 1\n[grid]\nrows = [1]\n", "unknown sweep key 'bogus'"),
                          ("[grid]\nrows = 1\n", "must map parameter names to non-empty lists"),
                          ("[grid\n", "not valid TOML")]:
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_sweep_file(bad)
    with pytest.raises(ValueError, match="cannot read sweep file"):
        load_sweep_file(tmp_path / "missing.toml")


def test_engine_sweep_plots_area_against_predicted_cycles(tmp_path, monkeypatch):
    """With a workload, engine points that can run it gain the cost model's cycles, in the CSV and in
    sweep-cycles.png. Yosys is replaced here (engine synthesis takes minutes; the tests above run it)."""
    from attn_rtl.gen.cost.model import predict_cycles
    from attn_rtl.gen.cost.workloads import Workload

    def fake_area(path, top, target, **kw):
        text = Path(path).read_text()
        return {"cells": {}, "lut": len(text) // 100, "ff": 1, "carry": 0, "dsp": 4, "bram": 1, "lutram": 0}

    monkeypatch.setattr(synth, "synthesize", fake_area)
    base = dict(rows=1, cols=2, max_seq_len=64, max_head_dim=32, max_heads=2)
    points = sweep_points("engine", base, {"rows": [1, 2], "max_seq_len": [32, 64]}, ["ecp5"])
    workload = Workload("small", 64, 32, 2)
    with ThreadPoolExecutor(2) as pool:
        outcome = run_sweep(points, tmp_path, executor=pool, progress=None, workload=workload)
    by_point = {(r["varied"]["rows"], r["varied"]["max_seq_len"]): r for r in outcome["results"]}
    assert "cycles" not in by_point[1, 32] and "cycles" not in by_point[2, 32]   # L = 64 does not fit
    for rows in (1, 2):
        assert by_point[rows, 64]["cycles"] == int(predict_cycles(workload, rows, 2, 3).total[0])
    with open(outcome["files"]["csv"]) as f:
        assert [r["cycles"] for r in csv.DictReader(f)] == ["", str(by_point[1, 64]["cycles"]), "",
                                                           str(by_point[2, 64]["cycles"])]
    assert Path(outcome["files"]["cycles_png"]).read_bytes()[:4] == b"\x89PNG"
