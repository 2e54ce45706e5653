"""Valid/ready stream drivers for cocotb, serviced by one clock loop.

One coroutine steps every stream of the DUT once per cycle: after the rising
edge it drives (so the DUT sees the new values for the whole cycle), then in
the read-only phase it samples the settled handshake that the *next* edge
will complete.  Sampling in ``ReadOnly`` behaves the same on Icarus (event
driven) and Verilator (cycle based), which differ right after an edge.

Sources insert random idle cycles and sinks random backpressure, each from a
seeded generator; a source never drops ``valid`` before its beat is taken.
Beats are whole packed words (a tile row per beat), see :mod:`attn_rtl.tb.packing`.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["StreamSource", "StreamSink", "StreamBench", "Control", "UnresolvedValue"]


class UnresolvedValue(AssertionError):
    """A signal the testbench reads holds X or Z (Icarus only; Verilator is 2-state)."""


def _read(handle, what: str) -> int:
    value = handle.value
    if not value.is_resolvable:
        raise UnresolvedValue(f"{what} is not a resolvable value: {value}")
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


def _handles(dut, name: str, axis: str | None):
    """``payload, valid, ready`` of an Amaranth stream port ``name`` (``name__payload`` ...), or of the
    AXI4-Stream port ``axis`` (``axis_tdata``, ``axis_tvalid``, ``axis_tready``) when given."""
    if axis is not None:
        return (getattr(dut, f"{axis}_tdata"), getattr(dut, f"{axis}_tvalid"), getattr(dut, f"{axis}_tready"))
    return (getattr(dut, f"{name}__payload"), getattr(dut, f"{name}__valid"), getattr(dut, f"{name}__ready"))


class StreamSource:
    """Drives ``<name>__payload`` / ``__valid`` from a queue of packed beats.

    ``idle`` is the probability of holding ``valid`` low before offering a beat.
    """

    def __init__(self, dut, name: str, rng: np.random.Generator, idle: float = 0.0, axis: str | None = None):
        self.payload, self.valid, self.ready = _handles(dut, name, axis)
        self.name, self.rng, self.idle = name, rng, idle
        self.queue: deque[int] = deque()
        self.offering = False
        self.accepted = 0
        self.first_accept_cycle: int | None = None
        self.last_accept_cycle: int | None = None
        self.valid.value = 0

    def send(self, beats) -> None:
        self.queue.extend(int(b) for b in beats)

    @property
    def done(self) -> bool:
        return not self.queue and not self.offering

    def drive(self, cycle: int) -> None:
        if not self.offering and self.queue and not (self.idle and self.rng.random() < self.idle):
            self.payload.value = self.queue[0]
            self.offering = True
        self.valid.value = int(self.offering)

    def sample(self, cycle: int) -> None:
        if self.offering and _read(self.ready, f"{self.name}__ready"):
            self.queue.popleft()
            self.offering = False
            self.accepted += 1
            if self.first_accept_cycle is None:
                self.first_accept_cycle = cycle
            self.last_accept_cycle = cycle

    def flush(self) -> None:
        """Forget pending beats (after a reset); the next drive phase lowers ``valid``."""
        self.queue.clear()
        self.offering = False


class StreamSink:
    """Collects packed beats from ``<name>__payload`` with random backpressure ``stall``."""

    def __init__(self, dut, name: str, rng: np.random.Generator, stall: float = 0.0, axis: str | None = None):
        self.payload, self.valid, self.ready = _handles(dut, name, axis)
        self.name, self.rng, self.stall = name, rng, stall
        self.beats: list[int] = []
        self.first_accept_cycle: int | None = None
        self.last_accept_cycle: int | None = None
        self.ready.value = 0

    def drive(self, cycle: int) -> None:
        self.ready.value = int(not (self.stall and self.rng.random() < self.stall))

    def sample(self, cycle: int) -> None:
        if _read(self.valid, f"{self.name}__valid") and self.ready.value:
            self.beats.append(_read(self.payload, f"{self.name}__payload"))
            if self.first_accept_cycle is None:
                self.first_accept_cycle = cycle
            self.last_accept_cycle = cycle


class Control:
    """Control inputs driven in the bench's drive phase like every stream: ``set`` values for the
    next cycle, ``pulse`` a signal for one cycle.  Port names are ``prefix + name``."""

    def __init__(self, dut, prefix: str = ""):
        self.dut, self.prefix, self.pending, self.pulses = dut, prefix, {}, set()

    def read(self, name: str) -> int:
        return int(getattr(self.dut, self.prefix + name).value)

    def set(self, **values) -> None:
        self.pending.update(values)

    def pulse(self, name: str) -> None:
        self.pulses.add(name)
        self.pending[name] = 1

    def drive(self, cycle: int) -> None:
        for name, value in self.pending.items():
            getattr(self.dut, self.prefix + name).value = value
        self.pending = {name: 0 for name in self.pulses}
        self.pulses = set()

    def sample(self, cycle: int) -> None:
        pass


class StreamBench:
    """The clock loop: steps every registered source and sink once per cycle."""

    def __init__(self, dut, clk, rst, streams=(), *, reset_active_low: bool = False, quiet_in_reset: bool = False):
        self.dut, self.clk, self.rst = dut, clk, rst
        self.streams = list(streams)
        self.cycle = 0
        self._reset_cycles = 0
        # With quiet_in_reset, no source may see ready and no sink valid from a reset's first edge
        # until its latency has passed (the engine's ports: AXI4-Stream's rule, and its reset tree's lag).
        self._quiet_in_reset = quiet_in_reset
        self._quiet_cycles = 0
        self._reset_edges = 0
        self._asserted = 0 if reset_active_low else 1
        # Hold reset from time 0 until the first reset() completes.
        self.rst.value = self._asserted

    async def reset(self, cycles: int = 2, *, latency: int = 1, flush: bool = True) -> None:
        """Hold the synchronous reset for ``cycles`` clock edges, then wait ``latency`` more for a
        DUT whose units reset from registered copies of it (the engine's ``reset_latency``).

        With ``flush`` sources forget pending beats first; without, they keep offering them
        through the reset (flush them after it), which ``quiet_in_reset`` checks are refused.
        Reset is driven in the drive phase like every other input, so the DUT
        samples it at exactly those edges on both simulators.
        """
        if flush:
            self.flush()
        self._reset_cycles = cycles
        self._quiet_cycles = cycles + latency
        await self.step(cycles + latency)

    def flush(self) -> None:
        """Every source forgets its pending beats."""
        for s in self.streams:
            if isinstance(s, StreamSource):
                s.flush()

    def _check_quiet(self) -> None:
        for s in self.streams:
            if isinstance(s, StreamSource) and _read(s.ready, f"{s.name} ready"):
                raise AssertionError(f"{s.name} ready in reset or its latency (cycle {self.cycle})")
            if isinstance(s, StreamSink) and _read(s.valid, f"{s.name} valid"):
                raise AssertionError(f"{s.name} valid in reset or its latency (cycle {self.cycle})")

    async def _cycle(self) -> None:
        await RisingEdge(self.clk)
        in_reset = self._reset_cycles > 0
        self.rst.value = self._asserted if in_reset else 1 - self._asserted
        self._reset_cycles = max(self._reset_cycles - 1, 0)
        for s in self.streams:
            s.drive(self.cycle)
        await ReadOnly()
        if self._quiet_in_reset and self._quiet_cycles and self._reset_edges:
            self._check_quiet()
        self._reset_edges += in_reset
        self._quiet_cycles = max(self._quiet_cycles - 1, 0)
        if not in_reset:  # nothing transfers at an edge that resets (outputs may still be X before it)
            for s in self.streams:
                s.sample(self.cycle)
        self.cycle += 1

    async def step(self, cycles: int) -> None:
        for _ in range(cycles):
            await self._cycle()

    async def run(self, until, max_cycles: int) -> None:
        """Step until ``until()`` holds after a cycle; fail after ``max_cycles`` cycles."""
        for _ in range(max_cycles):
            await self._cycle()
            if until():
                return
        raise AssertionError(f"timed out after {max_cycles} cycles (cycle {self.cycle})")
