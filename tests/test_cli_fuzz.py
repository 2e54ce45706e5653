"""The command line fed random and malformed inputs: one clear line and a non-zero status, never a traceback.

hypothesis draws ``.npz`` inputs (missing arrays, NaN/Inf, empty, wrong dtypes and shapes, raw bytes),
TOML configs (random text, unknown keys, values of every TOML type and absurd sizes) and absurd flag
values; :func:`attn_rtl.gen.cli.main` runs in-process, so an exception that escapes it fails the test
with its traceback.  Valid draws must succeed (status 0).
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attn_rtl.gen.cli import main
from attn_rtl.gen.config import resolve_params
from attn_rtl.gen.generate import unit

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])



def _run(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def _assert_refused(status: int, err: str, argv) -> None:
    lines = err.strip().splitlines()
    assert status == 2, f"{argv}: status {status}, stderr {err!r}"
    assert len(lines) == 1 and lines[0].startswith("attn-rtl: error: "), f"{argv}: stderr {err!r}"
    assert "Traceback" not in err


_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)
_DTYPES = st.sampled_from(["float32", "float64", "int8", "int64", "uint16", "bool", "complex64", "U3", "datetime64[s]"])


@st.composite
def _array(draw):
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=4)))
    dtype = draw(_DTYPES)
    values = np.array(draw(st.lists(_FLOATS, min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                      dtype=np.float64).reshape(shape)
    if dtype in ("U3", "datetime64[s]", "complex64", "bool"):
        return np.zeros(shape, dtype=dtype)
    if np.dtype(dtype).kind in "iu":
        return np.nan_to_num(values, nan=0, posinf=1, neginf=-1).clip(-100, 100).astype(dtype)
    return values.astype(dtype)


def _valid(arrays: dict) -> bool:
    """What the golden command accepts: q, k, v of real numbers, finite, (L, d) or (H, L, d) alike, nonempty."""
    if not all(n in arrays for n in "qkv"):
        return False
    q, k, v = (arrays[n] for n in "qkv")
    if any(x.dtype.kind not in "fiu" or x.ndim not in (2, 3) or 0 in x.shape or not np.all(np.isfinite(x))
           for x in (q, k, v)):
        return False
    return (q.ndim == k.ndim == v.ndim and q.shape[:-2] == k.shape[:-2] == v.shape[:-2]
            and q.shape[-1] == k.shape[-1] and k.shape[-2] == v.shape[-2])


@FUZZ
@given(arrays=st.dictionaries(st.sampled_from(["q", "k", "v", "o", "extra"]), _array(), max_size=5))
def test_golden_on_random_npz_inputs(arrays):
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp, "in.npz")
        np.savez(inputs, **arrays)
        argv = ["golden", "--inputs", inputs, "--output", Path(tmp, "out.npz")]
        status, _, err = _run(argv)
    if _valid(arrays):
        assert status == 0, f"{argv} on valid inputs: status {status}, stderr {err!r}"
    else:
        _assert_refused(status, err, argv)


@FUZZ
@given(data=st.binary(max_size=300))
def test_golden_on_files_that_are_not_npz(data):
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp, "in.npz")
        inputs.write_bytes(data)
        argv = ["golden", "--inputs", inputs, "--output", Path(tmp, "out.npz")]
        _assert_refused(*_run(argv)[::2], argv)


def test_golden_refuses_inputs_too_large_to_hold():
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp, "in.npz")
        q = np.zeros((9000, 1))
        np.savez(inputs, q=q, k=q, v=q)
        argv = ["golden", "--inputs", inputs, "--output", Path(tmp, "out.npz")]
        status, _, err = _run(argv)
    _assert_refused(status, err, argv)
    assert "scores" in err


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(x) for x in value) + "]"
    return str(value)


ARRAY_PARAMETERS = sorted(unit("array").defaults)
_SCALARS = st.one_of(st.integers(-(1 << 70), 1 << 70), st.integers(-2, 4), st.floats(), st.booleans(),
                     st.text(max_size=6), st.lists(st.integers(0, 3), max_size=3))


@FUZZ
@given(table=st.dictionaries(st.sampled_from([*ARRAY_PARAMETERS, "unknown_key", "rows "]), _SCALARS, max_size=4),
       under_unit=st.booleans())
def test_generate_with_random_config_files(table, under_unit):
    """A config of random keys and values that the array does not take: refused in one line.  (Configs it takes
    would generate Verilog, seconds each: tests/test_cli.py generates from config files.)"""
    try:
        unit("array").validate(**table)
        return
    except (ValueError, TypeError):
        pass
    text = ("[array]\n" if under_unit else "") + "".join(f'"{k}" = {_toml_value(v)}\n' for k, v in table.items())
    assert _generate_array_with_config(text) == 2, f"{text!r} accepted"


@FUZZ
@given(text=st.text(max_size=80))
def test_generate_with_config_files_of_random_text(text):
    """Refused in one line unless the config resolves (then ``generate`` writes Verilog, seconds each,
    as tests/test_cli.py checks)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "c.toml")
        config.write_text(text)
        try:
            resolve_params("array", config=config)
            return
        except (ValueError, TypeError):
            pass
    assert _generate_array_with_config(text) == 2, f"{text!r} accepted"


def _generate_array_with_config(text: str) -> int:
    """``generate array --config`` on a file holding ``text``: refused in one line unless it succeeds."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "c.toml")
        config.write_text(text)
        argv = ["generate", "array", "--config", config, "-o", Path(tmp, "out")]
        status, _, err = _run(argv)
    if status != 0:
        _assert_refused(status, err, argv)
    return status


_ENGINE_SIZES = [name for name, default in unit("engine").defaults.items()
                 if isinstance(default, int) and not isinstance(default, bool)]


@pytest.mark.parametrize("value", [-1, 10 ** 12])
@pytest.mark.parametrize("name", _ENGINE_SIZES)
def test_absurd_engine_sizes_are_refused(name, value, tmp_path):
    argv = ["generate", "engine", f"--{name.replace('_', '-')}", value, "-o", tmp_path / "out"]
    _assert_refused(*_run(argv)[::2], argv)


@pytest.mark.parametrize("argv", [
    ["sim", "array", "--rows", "2", "--cols", "2", "--seed", "-1"],
    ["sim", "array", "--rows", "2", "--idle", "nan"],
    ["sim", "array", "--rows", "2", "--stall", "inf"],
    ["sim", "engine", "--seq-len", "0"],
    ["sim", "engine", "--head-dim", "100000"],
    ["explore", "--workload", "nonsense", "--target", "ecp5-85f"],
    ["generate", "engine", "--preset", "no-such-preset", "-o", "out"],
    ["generate", "engine", "--config", "/no/such/file.toml", "-o", "out"],
    ["golden", "--inputs", "in.npz", "--output", "o.npz", "--key-tile", "-3"],
    ["golden", "--inputs", "in.npz", "--output", "o.npz", "--scale", "nan"],
])
def test_absurd_command_lines_are_refused(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.savez("in.npz", q=np.ones((3, 2)), k=np.ones((3, 2)), v=np.ones((3, 2)))
    _assert_refused(*_run(argv)[::2], argv)
