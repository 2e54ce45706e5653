"""File I/O around the golden model: read float q, k, v from ``.npz``, report errors against float."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .decoder import check_decoder_shapes
from .golden import AttentionResult, attention_float, check_qkv_shapes

__all__ = ["load_qkv", "error_figures", "MAX_SCORES"]

#: The golden model holds every score of a run at once (int64 and float64 arrays): inputs needing more
#: than this many (heads x queries x keys) are refused rather than left to exhaust memory.
MAX_SCORES = 1 << 26


def load_qkv(path, *, decoder: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float arrays ``q, k, v`` of shape (L, d) or (H, L, d) from an ``.npz`` file, checked; with
    ``decoder``, ``q (heads, q_len, d)`` and ``k, v (kv_heads, kv_len, d)`` (docs/numerics.md, section 10),
    (L, d) arrays taken as one head."""
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError(f"inputs {path} is a single array, not an .npz archive of q, k and v")
        with loaded:
            arrays = {name: loaded[name] for name in loaded.files}
    except FileNotFoundError:
        raise ValueError(f"inputs {path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"inputs {path} is a directory, not an .npz file") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise ValueError(f"inputs {path} is not a readable .npz file ({type(e).__name__}: {e})") from None
    except ValueError as e:
        if str(e).startswith(f"inputs {path}"):
            raise
        raise ValueError(f"inputs {path} is not a readable .npz file ({e})") from None
    missing = [n for n in ("q", "k", "v") if n not in arrays]
    if missing:
        raise ValueError(f"inputs {path} has no array {missing[0]!r} (found: {', '.join(sorted(arrays)) or 'none'})")
    q, k, v = (arrays[n] for n in ("q", "k", "v"))
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.dtype.kind not in "fiu":
            raise ValueError(f"{name} in {path} must hold real numbers (float or int), not dtype {x.dtype}")
    if decoder:
        q, k, v = (x[None] if x.ndim == 2 else x for x in (q, k, v))
        try:
            check_decoder_shapes(q, k, v)
        except ValueError as e:
            raise ValueError(f"inputs {path}: {e}") from None
    else:
        check_qkv_shapes(q, k, v)
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} in {path} holds a non-finite value (inf or nan)")
    heads = max(q.shape[0] if q.ndim == 3 else 1, k.shape[0] if k.ndim == 3 else 1)
    scores = heads * q.shape[-2] * k.shape[-2]
    if scores > MAX_SCORES:
        raise ValueError(f"inputs {path} need {scores} scores (heads x queries x keys), more than the golden "
                         f"model holds in memory ({MAX_SCORES})")
    return (q.astype(np.float64), k.astype(np.float64), v.astype(np.float64))


def error_figures(result: AttentionResult, q, k, v, scale: float, mask=None, *, reference=None) -> dict:
    """Errors of the integer result against float attention.

    ``*_quantized`` compare with float attention on the dequantized integer
    inputs (what the contract promises: within 1 output LSB); the others with
    float attention on the original inputs (what the user sees, quantization
    of q, k, v included).  ``mask`` is the sparse pattern's, as given to the golden model;
    ``reference(q, k, v)``, if given, is the float attention instead (decoder attention: K and V per K/V
    head in ``q, k, v``, per query head in the result).
    """
    s = result.scales
    lsb = s["o"]
    if reference is None:
        def reference(q_, k_, v_):
            return attention_float(q_, k_, v_, scale, mask=mask)
    on_quantized = reference(result.q_int * s["q"], result.k_int * s["k"], result.v_int * s["v"])
    on_inputs = reference(q, k, v)
    err_q = np.abs(result.o - on_quantized) / lsb
    err = np.abs(result.o - on_inputs)
    return {
        "shape": list(result.o.shape),
        "scale": scale,
        "scales": {k_: float(v_) for k_, v_ in s.items()},
        "multiplier": result.multiplier,
        "shift": result.shift,
        "max_abs_error_lsb_quantized": float(err_q.max()),
        "fraction_within_1_lsb_quantized": float((err_q <= 1.0).mean()),
        "max_abs_error": float(err.max()),
        "mean_abs_error": float(err.mean()),
        "max_abs_error_lsb": float(err.max() / lsb),
        "rms_error": float(np.sqrt((err ** 2).mean())),
    }
