"""The numerics contract of docs/numerics.md that hardware and golden models share.

The number formats (:class:`Numerics`), the constants of the contract and the width helper they use
live here so that ``attn_rtl.hdl`` and ``attn_rtl.sim`` both import them and neither imports the
other: the golden model is never derived from the design it checks.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .params import int_in_range as _check_int
from .params import reject_unknown

__all__ = ["Numerics", "RESCALE_EXP_MAX", "clog2"]

#: The exponent of a rescale factor saturates here: ``P + 63`` bits is past the width of every
#: operand it scales (section 7), so the floor gives 0 or -1 either way (section 0).
RESCALE_EXP_MAX = 63


def clog2(n: int) -> int:
    """Smallest ``b`` with ``2**b >= n`` (``clog2(1) == 0``)."""
    if n < 1:
        raise ValueError(f"clog2 needs a positive integer, not {n}")
    return (int(n) - 1).bit_length()


@dataclass(frozen=True)
class Numerics:
    """The elaboration-time number formats of docs/numerics.md.

    Parameters
    ----------
    data_width : int
        Width of the signed Q, K, V and O integers (section 1).
    logit_frac_bits : int
        ``F``: fraction bits of the base-2 logit ``t`` (section 3).
    logit_width : int
        ``T``: total width of the saturated signed logit register.
    exp_segments_log2 : int
        ``S``: ``2**S`` linear segments interpolate ``2**-x`` on ``[0, 1)`` (section 4).
    prob_frac_bits : int
        ``P``: fraction bits of the unnormalized probabilities, row sum and
        rescale factors; a probability is ``P + 1`` bits wide, 1.0 included.
    mult_width : int
        Width of the unsigned score multiplier ``M`` (section 3).
    max_shift : int
        Largest score shift ``s`` (the hardware register is ``clog2(max_shift + 1)`` bits).
    recip_bits : int
        ``R``: precision of the normalized reciprocal (section 6).
    """

    data_width: int = 8
    logit_frac_bits: int = 10
    logit_width: int = 32
    exp_segments_log2: int = 5
    prob_frac_bits: int = 15
    mult_width: int = 16
    max_shift: int = 63
    recip_bits: int = 16

    def __post_init__(self):
        _check_int("data_width", self.data_width, 2, 16)
        _check_int("logit_frac_bits", self.logit_frac_bits, 1, 16)
        _check_int("logit_width", self.logit_width, self.logit_frac_bits + 2, 48)
        _check_int("exp_segments_log2", self.exp_segments_log2, 0, self.logit_frac_bits)
        _check_int("prob_frac_bits", self.prob_frac_bits, 4, 24)
        _check_int("mult_width", self.mult_width, 2, 24)
        _check_int("max_shift", self.max_shift, 0, 63)
        _check_int("recip_bits", self.recip_bits, 2, 30)

    @classmethod
    def coerce(cls, value) -> "Numerics":
        """A parameter's ``numerics`` value: ``None`` (defaults), a table of fields, or a Numerics."""
        if value is None:
            return cls()
        if isinstance(value, dict):
            return cls.from_dict(value)
        if isinstance(value, cls):
            return value
        raise ValueError(f"numerics must be a table of number formats, not {value!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "Numerics":
        reject_unknown("numerics", values, [f.name for f in fields(cls)])
        return cls(**values)

    # Derived widths (section 7 of numerics.md lists them all).
    @property
    def prob_width(self) -> int:
        return self.prob_frac_bits + 1

    def score_width(self, head_dim: int) -> int:
        """Signed width that holds any ``sum_k q[k]*k[k]`` over ``head_dim`` terms."""
        return 2 * self.data_width + clog2(head_dim)

    def row_sum_width(self, seq_len: int) -> int:
        return self.prob_width + clog2(seq_len)

    def out_acc_width(self, seq_len: int) -> int:
        return self.prob_width + self.data_width + clog2(seq_len)

    def widths(self, seq_len: int, head_dim: int) -> dict:
        return {
            "score": self.score_width(head_dim),
            "logit": self.logit_width,
            "probability": self.prob_width,
            "row_sum": self.row_sum_width(seq_len),
            "output_accumulator": self.out_acc_width(seq_len),
            "reciprocal": self.recip_bits + 1,
            "output": self.data_width,
        }
