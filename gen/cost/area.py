"""Area of the engine per FPGA family, fitted to synthesized sweep results.

Each resource (LUT, FF, DSP, block RAM) is a least-squares linear function of five features of a
configuration: a constant, ``rows`` (the accumulator and the Q banks' width), ``cols`` (the softmax
lanes), the PE count ``rows·cols`` and the on-chip buffer bits in kilobits. A family with fewer
sweep points than twice the features (iCE40: no engine fits a UP5K, so it has two) is fitted as one
scale per resource on the reference family's prediction. The fit and the data it came from
live in ``gen/cost/area_fit.json``, written by ``./dev.sh bench cost --parts area`` from the sweeps in
``gen/flows/sweeps/`` (Yosys, per target); docs/cost-model.md shows the residuals.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["FIT_FILE", "GLOBAL_ROW_ENGINE_SIDE", "GLOBAL_ROW_POINTS", "RESOURCES", "SLIDING_POINTS", "features", "fit",
           "global_row_extra", "load_fit", "predict_area", "sliding_extra"]

FIT_FILE = Path(__file__).with_name("area_fit.json")
RESOURCES = ("lut", "ff", "dsp", "bram")
FEATURES = ("one", "rows", "cols", "pes", "memory_kbit")
REFERENCE = "ecp5"


def features(rows, cols, memory_bits) -> np.ndarray:
    rows, cols = np.asarray(rows, np.float64), np.asarray(cols, np.float64)
    return np.stack(np.broadcast_arrays(np.ones_like(rows), rows, cols, rows * cols,
                                        np.asarray(memory_bits, np.float64) / 1024), axis=-1)


def fit(points: list[dict]) -> dict:
    """Coefficients per family and resource from ``points`` (``family``, ``rows``, ``cols``,
    ``memory_bits`` and the resources), with the largest relative error on those points."""
    out = {}
    families = sorted({p["family"] for p in points}, key=lambda f: f != REFERENCE)
    for family in families:
        mine = [p for p in points if p["family"] == family]
        x = features([p["rows"] for p in mine], [p["cols"] for p in mine], [p["memory_bits"] for p in mine])
        fam = {"points": len(mine), "coefficients": {}, "max_relative_error": {}}
        scaled = len(mine) < 2 * len(FEATURES) and family != REFERENCE and REFERENCE in out
        if scaled:
            fam["scaled_from"] = REFERENCE
        for resource in RESOURCES:
            y = np.array([p[resource] for p in mine], np.float64)
            if scaled:
                base = x @ np.array([out[REFERENCE]["coefficients"][resource][f] for f in FEATURES])
                scale = float(base @ y / max(base @ base, 1e-9))
                coef = scale * np.array([out[REFERENCE]["coefficients"][resource][f] for f in FEATURES])
            else:
                coef, *_ = np.linalg.lstsq(x, y, rcond=None)
            pred = x @ coef
            fam["coefficients"][resource] = dict(zip(FEATURES, map(float, coef)))
            big = y > 0
            fam["max_relative_error"][resource] = float(np.max(np.abs(pred[big] / y[big] - 1))) if big.any() else 0.0
        out[family] = fam
    return out


def load_fit(path: Path = FIT_FILE) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run ./dev.sh bench cost --parts area to fit the area model")
    return json.loads(path.read_text())["fit"]


def predict_area(family: str, rows, cols, memory_bits, *, fitted: dict | None = None) -> dict[str, np.ndarray]:
    """Predicted LUT, FF, DSP and block RAM per candidate on ``family`` (ecp5, ice40, xilinx7)."""
    fitted = load_fit() if fitted is None else fitted
    if family not in fitted:
        raise ValueError(f"no area fit for {family}: the fit covers {', '.join(sorted(fitted))}")
    x = features(rows, cols, memory_bits)
    coefficients = fitted[family]["coefficients"]
    # Whole cells: a fit that lands at 156.0000000000002 DSPs must not miss a 156-DSP part.
    return {r: np.maximum(0.0, np.rint(x @ np.array([coefficients[r][f] for f in FEATURES]))) for r in RESOURCES}


#: A sliding build against the same sparse engine without it (Yosys, ECP5, ECP5 multipliers and block-RAM
#: FIFOs, engine defaults otherwise): ``(rows, cols)`` to each resource with and without the mode.
#: Reproduce: ``cached_verilog("engine", params)`` then ``attn_rtl.gen.flows.synth.synthesize`` (docs/sparse.md).
SLIDING_POINTS = {
    (4, 4): {"without": {"lut": 11093, "ff": 18832, "dsp": 46, "bram": 27},
             "with": {"lut": 13930, "ff": 21523, "dsp": 50, "bram": 27}},
    (8, 8): {"without": {"lut": 22192, "ff": 40442, "dsp": 118, "bram": 50},
             "with": {"lut": 29877, "ff": 48057, "dsp": 126, "bram": 50}},
}


def _line(extras: dict, size, measure) -> dict[str, np.ndarray]:
    """Per resource, the line through the smallest and the largest of ``extras`` (``{shape: {resource:
    cells}}``) against ``measure(shape)``, at ``size`` (whole cells, never negative)."""
    ordered = sorted(extras.items(), key=lambda item: measure(item[0]))
    (small, a), (large, b) = ordered[0], ordered[-1]
    span = measure(large) - measure(small)
    size = np.asarray(size, np.float64)
    return {r: np.maximum(0.0, np.rint(a[r] + ((b[r] - a[r]) / span if span else 0.0) * (size - measure(small))))
            for r in RESOURCES}


def sliding_extra(rows, cols) -> dict[str, np.ndarray]:
    """What a sliding build adds per candidate: per resource a constant (the diagonal scheduler) and a cost
    per PE (the array's diagonal lanes, held weights and global column) through :data:`SLIDING_POINTS`.
    Measured on ECP5; other families take the same figures."""
    extras = {shape: {r: point["with"][r] - point["without"][r] for r in RESOURCES}
              for shape, point in SLIDING_POINTS.items()}
    return _line(extras, np.asarray(rows, np.float64) * np.asarray(cols, np.float64), lambda s: s[0] * s[1])


#: The global PE row alone (``GlobalRow`` at the engine's parameters of each shape; Yosys, ECP5, ECP5
#: multipliers and block-RAM FIFOs): it grows with its ``rows + 1`` lanes (multipliers, softmax lanes).
#: Reproduce: ``cached_verilog("global_row", params)`` with the engine's (``AttentionEngine._global_row``), then
#: ``attn_rtl.gen.flows.synth.synthesize``.
GLOBAL_ROW_POINTS = {
    (4, 4): {"lut": 3797, "ff": 6444, "dsp": 13, "bram": 5},
    (8, 8): {"lut": 4468, "ff": 7574, "dsp": 17, "bram": 5},
}
#: What the engine adds around the row (its Q load, the tiles' gates, the O arbitration): the 4×4 sliding
#: engine with the row, less the one without it and the row alone.
GLOBAL_ROW_ENGINE_SIDE = {"lut": 17833 - 13876 - 3797, "ff": 28068 - 21535 - 6444, "dsp": 63 - 50 - 13,
                          "bram": 32 - 27 - 5}


def global_row_extra(rows, cols) -> dict[str, np.ndarray]:
    """What the global PE row (``global_row = true``) adds to a sliding build per candidate: the row
    through :data:`GLOBAL_ROW_POINTS`, linear in ``rows``, and :data:`GLOBAL_ROW_ENGINE_SIDE`.  Measured
    on ECP5; other families take the same figures."""
    row = _line(GLOBAL_ROW_POINTS, np.broadcast_to(np.asarray(rows, np.float64), np.shape(cols)), lambda s: s[0])
    return {r: row[r] + GLOBAL_ROW_ENGINE_SIDE[r] for r in RESOURCES}
