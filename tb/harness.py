"""Shared plumbing of the cocotb testbenches: configuration in, report out, stimulus.

The pytest side (:func:`attn_rtl.sim.runner.run_cocotb`) passes the test configuration
as JSON in ``ATTN_TB_CONFIG`` and reads the report that :class:`Report`
writes to ``ATTN_TB_REPORT``, so a mismatch reaches the pytest message and
measured cycles reach the CLI.
"""

from __future__ import annotations

import json
import os

import numpy as np

__all__ = ["load_config", "begin", "Report", "operand_matrix", "start_run"]

MAX_REPORTED_MISMATCHES = 10


def load_config() -> dict:
    return json.loads(os.environ["ATTN_TB_CONFIG"])


def begin(dut, key: str):
    """A testbench's first lines: its configuration, a :class:`Report`, and the seeded generator
    (the seed and ``cfg[key]`` go to the log, so any failure can be replayed)."""
    cfg = load_config()
    dut._log.info("seed %d, %s %s", cfg["seed"], key, cfg[key])
    return cfg, Report(cfg), np.random.default_rng(cfg["seed"])


def operand_matrix(rng: np.random.Generator, shape, width: int, signed: bool, kind: str) -> np.ndarray:
    """Random integers of ``width`` bits, or the extreme value of the range for ``kind`` ``min``/``max``.

    ``mixed`` draws each element from {min, max, random}.
    """
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if kind == "min":
        return np.full(shape, lo, np.int64)
    if kind == "max":
        return np.full(shape, hi, np.int64)
    values = rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64)
    if kind == "mixed":
        pick = rng.integers(0, 3, size=shape)
        values = np.where(pick == 0, lo, np.where(pick == 1, hi, values))
    elif kind != "random":
        raise ValueError(f"operands must be random, min, max or mixed, not {kind!r}")
    return values


class Report:
    """Collects checks; :meth:`finish` writes the JSON report and fails the cocotb test on a mismatch."""

    def __init__(self, cfg: dict):
        self.seed = cfg.get("seed")
        self.mismatches: list[str] = []
        self.mismatch_count = 0
        self.elements = 0
        self.cycles: int | None = None
        self.extra: dict = {}

    def _fail(self, message: str) -> None:
        self.mismatch_count += 1
        if len(self.mismatches) < MAX_REPORTED_MISMATCHES:
            self.mismatches.append(message)

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self._fail(message)

    def compare(self, where: str, got, expected) -> None:
        """Compare every element; record each differing index with both values."""
        got, expected = np.asarray(got), np.asarray(expected)
        self.elements += expected.size
        if got.shape != expected.shape:
            self._fail(f"{where}: shape {got.shape}, expected {expected.shape}")
            return
        for idx in zip(*np.nonzero(got != expected)):
            self._fail(f"{where} [{', '.join(map(str, idx))}]: got {got[idx]}, expected {expected[idx]}")

    def finish(self) -> None:
        passed = self.mismatch_count == 0 and self.elements > 0
        body = {"passed": passed, "seed": self.seed, "elements": self.elements,
                "mismatch_count": self.mismatch_count, "mismatches": self.mismatches,
                "cycles": self.cycles, **self.extra}
        path = os.environ.get("ATTN_TB_REPORT")
        if path:
            with open(path, "w") as f:
                json.dump(body, f, indent=1)
        assert self.elements > 0, "the testbench compared no element"
        assert passed, (f"{self.mismatch_count} mismatches (seed {self.seed}); first: "
                        + "; ".join(self.mismatches))


async def start_run(bench, control, report: Report, config_latency: int, where: str,
                    expect_error: bool = False) -> bool:
    """Pulse ``start`` once the runtime registers have held for ``config_latency`` cycles; a run with
    ``expect_error`` must raise ``error`` and not start (then ``False``), any other must start."""
    await bench.step(config_latency)   # the range check is registered
    control.pulse("start")
    await bench.step(2)
    error, busy = control.read("error"), control.read("busy")
    if expect_error:
        report.check(error == 1 and busy == 0, f"{where}: error {error}, busy {busy}; expected an error and no start")
        report.elements += 1
        return False
    report.check(busy == 1 and error == 0, f"{where}: did not start (busy {busy}, error {error})")
    return True
