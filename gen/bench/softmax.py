"""Benchmark of the softmax unit: accuracy of its arithmetic, Yosys area, nextpnr-ecp5 Fmax.

Writes docs/softmax-benchmarks.md.  Run with ``./dev.sh bench softmax`` (all
parts, about 15 minutes on 2 cores) or pick parts with ``--parts``.  The
hardware is bit-exact with ``sim/softmax_stream.py`` (tests/test_softmax.py),
so the accuracy figures are computed on the model, exhaustively where the
input range allows.
"""

from __future__ import annotations

import concurrent.futures as futures
import math
from pathlib import Path

import numpy as np

from attn_rtl.gen.flows.synth import synthesize
from attn_rtl.gen.generate import cached_verilog
from attn_rtl.sim import golden
from attn_rtl.sim.fixed import quantize, symmetric_scale
from attn_rtl.sim.golden import Numerics

from .pages import DOCS, write_page

__all__ = ["run", "PARTS"]

PARTS = ("accuracy", "area", "fmax")
DEFAULT = dict(lanes=8, slots=8)
AREA_POINTS = [dict(lanes=4, slots=8), dict(lanes=8, slots=8), dict(lanes=16, slots=16)]
AREA_TARGETS = ("ecp5", "xilinx7", "ice40")


def exponent_error_vs_real_logit(nm: Numerics, octaves: float = 8.0, step: float = 4e-6) -> float:
    """Largest ``|p(u)/2^P − 2^−x|`` for real distances ``x`` in ``[0, octaves]`` below the maximum,
    with ``u`` either integer next to ``x · 2^F`` (the logit floors may round either way)."""
    x = np.arange(0.0, octaves, step)
    scaled = x * (1 << nm.logit_frac_bits)
    exact = 2.0 ** -x
    worst = np.zeros_like(x)
    for u in (np.floor(scaled), np.ceil(scaled)):
        approx = golden.exp2_neg(u.astype(np.int64), nm) / 2.0 ** nm.prob_frac_bits
        worst = np.maximum(worst, np.abs(approx - exact))
    return float(worst.max())


def _exponent_table() -> list[str]:
    lines = ["| exponent of | segments (`S`) | max abs error of the mantissa | max rel error | "
             "`p(u)` max error (LSB of 2^−P) | vs real logit, floors included |",
             "|---|---|---|---|---|---|"]
    for segments_log2 in (2, 3, 4, 5):
        nm = Numerics(exp_segments_log2=segments_log2)
        err = golden.exp2_error(nm)
        mark = " (default)" if segments_log2 == Numerics().exp_segments_log2 else ""
        lines.append(f"| attn-rtl{mark} | {1 << segments_log2} | **{err['abs']:.2e}** | {err['frac_rel']:.2e} | "
                     f"{err['prob_abs_lsb']:.2f} | {exponent_error_vs_real_logit(nm):.2e} |")
    lines += ["| I-BERT integer polynomial (published) | – | 1.9e-3 | | | |",
              "| 4-segment piecewise-linear 2^x (published) | 4 | 6.9e-3 | | | |",
              "| goal | | 1e-3 | | | |"]
    return lines


def _probability_rows(rng, n_rows: int, length: int, d: int, sharpness: float, nm: Numerics):
    """Logits of attention rows from Gaussian q, k (int8, per-tensor scales) and the real logits."""
    q = rng.standard_normal((n_rows, d)) * sharpness
    k = rng.standard_normal((length, d))
    s_q, s_k = symmetric_scale(q, nm.data_width), symmetric_scale(k, nm.data_width)
    q_int, k_int = quantize(q, s_q, nm.data_width), quantize(k, s_k, nm.data_width)
    factor = s_q * s_k / math.sqrt(d)
    mult, shift = golden.score_multiplier(factor, nm)
    scores = golden.scores(q_int, k_int)
    return golden.logits(scores, mult, shift, nm), scores * factor


def _probability_table(seed: int = 1) -> list[str]:
    nm = Numerics()
    rng = np.random.default_rng(seed)
    lines = ["| keys L | rows | query scale | max error (LSB) | mean error (LSB) | within 1 LSB | "
             "max error, logit floor excluded (LSB) |", "|---|---|---|---|---|---|---|"]
    lsb = 2.0 ** nm.prob_frac_bits
    for length in (16, 64, 256, 1024):
        for sharpness in (1.0, 4.0):
            t, real = _probability_rows(rng, 64, length, 64, sharpness, nm)
            got = golden.softmax_probabilities(t, nm).astype(np.float64)
            ref = np.exp(real - real.max(axis=-1, keepdims=True))
            ref = lsb * ref / ref.sum(axis=-1, keepdims=True)
            # The unit's own error: float softmax of the integer logits it was given.
            base2 = 2.0 ** ((t - t.max(axis=-1, keepdims=True)) / (1 << nm.logit_frac_bits))
            own = lsb * base2 / base2.sum(axis=-1, keepdims=True)
            err, err_own = np.abs(got - ref), np.abs(got - own)
            lines.append(f"| {length} | 64 | ×{sharpness:g} | {err.max():.2f} | {err.mean():.3f} | "
                         f"{(err <= 1).mean():.1%} | {err_own.max():.2f} |")
    return lines


def _accuracy() -> list[str]:
    return (["**Exponent approximation** (exhaustive over `f` in [0, 2^F) and `u` in [0, (P+2)·2^F); "
             "last column: real distances 0 to 8 octaves in steps of 4e-6)", ""] + _exponent_table() +
            ["", "**Normalized probabilities against float softmax** (`rne(p·r, R+e−P)` of docs/numerics.md "
             "section 6 against `2^P · softmax(S·s_q·s_k/√d)` computed in float64; Gaussian q, k, d = 64, int8; "
             "query scale ×4 gives peaked rows)", ""] + _probability_table())


def _synth_job(params, target):
    path, _ = cached_verilog("softmax", params)
    return synthesize(path, "softmax_unit", target, dsp=True)


def _area(jobs: int) -> list[str]:
    points = [(i, target) for i in range(len(AREA_POINTS)) for target in AREA_TARGETS]
    with futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        results = dict(zip(points, pool.map(_synth_job, [AREA_POINTS[i] for i, _ in points],
                                            [t for _, t in points])))
    lines = ["| lanes × slots | target | LUT | FF | carry | DSP | BRAM | LUT RAM | LUT/lane |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (i, target), a in results.items():
        p = AREA_POINTS[i]
        lines.append(f"| {p['lanes']} × {p['slots']} | {target} | {a['lut']} | {a['ff']} | {a['carry']} | "
                     f"{a['dsp']} | {a['bram']} | {a['lutram']} | {a['lut'] / p['lanes']:.0f} |")
    return lines


#: (multiplier, fifo_memory) of the Fmax table: the ECP5 primitives, as the engine builds it.  With what
#: Yosys infers (generic multipliers, flip-flop FIFOs) the 22×16 logit multipliers alone held the unit
#: at 89.8 MHz (2026-11-22), and router2 did not finish that build in 44 minutes (2026-11-30).
FMAX_CONFIGS = [("ecp5", "ecp5")]
FMAX_TIMEOUT = 45 * 60


def _fmax_unit(multiplier, fifo_memory):
    from attn_rtl.hdl.softmax import SoftmaxUnit

    return SoftmaxUnit(**DEFAULT, multiplier=multiplier, fifo_memory=fifo_memory)


def _fmax(seeds, jobs: int) -> list[str]:
    from attn_rtl.gen.flows.pnr import fmax_cells, fmax_sweep

    # router1 did not route the ECP5-primitive build in 15 minutes; router2 does in about 5.
    found = fmax_sweep(_fmax_unit, FMAX_CONFIGS, seeds, jobs=jobs, timeout=FMAX_TIMEOUT,
                       nextpnr_args=("--router", "router2"))
    lines = ["| unit | multiplier | FIFOs | Fmax per seed (MHz) | median | goal |", "|---|---|---|---|---|---|"]
    for (mul, mem), per_seed in found.items():
        shown, median = fmax_cells(per_seed, timeout=FMAX_TIMEOUT)
        lines.append(f"| softmax, {DEFAULT['lanes']} lanes × {DEFAULT['slots']} slots | {mul} | {mem} | "
                     f"{shown} | {median} | 200 |")
    return lines


def run(parts=PARTS, *, jobs: int = 2, seeds=(1, 2, 3), out: Path | None = None) -> Path:
    sections = {}
    if "accuracy" in parts:
        sections["accuracy"] = _accuracy()
    if "area" in parts:
        sections["area"] = _area(jobs)
    if "fmax" in parts:
        sections["fmax"] = _fmax(seeds, jobs)
    return write_page(out or DOCS / "softmax-benchmarks.md", _TEMPLATE, PARTS, sections)


_TEMPLATE = """# Softmax unit: measured accuracy, area and Fmax

Written by `./dev.sh bench softmax` (`gen/bench/softmax.py`) on {date} ({machine}); {versions}.
Re-run one part with `./dev.sh bench softmax --parts accuracy` (or `area`, `fmax`).
Numerics are the defaults of docs/numerics.md (F = 10, S = 5, P = 15, R = 16); the design is in docs/softmax.md.

## Accuracy

The RTL is bit-exact with `sim/softmax_stream.py` (tests/test_softmax.py, both simulators), so these
figures, computed on the model, are the hardware's. Anchors: I-BERT's integer polynomial about 1.9e-3,
a 4-segment piecewise-linear 2^x about 6.9e-3; goal: at most 1e-3 (absolute, on a result in (0.5, 1]).
Command: `./dev.sh bench softmax --parts accuracy`.

<!-- begin accuracy -->
{accuracy}
<!-- end accuracy -->

Reading the second table: rows of similar scores (query scale ×1) are within about 2 LSB of float softmax.
Peaked rows err more, from the floor in `p(u) = E(f) >> n` (numerics.md section 4): with one dominant key,
each of the other `L − 1` small probabilities loses up to one LSB, all in the same direction, so the row sum
falls short and the dominant normalized probability comes out high by up to about `L/2` LSB of `2^−P`
(numerics.md section 8 bounds it per row). Relative to 1.0 that stays below 0.3% at `L = 1024`, under half an
LSB of the int8 attention output.

## Area (Yosys 0.70 via YoWASP)

`synth_ecp5`, `synth_xilinx -flatten` (ABC at the LUT-mapping step, see gen/flows/synth.py) and `synth_ice40 -dsp`
of the whole unit: logit multipliers, maximum tree, exponent units, row-sum loop, reciprocal divider and
both output FIFOs (credit buffers in flip-flops). Command: `./dev.sh bench softmax --parts area`.

<!-- begin area -->
{area}
<!-- end area -->

## Fmax on ECP5 (LFE5U-85F, CABGA381, speed 6)

nextpnr-ecp5 (`--freq 200 --timing-allow-fail --router router2`, 45-minute limit per run), the default
unit inside `hdl/pin_wrapper.py`, one run per seed, built as the engine builds it: MULT18X18D multipliers
with their registers (`multiplier="ecp5"`) and both output FIFOs in DP16KD block RAM with output registers
(`fifo_memory="ecp5"`). With what Yosys infers instead (generic multipliers, flip-flop FIFOs) the 22×16
logit multipliers alone held the unit at 89.8 MHz (measured 2026-11-22). Goal: 200 MHz, the array's, so
that the softmax never sets the clock. The critical path of each run is in docs/softmax.md.
Command: `./dev.sh bench softmax --parts fmax`.

<!-- begin fmax -->
{fmax}
<!-- end fmax -->
"""
