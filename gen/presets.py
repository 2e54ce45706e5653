"""Named parameter sets per unit, kept as data (never as code paths)."""

from __future__ import annotations

PRESETS: dict[str, dict[str, dict]] = {
    "array": {
        "tiny": {"rows": 2, "cols": 2, "a_width": 8, "b_width": 8, "max_reduction": 16},
        "default": {"rows": 8, "cols": 8, "a_width": 8, "b_width": 8, "max_reduction": 64},
        "large": {"rows": 16, "cols": 16, "a_width": 8, "b_width": 8, "max_reduction": 128},
        # P·V: unsigned probability (numerics.md: P + 1 = 16 bits) times signed value.
        "pv": {"rows": 8, "cols": 8, "a_width": 16, "a_signed": False, "b_width": 8, "max_reduction": 64},
    },
}

DESCRIPTIONS = {
    ("array", "tiny"): "2x2 int8, fits the smallest FPGAs",
    ("array", "default"): "8x8 int8 Q·Kᵀ array, reductions up to 64",
    ("array", "large"): "16x16 int8, reductions up to 128",
    ("array", "pv"): "8x8 unsigned 16-bit probability x int8 value (P·V)",
}
