"""Timing bench: nextpnr-ecp5 Fmax of whole designs and of the engine's blocks, with the reset timed.

Every design sits in :class:`~attn_rtl.hdl.pin_wrapper.PinWrapper`, whose reset comes from a register,
and is placed and routed on the LFE5U-85F-6 CABGA381 once per seed, one run at a time.  Each run's
nextpnr log and JSON report stay in the cache (``pnr/``); its figures (Fmax per seed and median, the
clock-to-clock critical path of each seed split into logic and routing with the cells on it, the
utilization, wall time) are kept in ``bench/timing.json`` of the cache, so parts can be measured one at
a time.  Writes docs/timing.md and docs/timing.json.

Parts: ``units`` (each block of the default engine at the engine's own parameters: minutes each),
``proxy`` (a 4×4 engine: a whole-engine figure in minutes), ``softmax``, ``array``, and the engines
``engine``, ``engine_sparse``, ``engine_spatten`` (1-2 hours per seed).
"""

from __future__ import annotations

import datetime
import json
import statistics
import time
from pathlib import Path

from attn_rtl.gen.presets import PRESETS

from . import engine as engine_bench
from . import softmax as softmax_bench
from .pages import DOCS, write_page

__all__ = ["run", "PARTS", "DESIGNS", "measure"]

PARTS = ("units", "proxy", "softmax", "array", "engine", "engine_sparse", "engine_spatten")
#: The default engine as the engine bench builds it for Fmax (ECP5 multipliers with their registers, the
#: array's result FIFO in flip-flops, the large buffers where Yosys puts them), the softmax unit and the
#: array as their benches build them (DP16KD FIFOs).
ENGINE = dict(engine_bench.DEFAULT, **engine_bench.FMAX_CONFIG)
PROXY = dict(ENGINE, rows=4, cols=4, max_seq_len=256, max_head_dim=64, max_heads=4)
#: Design name -> (kind of component, parameters): "engine" designs are the bare AttentionEngine.
DESIGNS = {
    "engine": ("engine", ENGINE),
    "engine_sparse": ("engine", dict(ENGINE, max_seq_len=4096, sparse=True)),
    "engine_spatten": ("engine", dict(ENGINE, importance=True, row_flags=True)),
    "engine_proxy": ("engine", PROXY),
    "softmax": ("softmax", dict(softmax_bench.DEFAULT, multiplier="ecp5", fifo_memory="ecp5")),
    "array": ("array", dict(PRESETS["array"]["default"], multiplier="ecp5", fifo_memory="ecp5")),
}
ROUTER = ("--router", "router2")
TIMEOUT = 150 * 60


def _component(kind: str, params: dict):
    from attn_rtl.hdl import AttentionEngine, SoftmaxUnit, SystolicArray

    return {"engine": AttentionEngine, "softmax": SoftmaxUnit, "array": SystolicArray}[kind](**params)


def _cache() -> Path:
    from attn_rtl.sim.runner import default_cache_dir

    return default_cache_dir() / "bench" / "timing.json"


def measure(name: str, component, seeds) -> dict:
    """Place and route ``component`` once per seed; the entry docs/timing.json keeps for it."""
    from attn_rtl.gen.flows.pnr import fmax_ecp5
    from attn_rtl.gen.generate import _hdl_fingerprint
    from attn_rtl.gen.provenance import VERSION, checkout_commit

    start = time.monotonic()
    found = fmax_ecp5(component, seeds=tuple(seeds), timeout=TIMEOUT, nextpnr_args=ROUTER)
    used = found["utilization"]
    return {"design": name, "fmax_mhz": found["per_seed"], "median_mhz": round(statistics.median(found["per_seed"]), 2),
            "seeds": list(seeds), "luts": used["lut4"], "ffs": used["ff"], "dsps": used["mult18x18d"],
            "brams": used["dp16kd"], "carry": found.get("carry"), "lut_mapper": found["lut_mapper"], "wall_s": round(time.monotonic() - start),
            "critical_paths": found["paths"], "logs": found["logs"], "date": datetime.date.today().isoformat(),
            "commit": checkout_commit() or f"attn-rtl {VERSION}", "hdl": _hdl_fingerprint()[:16]}


def _engine_blocks() -> dict:
    engine = _component("engine", ENGINE)
    engine._MustUse__silence = True
    blocks = {f"engine.{name}": block for name, block in engine.blocks().items()}
    for block in blocks.values():
        block._MustUse__silence = True   # only the ones asked for are built
    return blocks


def part_names() -> tuple:
    """What ``--parts`` may name: the parts, and each block of the engine alone (``engine.softmax``)."""
    return PARTS + tuple(_engine_blocks())


def _designs(parts) -> list[tuple[str, object]]:
    """(name, component) of every design the parts name, in the order of ``parts``."""
    out = []
    for part in parts:
        if part == "units":
            out += _engine_blocks().items()
        elif part.startswith("engine."):
            blocks = _engine_blocks()
            if part not in blocks:
                raise ValueError(f"part must be one of {', '.join(part_names())}, not {part!r}")
            out.append((part, blocks[part]))
        elif part == "proxy":
            out.append(("engine_proxy", _component(*DESIGNS["engine_proxy"])))
        else:
            out.append((part, _component(*DESIGNS[part])))
    return out


def run(parts=PARTS, *, seeds=(1, 2), out: Path | None = None, json_out: Path | None = None) -> Path:
    cache = _cache()
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    for name, component in _designs(parts):
        print(f"bench timing: {name} (seeds {', '.join(map(str, seeds))})", flush=True)
        stored[name] = measure(name, component, seeds)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(stored, indent=1, sort_keys=True))
    figures = {name: {k: v for k, v in entry.items() if k not in ("logs", "hdl")} for name, entry in stored.items()}
    (json_out or DOCS / "timing.json").write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    return write_page(out or DOCS / "timing.md", _TEMPLATE, ("table", "paths"),
                      {"table": _table(stored), "paths": _paths(stored)})


def _table(stored: dict) -> list[str]:
    lines = ["| design | Fmax per seed (MHz) | median | LUT4 | FF | MULT18X18D | DP16KD | CCU2C | wall | commit |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in sorted(stored.items(), key=lambda kv: kv[1]["median_mhz"]):
        mapped = " (LUTs by abc: ABC9 trapped)" if e.get("lut_mapper", "abc9") != "abc9" else ""
        lines.append(f"| {name}{mapped} | {', '.join(f'{f:.1f}' for f in e['fmax_mhz'])} | **{e['median_mhz']:.1f}** | "
                     f"{e['luts']:,} | {e['ffs']:,} | {e['dsps']} | {e['brams']} | {_count(e.get('carry'))} | "
                     f"{_wall(e['wall_s'])} | {e['commit'][:10]} ({e['date']}) |")
    return lines


def _wall(seconds: int) -> str:
    return f"{seconds} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _count(value) -> str:
    return "–" if value is None else f"{value:,}"   # – : not recorded (runs before the carry count was kept)


def _paths(stored: dict) -> list[str]:
    lines = []
    for name, e in sorted(stored.items(), key=lambda kv: kv[1]["median_mhz"]):
        lines.append(f"**{name}**")
        lines.append("")
        for seed, path in zip(e["seeds"], e["critical_paths"]):
            if path is None:
                continue
            cells = path["cells"]
            shown = " → ".join(f"`{c}`" for c in (cells if len(cells) <= 6 else [*cells[:3], "…", *cells[-2:]]))
            lines.append(f"- seed {seed}: {path['total_ns']:.2f} ns = {path['logic_ns']:.2f} logic + "
                         f"{path['routing_ns']:.2f} routing; {shown}")
        lines.append("")
    return lines


_TEMPLATE = """# Timing: Fmax on ECP5 with the reset timed

Written by `./dev.sh bench timing` (`gen/bench/timing.py`) on {date} ({machine}); {versions}.

Method: each design inside `hdl/pin_wrapper.py` (every input from a flip-flop chain, every output into a
registered XOR tree, and the reset from a register: two flip-flops after the `rst` pin, as a reset
synchronizer gives it, so the reset's fan-out to every flip-flop is a timed clock-to-clock path), Yosys
`synth_ecp5`, then `nextpnr-ecp5 --85k --package CABGA381 --speed 6 --freq 200 --timing-allow-fail
--router router2 --seed N --report`, one run at a time. The engines are built as the other benches build
them: ECP5 multipliers with their registers (`multiplier = "ecp5"`), buffers where Yosys puts them (block
RAM for the large ones), `fifo_memory = "registers"`; the softmax unit and the array with their DP16KD
FIFOs (`fifo_memory = "ecp5"`). `engine.<block>` rows are the blocks of the default 8×8 engine
(`AttentionEngine.blocks()`), each alone in the same wrapper at the engine's own parameters: the slowest
block is found in minutes, without a whole-engine run. `engine_proxy` is a 4×4 engine (max_head_dim 64,
max_seq_len 256, max_heads 4). Utilization is nextpnr's (LUT4 = TRELLIS_COMB, FF = TRELLIS_FF); CCU2C is
Yosys's count of carry cells (– where a run did not record it). Each run's log and JSON report are kept
under the cache (`pnr/`). nextpnr reports one critical path per clock, not the worst N: the paths below
are one per seed.

Commands: `./dev.sh bench timing --parts units,proxy --seeds 1,2` (minutes per design);
`./dev.sh bench timing --parts engine --seeds 1,2` (1-2 hours per seed). The figures are also in
`docs/timing.json` (one entry per design: `fmax_mhz` per seed, `median_mhz`, `luts`, `ffs`, `dsps`,
`brams`, the date and the commit timed).

Slowest first:

<!-- begin table -->
{table}
<!-- end table -->

## Critical paths

The clock-to-clock path that sets Fmax, per seed (nextpnr reports one per clock; the hierarchical cell
names lead to the Amaranth module: `inner.softmax.…` is `hdl/softmax.py` inside the engine):

<!-- begin paths -->
{paths}
<!-- end paths -->
"""
