"""Up-front validation of elaboration parameters.

Every check raises ``ValueError`` with one line that names the parameter and
repeats the bad value, in the style of ``amaranth.lib``: the CLI prints that
line as it is.
"""

from __future__ import annotations

__all__ = ["positive_int", "int_in_range", "boolean", "reject_unknown"]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(name: str, value, at_most: int | None = None) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    if at_most is not None and value > at_most:
        raise ValueError(f"{name} must be at most {at_most}, not {value!r}")
    return value


def int_in_range(name: str, value, lo: int, hi: int) -> int:
    if not _is_int(value) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer from {lo} to {hi}, not {value!r}")
    return value


def boolean(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value


def reject_unknown(what: str, given, allowed) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} parameter {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
