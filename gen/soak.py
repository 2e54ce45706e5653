"""Soak: many back-to-back runs of random shape, scale, pattern, lists and stalls on small builds.

Each run is drawn across the build's whole range (1 and the maximum of every size included on purpose),
simulated in the free-running harnesses (:func:`~attn_rtl.gen.simulate.measure_engine`, random stalls on
every stream; :func:`~attn_rtl.gen.simulate.measure_engine_mm`, random memory latency and throughput)
and compared element by element with the golden model.  A run that does not finish within its harness's
cycle budget (several times its expected length) is a hang and fails the soak like a mismatch, naming
the seed and the run.  ``./dev.sh bench soak`` runs the long version (docs/verification.md); the tests
run a short one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from attn_rtl.sim.sparse import check_queries, parse_pattern

__all__ = ["SoakResult", "random_engine_run", "random_spatten_run", "soak_engine", "soak_memory_mapped"]


@dataclass
class SoakResult:
    """What a soak ran: ``runs`` compared bit-exact, ``cycles`` simulated, ``seconds`` of wall time, and counts
    of what the runs covered (patterns, stalls, lists, ...)."""
    build: str
    runs: int = 0
    cycles: int = 0
    seconds: float = 0.0
    covered: dict = field(default_factory=dict)

    def count(self, what: str, n: int = 1) -> None:
        self.covered[what] = self.covered.get(what, 0) + n


def _size(rng: np.random.Generator, most: int) -> int:
    """1, ``most``, or anything between (a third each): the ends of every range come up often."""
    pick = rng.integers(0, 3)
    return 1 if pick == 0 else most if pick == 1 else int(rng.integers(1, most + 1))


def _divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


def _scale(rng: np.random.Generator, nm) -> dict:
    """Half the runs the engine's default scale, half a random multiplier and shift over their whole range."""
    if rng.random() < 0.5:
        return {}
    return dict(scale_mult=int(rng.integers(0, 1 << nm.mult_width)), scale_shift=int(rng.integers(0, nm.max_shift + 1)))


def _pattern(rng: np.random.Generator, params: dict, seq_len: int):
    kinds = ["dense", "window", "dilated", "grid", "causal", "causal-window"] if params["sparse"] else ["dense"]
    kind = str(rng.choice(kinds))
    spec = {}
    if kind in ("window", "dilated", "causal-window"):
        spec["window"] = _size(rng, seq_len)
    if kind == "dilated":
        spec["dilation"] = _size(rng, params["max_dilation"])
    if kind == "grid":
        height = int(rng.choice(_divisors(seq_len)))
        spec.update(grid=f"{height}x{seq_len // height}",
                    window2d=f"{_size(rng, height)}x{_size(rng, seq_len // height)}")
    if params["sparse"] and kind not in ("causal", "causal-window"):
        count = int(rng.integers(0, min(params["max_globals"], seq_len) + 1))
        spec["global_tokens"] = ",".join(str(g) for g in sorted(rng.choice(seq_len, count, replace=False)))
    return parse_pattern(kind, **spec)


def random_engine_run(rng: np.random.Generator, params: dict, nm) -> dict:
    """A run the engine build ``params`` takes: any L, H, d in range, grouped heads and fewer queries where the
    pattern allows them, any pattern of a sparse build, a random scale half the time; on a sliding build half
    the window, dilated and grid runs as diagonal tiles (grids whose window fits a row)."""
    seq_len, heads, d = (_size(rng, params[k]) for k in ("max_seq_len", "max_heads", "max_head_dim"))
    pattern = _pattern(rng, params, seq_len)
    run = dict(seq_len=seq_len, heads=heads, head_dim=d, pattern=pattern.to_dict(), **_scale(rng, nm))
    if params.get("sliding") and pattern.kind in ("window", "dilated", "grid") and rng.random() < 0.5:
        # (The diagonal scheduler refuses a 2-D window wider than the grid: its keys would wrap rows.)
        run["diagonal"] = pattern.kind != "grid" or (pattern.window2d[1] | 1) <= pattern.grid[1]
    if pattern.is_dense or pattern.is_causal:
        run["kv_heads"] = int(rng.choice(_divisors(heads)))
        run["query_len"] = _size(rng, seq_len)
    check_queries(pattern, seq_len, run.get("query_len"), heads // run.get("kv_heads", heads))
    return run


def random_spatten_run(rng: np.random.Generator, params: dict) -> dict:
    """A run of a memory-mapped SpAtten build (``importance`` and ``row_flags``): an importance run or not,
    K read from its 1-, 2- or 4-bit MSB plane or whole, rows and heads by random token and head lists,
    any layout, odd gaps."""
    seq_len, heads, d = (_size(rng, params[k]) for k in ("max_seq_len", "max_heads", "max_head_dim"))
    run = dict(seq_len=seq_len, heads=heads, head_dim=d, layout=str(rng.choice(["heads", "tokens", "fused"])),
               gap=int(rng.integers(0, 8)), importance=bool(rng.random() < 0.5),
               k_msb_bits=int(rng.choice([8, 1, 2, 4])))
    lists = rng.integers(0, 4)   # none, tokens (Q, K, V), queries (Q only), or a head list with either
    if lists in (1, 3):
        run["tokens"] = sorted(rng.choice(seq_len, _size(rng, seq_len), replace=False).tolist())
    elif lists == 2:
        run["queries"] = sorted(rng.choice(seq_len, _size(rng, seq_len), replace=False).tolist())
    if lists == 3 or rng.random() < 0.3:
        run["head_list"] = sorted(rng.choice(heads, _size(rng, heads), replace=False).tolist())
    return run


def soak_engine(params: dict, runs: int, *, seed: int = 1, sim: str = "verilator", batch: int = 25) -> SoakResult:
    """``runs`` random runs (:func:`random_engine_run`) of the engine build ``params``, in batches of ``batch``
    runs, each batch at a random stall probability from 0 to 0.6.  Raises
    :class:`~attn_rtl.sim.runner.SimulationFailure` at the first mismatch or hang."""
    from attn_rtl.gen.generate import unit
    from attn_rtl.gen.simulate import measure_engine
    from attn_rtl.sim.golden import Numerics

    full = unit("engine").validate(**params)
    nm = Numerics(**full["numerics"])
    rng = np.random.default_rng(seed)
    result = SoakResult(build=_describe(full))
    start = time.perf_counter()
    while result.runs < runs:
        drawn = [random_engine_run(rng, full, nm) for _ in range(min(batch, runs - result.runs))]
        stall = float(rng.choice([0.0, 0.1, 0.3, 0.6]))
        report = measure_engine(full, drawn, sim=sim, seed=int(rng.integers(0, 1 << 31)), stall=stall)
        result.runs += len(drawn)
        result.cycles += sum(r["cycles"] for r in report["runs"])
        result.count(f"stall {stall}", len(drawn))
        for run in drawn:
            result.count(run["pattern"]["pattern"])
            result.count("grouped heads" if run.get("kv_heads", run["heads"]) < run["heads"] else "ungrouped heads")
            result.count("random scale" if "scale_mult" in run else "default scale")
            result.count("fewer queries" if run.get("query_len", run["seq_len"]) < run["seq_len"] else "all queries")
            if run.get("diagonal"):
                result.count("diagonal tiles")
    result.seconds = time.perf_counter() - start
    return result


def soak_memory_mapped(params: dict, runs: int, *, seed: int = 1, sim: str = "verilator",
                       batch: int = 10) -> SoakResult:
    """``runs`` random SpAtten runs (:func:`random_spatten_run`) of the memory-mapped build ``params``
    (``importance`` and ``row_flags`` on), in batches at a random memory latency (1 to 200 cycles) and
    throughput (1 byte a cycle up to the bus width)."""
    from attn_rtl.gen.generate import unit
    from attn_rtl.gen.simulate import measure_engine_mm

    full = unit("engine_mm").validate(**params)
    if not (full["importance"] and full["row_flags"]):
        raise ValueError("the SpAtten soak takes a build with importance and row_flags on")
    rng = np.random.default_rng(seed)
    result = SoakResult(build=_describe(full))
    start = time.perf_counter()
    while result.runs < runs:
        drawn = [random_spatten_run(rng, full) for _ in range(min(batch, runs - result.runs))]
        latency = int(rng.integers(1, 201))
        throughput = int(rng.integers(1, full["bus_width"] // 8 + 1))
        report = measure_engine_mm(full, drawn, latency=latency, bytes_per_cycle=throughput, sim=sim,
                                   seed=int(rng.integers(0, 1 << 31)))
        result.runs += len(drawn)
        result.cycles += sum(r["cycles"] for r in report["runs"])
        for run in drawn:
            result.count("importance run" if run["importance"] else "plain run")
            result.count(f"K at {run['k_msb_bits']} bits")
            for name in ("tokens", "queries", "head_list"):
                if name in run:
                    result.count(f"{name} list")
    result.seconds = time.perf_counter() - start
    return result


def _describe(params: dict) -> str:
    features = [k for k in ("sparse", "sliding", "global_row", "importance", "row_flags") if params.get(k)]
    return (f"{params['rows']}x{params['cols']}, L <= {params['max_seq_len']}, H <= {params['max_heads']}, "
            f"d <= {params['max_head_dim']}" + (f", {', '.join(features)}" if features else ""))
