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
    # score_width = 2w + ceil(log2 d): the exact Q·Kᵀ accumulator of the matching array.
    "softmax": {
        "tiny": {"lanes": 2, "slots": 2, "score_width": 20, "max_seq_len": 256},
        "default": {"lanes": 8, "slots": 8, "score_width": 22, "max_seq_len": 1024},
        "large": {"lanes": 16, "slots": 16, "score_width": 23, "max_seq_len": 4096},
    },
    "engine": {
        "tiny": {"rows": 2, "cols": 2, "max_seq_len": 256, "max_head_dim": 32, "max_heads": 4},
        "default": {"rows": 8, "cols": 8, "max_seq_len": 1024, "max_head_dim": 128, "max_heads": 16},
        "large": {"rows": 16, "cols": 16, "max_seq_len": 4096, "max_head_dim": 128, "max_heads": 16},
        # Sparse patterns (docs/sparse.md): the default engine plus the scheduler's pattern logic.
        "sparse": {"rows": 8, "cols": 8, "max_seq_len": 4096, "max_head_dim": 128, "max_heads": 16,
                   "sparse": True},
        # SpAtten (docs/engine.md): importance runs for cascade pruning, row flags for progressive quantization.
        "spatten": {"rows": 8, "cols": 8, "max_seq_len": 1024, "max_head_dim": 128, "max_heads": 16,
                    "importance": True, "row_flags": True},
    },
    "scheduler": {
        "default": {"rows": 8, "cols": 8, "max_seq_len": 4096, "max_heads": 16},
    },
    "topk": {
        "tiny": {"lanes": 4, "value_width": 16, "max_n": 256, "max_k": 32},
        "default": {"lanes": 16, "value_width": 16, "max_n": 1024, "max_k": 128},
        "large": {"lanes": 16, "value_width": 24, "max_n": 4096, "max_k": 512},
    },
}

DESCRIPTIONS = {
    ("array", "tiny"): "2x2 int8, fits the smallest FPGAs",
    ("array", "default"): "8x8 int8 Q·Kᵀ array, reductions up to 64",
    ("array", "large"): "16x16 int8, reductions up to 128",
    ("array", "pv"): "8x8 unsigned 16-bit probability x int8 value (P·V)",
    ("softmax", "tiny"): "2 lanes for the tiny array, rows up to 256 keys",
    ("softmax", "default"): "8 lanes x 8 rows, after the default array (d up to 64), L up to 1024",
    ("softmax", "large"): "16 lanes x 16 rows, after the large array (d up to 128), L up to 4096",
    ("engine", "tiny"): "2x2 array, L up to 256, d up to 32, 4 heads",
    ("engine", "default"): "8x8 array, L up to 1024, d up to 128, 16 heads",
    ("engine", "large"): "16x16 array, L up to 4096, d up to 128, 16 heads",
    ("engine", "sparse"): "8x8 array, L up to 4096 (Longformer), window/dilated/grid patterns, 4 global tokens",
    ("engine", "spatten"): "default engine plus token/head importance and progressive-quantization row flags",
    ("scheduler", "default"): "8x8 tiles, L up to 4096, every pattern, 4 global tokens",
    ("topk", "tiny"): "4 values per cycle, n up to 256, k up to 32",
    ("topk", "default"): "16 values per cycle, n up to 1024, k up to 128 (SpAtten's setting)",
    ("topk", "large"): "16 values per cycle, 24-bit values, n up to 4096, k up to 512",
}
