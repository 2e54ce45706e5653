"""Bitonic compare-swap networks, pipelined: the sorter and the merger of the top-k engine.

A network is a list of stages; a stage is a list of compare-swaps
``(i, j)`` that put the larger key at position ``i``.  :func:`build_network`
lays the stages out in a module with a register after every
``stages_per_register`` stages except the last group, so the caller can feed
the output straight into a memory's write port (which is the last register).
Keys compare as unsigned integers; side data (flags, a valid bit) travels
through the same registers unchanged.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value

from .pipeline import register

__all__ = ["check_lanes", "bitonic_sort_stages", "bitonic_merge_stages", "network_registers", "build_network"]


def check_lanes(lanes: int) -> int:
    if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1 or lanes & (lanes - 1):
        raise ValueError(f"lanes must be a power of two, not {lanes!r}")
    return lanes


def bitonic_merge_stages(lanes: int) -> list[list[tuple[int, int]]]:
    """Half-cleaners that sort a (cyclically) bitonic sequence into descending order: log2(lanes) stages."""
    check_lanes(lanes)
    stages, stride = [], lanes // 2
    while stride >= 1:
        stages.append([(i, i + stride) for i in range(lanes) if not i & stride])
        stride //= 2
    return stages


def bitonic_sort_stages(lanes: int) -> list[list[tuple[int, int]]]:
    """Batcher's bitonic sorter, descending: log2(lanes)·(log2(lanes)+1)/2 stages."""
    check_lanes(lanes)
    stages, size = [], 2
    while size <= lanes:
        stride = size // 2
        while stride >= 1:
            stage = []
            for i in range(lanes):
                j = i ^ stride
                if j > i:
                    # Blocks of ``size`` alternate direction so that each pair forms a bitonic sequence
                    # for the next size; the last size (the whole sequence) sorts descending.
                    stage.append((i, j) if not i & size else (j, i))
            stages.append(stage)
            stride //= 2
        size *= 2
    return stages


def network_registers(stages: int, stages_per_register: int) -> int:
    """Registers :func:`build_network` puts inside a network of ``stages`` stages."""
    return max(0, -(-stages // stages_per_register) - 1)


def build_network(m: Module, keys: list, side: list, stages, *, stages_per_register: int, name: str):
    """Compare-swap ``keys`` through ``stages``; returns ``(keys, side)`` after the network.

    ``side`` values are delayed by the same registers as the keys.  The result
    is combinational from the last register (or from the inputs when the
    network needs none): :func:`network_registers` cycles after the inputs.
    """
    keys, side = [Value.cast(k) for k in keys], [Value.cast(s) for s in side]
    for number, stage in enumerate(stages):
        keys = list(keys)
        for hi, lo in stage:
            a, b = keys[hi], keys[lo]
            swap = Signal(name=f"{name}_s{number}_swap_{hi}_{lo}")
            m.d.comb += swap.eq(a < b)
            keys[hi], keys[lo] = Mux(swap, b, a), Mux(swap, a, b)
        last = number == len(stages) - 1
        if not last and (number + 1) % stages_per_register == 0:
            keys = [register(m, key, f"{name}_r{number}_k{lane}") for lane, key in enumerate(keys)]
            # The side values carry the valid bits: reset.
            side = [register(m, value, f"{name}_r{number}_side{n}", reset=True) for n, value in enumerate(side)]
    return keys, side
