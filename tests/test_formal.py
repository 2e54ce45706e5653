"""Formal proofs of the stream blocks (SymbiYosys from PyPI, smtbmc with z3; docs/verification.md).

Each block's spec (``attn_rtl.tb.formal``) asserts the AXI4-Stream rules on the
ports it drives, assumes them of its inputs, and follows the beats through it
(none lost, duplicated or changed).  A proof is k-induction (``prove``: it holds
for every cycle); each property is also shown able to fail: the design broken on
one net by a Yosys ``mutate`` command (chosen by the wire it breaks) must fail
the bounded check of its interface properties.
"""

from __future__ import annotations

import re

import pytest

from attn_rtl.sim.formal import check, mutations
from attn_rtl.tb.formal import credit_fifo_spec, register_slice_spec

pytestmark = pytest.mark.formal


def _run(spec, name: str, **options):
    return check(spec.elaboratable(), name=name, ports=spec.ports, **options)


def _mutant(make_spec, mode: str, wire: str) -> str:
    """The first listed mutation of ``wire`` in ``mode`` (a Yosys ``mutate`` command)."""
    spec = make_spec()
    found = [line for line in mutations(spec.elaboratable(), ports=spec.ports)
             if re.search(rf"-mode {mode} .*-wire {re.escape(wire)} ", line)]
    assert found, f"no {mode} mutation of {wire} listed"
    return found[0]


def _fails(result, what: str):
    assert result.status == "FAIL", f"{what}: {result.status}\n{result.log}"
    assert re.search(r"failed assertion .*tb/formal\.py:\d+", result.log), result.log


@pytest.mark.parametrize("width", [1, 4])
def test_register_slice_is_proven(width):
    result = _run(register_slice_spec(width), f"register_slice_{width}", mode="prove", depth=8)
    assert result.passed, result.log


def test_register_slice_reaches_full_rate_and_full():
    result = _run(register_slice_spec(), "register_slice_cover", mode="cover", depth=8)
    assert result.passed, result.log


#: A broken net -> what must catch it: the mutation's mode and wire, and the property's line in tb/formal.py.
REGISTER_SLICE_MUTATIONS = [
    ("const1", "i__ready", "a full slice that still takes beats loses one"),
    ("inv", "dut.r_ptr", "a read pointer off by one sends beats out of order"),
    ("const1", "o__valid", "valid high after reset, with nothing inside"),
]


@pytest.mark.parametrize("mode, wire, what", REGISTER_SLICE_MUTATIONS, ids=[m[1] for m in REGISTER_SLICE_MUTATIONS])
def test_a_broken_register_slice_fails_its_properties(mode, wire, what):
    def make():
        return register_slice_spec(invariants=False)
    _fails(_run(make(), "register_slice_mutant", mode="bmc", depth=8, mutation=_mutant(make, mode, wire)), what)


#: The credit FIFO's bounded check: 12 cycles fill a 3-entry FIFO behind its 3-cycle latency and drain it;
#: 16 cycles (with -m slow) take about 140 s.  k-induction needs invariants of its counters (not yet).
CREDIT_FIFO_DEPTH = 12


@pytest.mark.parametrize("depth", [CREDIT_FIFO_DEPTH, pytest.param(16, marks=pytest.mark.slow)])
def test_credit_fifo_bounded(depth):
    result = _run(credit_fifo_spec(), f"credit_fifo_{depth}", mode="bmc", depth=depth)
    assert result.passed, result.log


def test_credit_fifo_reaches_full_and_full_rate():
    assert _run(credit_fifo_spec(), "credit_fifo_cover", mode="cover", depth=CREDIT_FIFO_DEPTH).passed


CREDIT_FIFO_MUTATIONS = [
    ("const1", "dut.nonempty", "a fetch from an empty memory sends a beat never written"),
    ("inv", "dut.ring_empty", "the output takes the memory's word over the ring's"),
    ("const0", "dut.w_ptr_0_0", "a write address bit stuck overwrites an entry"),
]


@pytest.mark.parametrize("mode, wire, what", CREDIT_FIFO_MUTATIONS, ids=[m[1] for m in CREDIT_FIFO_MUTATIONS])
def test_a_broken_credit_fifo_fails_its_properties(mode, wire, what):
    _fails(_run(credit_fifo_spec(), "credit_fifo_mutant", mode="bmc", depth=CREDIT_FIFO_DEPTH,
                mutation=_mutant(credit_fifo_spec, mode, wire)), what)
