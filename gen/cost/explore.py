"""`attn-rtl explore`: exhaustive design-space enumeration with the cost model (MMEE-style).

Every candidate configuration of the engine for a workload and an FPGA part is evaluated at once
(gen/cost/model.py, gen/cost/area.py); candidates that do not fit the part or the budget, or lie
outside the cycle model's validated domain, are dropped; the rest are ranked by the objective, and
the Pareto front of latency against LUTs is plotted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attn_rtl.sim.sliding import uses_global_row

from .area import RESOURCES, global_row_extra, predict_area, sliding_extra
from .model import (
    SPACE,
    TARGETS,
    Cycles,
    dma_memory_bits,
    energy_pj,
    enumerate_space,
    in_domain,
    memory_bits,
    offchip_bytes,
    pareto_front,
    predict_cycles,
    takes_diagonal,
)
from .workloads import Workload

__all__ = ["FMAX_MHZ", "OBJECTIVES", "Exploration", "explore", "parse_budget", "config_toml"]

OBJECTIVES = ("latency", "energy", "edp")

#: Clock per family for the latency column, with where it comes from.
FMAX_MHZ = {
    "ecp5": (79.5, "measured: nextpnr-ecp5, default 8×8 engine, reset timed, median of 3 seeds, docs/timing.md"),
    "ice40": (47.0, "measured on a 2×2 array only (iCEBreaker build, docs/flows.md); no engine fits a UP5K"),
    "xilinx7": (79.5, "not measured (no open place-and-route for 7-series): the ECP5 figure"),
}


@dataclass
class Exploration:
    workload: Workload
    target: str
    objective: str
    candidates: int            #: configurations enumerated and evaluated
    seconds: float             #: wall time of the enumeration and evaluation
    feasible: int              #: fit the part and the budget, inside the validated domain
    table: dict                #: every figure of every candidate (arrays)
    best: np.ndarray           #: indices of the best candidates, best first
    pareto: np.ndarray         #: indices of the latency/LUT Pareto front among the feasible
    fmax_mhz: float
    fmax_source: str
    multipliers: tuple[str, ...]
    fifo_memories: tuple[str, ...]

    @property
    def candidates_per_second(self) -> float:
        return self.candidates / self.seconds

    def config(self, index: int) -> dict:
        """The generator parameters of candidate ``index`` (what `attn-rtl generate engine` takes)."""
        t, w = self.table, self.workload
        pattern = w.pattern
        return {
            "rows": int(t["rows"][index]), "cols": int(t["cols"][index]),
            "max_seq_len": int(t["max_seq_len"][index]), "max_head_dim": int(t["max_head_dim"][index]),
            "max_heads": int(t["max_heads"][index]), "prob_tiles": int(t["prob_tiles"][index]),
            "sparse": not pattern.is_dense, "importance": w.rank, "row_flags": w.msb_bits is not None,
            "max_dilation": max(64, pattern.dilation), "max_globals": max(4, len(pattern.global_tokens)),
            "multiplier": self.multipliers[int(t["multiplier"][index])],
            "fifo_memory": self.fifo_memories[int(t["fifo_memory"][index])],
            **({"sliding": bool(t["sliding"][index]), "global_row": bool(t["sliding"][index] == 2)}
               if "sliding" in t else {}),
            **({"kv_buffer_keys": int(t["kv_buffer_keys"][index])} if "kv_buffer_keys" in t else {}),
        }


def parse_budget(text: str | None) -> dict[str, int]:
    """``lut=N,dsp=N,bram=N,ff=N`` (any subset) to a dict; errors name the bad part."""
    if not text:
        return {}
    budget = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name not in RESOURCES:
            raise ValueError(f"budget entries are NAME=N with NAME one of {', '.join(RESOURCES)}, not {part.strip()!r}")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"budget {name} must be a non-negative integer, not {value!r}") from None
        if number < 0:
            raise ValueError(f"budget {name} must be a non-negative integer, not {number}")
        budget[name] = number
    return budget


def explore(workload: Workload, target: str, objective: str = "latency", *, budget: dict | None = None,
            top: int = 10, space: dict | None = None, fitted: dict | None = None,
            memory_mapped: bool = False) -> Exploration:
    """Every configuration for ``workload`` on ``target``, ranked by ``objective``.  With
    ``memory_mapped`` the candidates are the memory-mapped top (docs/system.md), with and without a K/V
    buffer holding the workload's keys: its staging bits count in the area, its off-chip bytes in the
    energy."""
    if memory_mapped and (not workload.pattern.is_dense or workload.recomputed_rows):
        raise ValueError(f"the memory-mapped top's exploration takes dense layers (ranked, pruned or a progressive "
                         f"first run included), not {workload.name}")
    if memory_mapped:
        space = dict(SPACE if space is None else space, kv_buffer=(0, 1))
    elif takes_diagonal(workload):
        # 0: gathered tiles; 1: the diagonal tiles of a sliding build; 2: with the global PE row as well, where
        # the layer has the one global token it serves.
        row = uses_global_row(workload.pattern, workload.tokens, 1)
        space = dict(SPACE if space is None else space, sliding=(0, 1, 2) if row else (0, 1))
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    part = TARGETS[target]
    family = part["family"]
    budget = dict(budget or {})
    for name, value in budget.items():
        if name not in RESOURCES:
            raise ValueError(f"budget names {', '.join(RESOURCES)}, not {name!r}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"budget {name} must be a non-negative integer, not {value!r}")
    start = time.perf_counter()
    grid = enumerate_space(workload, family, space)
    t = dict(grid.columns)
    rows, cols = t["rows"], t["cols"]
    # Cycles depend on (rows, cols, prob_tiles) only: computed on that sub-grid, then broadcast.
    over = ("rows", "cols", "prob_tiles")
    sub = np.meshgrid(*(grid.axes[n] for n in over), indexing="ij")
    small = predict_cycles(workload, *sub)
    cycles = Cycles(*(grid.expand(x, over) for x in (small.total, small.busy, small.tiles)))
    if "sliding" in grid.axes:
        # Diagonal tiles, counted only where the model is validated (the rest is dropped below).
        inside = in_domain(workload, *sub)
        for mode in grid.axes["sliding"][grid.axes["sliding"] > 0]:
            diagonal = [np.full(sub[0].shape, np.inf) for _ in range(3)]
            if inside.any():
                found = predict_cycles(workload, *(x[inside] for x in sub), sliding=True, global_row=mode == 2)
                for full, figure in zip(diagonal, (found.total, found.busy, found.tiles)):
                    full[inside] = figure
            chosen = t["sliding"] == mode
            cycles = Cycles(*(np.where(chosen, grid.expand(figure, over), plain) for figure, plain in zip(diagonal, (
                cycles.total, cycles.busy, cycles.tiles))))
    t["memory_bits"] = memory_bits(rows, cols, t["prob_tiles"], t["max_seq_len"], t["max_head_dim"],
                                   t["max_heads"], importance=workload.rank)
    if memory_mapped:
        t["kv_buffer_keys"] = t["kv_buffer"] * cols * -(-workload.tokens // cols)
        spatten = workload.rank or workload.msb_bits is not None or workload.tokens < workload.seq_len \
            or workload.heads_computed < workload.heads
        t["memory_bits"] = t["memory_bits"] + dma_memory_bits(rows, cols, t["prob_tiles"], t["max_head_dim"],
                                                              t["kv_buffer_keys"],
                                                              t["max_seq_len"] if spatten else None)
    t.update(predict_area(family, rows, cols, t["memory_bits"], fitted=fitted))
    if "sliding" in t:
        for resource, extra in sliding_extra(rows, cols).items():
            t[resource] = t[resource] + np.where(t["sliding"] > 0, extra, 0)
        for resource, extra in global_row_extra(rows, cols).items():
            t[resource] = t[resource] + np.where(t["sliding"] == 2, extra, 0)
    if memory_mapped:
        read, written = offchip_bytes(workload, rows, cols=cols, kv_buffer_keys=t["kv_buffer_keys"],
                                      prob_tiles=t["prob_tiles"])
    else:
        read, written = offchip_bytes(workload, grid.axes["rows"])
        read = grid.expand(read, ("rows",))
        written = grid.expand(written, ("rows",))
    fmax, source = FMAX_MHZ[family]
    t.update(cycles=cycles.total, busy_cycles=cycles.busy, read_bytes=read, written_bytes=written,
             latency_us=cycles.total / fmax,
             energy_uj=energy_pj(workload, rows, cols, cycles, read, written, t["max_seq_len"]) * 1e-6)
    t["edp"] = t["energy_uj"] * t["latency_us"]
    seconds = time.perf_counter() - start

    limits = {r: min(part[r], budget.get(r, part[r])) for r in RESOURCES}
    domain = in_domain(workload, rows, cols, t["prob_tiles"])
    fits = np.ones(rows.shape, bool)
    for r in RESOURCES:
        fits &= t[r] <= limits[r]
    ok = fits & domain
    if not ok.any():
        raise ValueError(_infeasible(t, domain, limits, budget, target))
    score = {"latency": t["latency_us"], "energy": t["energy_uj"], "edp": t["edp"]}[objective]
    index = np.flatnonzero(ok)
    # Ties go to the smaller configuration; then one row per array shape (its best buffer count and
    # sizes), so the table shows alternatives rather than one shape in many near-equal variants.
    keys = [t[name][index] for name in ("fifo_memory", "multiplier", "max_heads", "max_head_dim", "max_seq_len")]
    order = index[np.lexsort((*keys, t["memory_bits"][index], t["lut"][index], score[index]))]
    shape = t["rows"][order] * 1_000 + t["cols"][order]
    _, first = np.unique(shape, return_index=True)
    best = order[np.sort(first)][:top]
    front = index[pareto_front(np.stack([t["latency_us"][index], t["lut"][index]], axis=1))]
    return Exploration(workload=workload, target=target, objective=objective, candidates=len(rows),
                       seconds=seconds, feasible=int(ok.sum()), table=t, best=best, pareto=front,
                       fmax_mhz=fmax, fmax_source=source, multipliers=grid.multipliers,
                       fifo_memories=grid.fifo_memories)


def _infeasible(t: dict, domain: np.ndarray, limits: dict, budget: dict, target: str) -> str:
    """Which constraint rules everything out: the one the best candidate misses by the most."""
    worst = None
    for r in RESOURCES:
        need = float(t[r][domain].min()) if domain.any() else float(t[r].min())
        ratio = need / max(limits[r], 1)
        if ratio > 1 and (worst is None or ratio > worst[0]):
            worst = (ratio, r, need)
    if worst is None:
        return f"no configuration meets every limit at once on {target}"
    _, r, need = worst
    where = f"budget {r}={budget[r]:,}" if r in budget and budget[r] <= limits[r] else f"{target}'s {limits[r]:,} {r}"
    return (f"no configuration fits: the smallest needs {need:,.0f} {r} against {where} "
            f"(the tightest constraint)")


def config_toml(config: dict, exploration: Exploration, index: int) -> str:
    """The chosen configuration as a config file `attn-rtl generate engine --config` reads."""
    t = exploration.table
    lines = [f"# attn-rtl explore --workload {exploration.workload.name} --target {exploration.target} "
             f"--objective {exploration.objective}",
             f"# predicted: {t['cycles'][index]:,.0f} cycles, {t['latency_us'][index]:,.1f} us at "
             f"{exploration.fmax_mhz} MHz, {t['energy_uj'][index]:,.1f} uJ, {t['lut'][index]:,.0f} LUT, "
             f"{t['dsp'][index]:,.0f} DSP, {t['bram'][index]:,.0f} BRAM, {t['memory_bits'][index]:,} buffer bits",
             "[engine]"]
    for key, value in config.items():
        text = ("true" if value else "false") if isinstance(value, bool) else \
            (f'"{value}"' if isinstance(value, str) else str(value))
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def plot_pareto(exploration: Exploration, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = exploration.table
    rng = np.random.default_rng(0)
    sample = rng.choice(len(t["rows"]), size=min(20_000, len(t["rows"])), replace=False)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(t["lut"][sample], t["latency_us"][sample], s=2, alpha=0.25, color="0.6", label="candidates (sample)")
    front = exploration.pareto[np.argsort(t["lut"][exploration.pareto])]
    ax.plot(t["lut"][front], t["latency_us"][front], "o-", color="tab:blue", ms=3, label="Pareto front (feasible)")
    ax.scatter(t["lut"][exploration.best[:1]], t["latency_us"][exploration.best[:1]], color="tab:red", zorder=3,
               label=f"best by {exploration.objective}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"LUTs (predicted, {exploration.target})")
    ax.set_ylabel(f"latency, us at {exploration.fmax_mhz} MHz (predicted)")
    ax.set_title(f"{exploration.workload.name}: {exploration.candidates:,} candidates")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
