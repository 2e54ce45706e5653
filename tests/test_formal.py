"""Formal proofs of the stream blocks (SymbiYosys from PyPI, smtbmc with z3; docs/verification.md).

Each block's spec (``attn_rtl.tb.formal``) asserts the AXI4-Stream rules on the
ports it drives, assumes them of its inputs, and follows the beats through it
(none lost, duplicated or changed).  ``prove`` is k-induction (the properties
hold in every cycle), ``bmc`` every cycle up to the depth stated, ``cover`` that
the interesting states are reachable.  Every property is also shown able to
fail: the design broken on one net by a Yosys ``mutate`` command (chosen by the
wire it breaks) must fail its bounded check, naming a property.
"""

from __future__ import annotations

import re

import pytest

from attn_rtl.tb.formal import CHECKS, MUTATIONS, run_check, run_mutation

pytestmark = pytest.mark.formal


@pytest.mark.parametrize("check", [pytest.param(c, marks=pytest.mark.slow) if c.slow else c for c in CHECKS],
                         ids=[c.name for c in CHECKS])
def test_proof(check):
    result = run_check(check)
    assert result.passed, f"{check.name} ({check.mode}, depth {check.depth}): {result.status}\n{result.log}"


@pytest.mark.parametrize("mutation", [pytest.param(m, marks=pytest.mark.slow) if m.slow else m for m in MUTATIONS],
                         ids=[m.name for m in MUTATIONS])
def test_mutation_is_caught(mutation):
    command, result = run_mutation(mutation)
    assert result.status == "FAIL", f"{mutation.what} ({command}): {result.status}\n{result.log}"
    assert re.search(r"failed assertion .*tb/formal\.py:\d+", result.log), result.log
