"""Generate a unit, run its cocotb testbench on a simulator, return the measured report."""

from __future__ import annotations

from .generate import cached_verilog, unit
from hdl.params import positive_int

__all__ = ["simulate_array", "check_probability"]


def check_probability(name: str, value) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a probability from 0 up to (not including) 1, not {value!r}")
    return float(value)


def simulate_array(params: dict, *, sim: str = "icarus", seed: int = 1, tiles=None, idle: float = 0.0,
                   stall: float = 0.0, reset_mid: bool = False, operands: str = "random") -> dict:
    """Run ``tiles`` (a list of reduction lengths; default four of ``max_reduction``) through the array.

    The report holds ``passed``, ``elements`` compared, ``cycles`` from the
    first operand accepted to the last result sent, and ``macs``.
    """
    from sim.runner import run_cocotb

    path, component = cached_verilog("array", params)
    full = component.params
    tiles = [full["max_reduction"]] * 4 if tiles is None else list(tiles)
    if not tiles:
        raise ValueError("tiles must list at least one reduction length")
    for depth in tiles:
        positive_int("reduction length", depth, at_most=full["max_reduction"])
    cfg = dict(full, seed=int(seed), tiles=tiles, idle=check_probability("idle", idle),
               stall=check_probability("stall", stall), reset_mid=bool(reset_mid), operands=operands)
    models = unit("array").simulation_models(full)
    report = run_cocotb(sources=[path, *models], toplevel=unit("array").top, test_module=unit("array").testbench,
                        sim=sim, config=cfg)
    report.update(latency=component.latency, tiles=tiles, sim=sim,
                  model_cycles=component.run_cycles(tiles))
    return report
