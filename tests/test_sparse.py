"""Sparse patterns: the golden rules (sim/sparse.py) and the scheduler RTL (cocotb, Icarus and Verilator)."""

import numpy as np
import pytest

from attn_rtl.gen.simulate import simulate_scheduler
from attn_rtl.hdl.sparse_scheduler import scheduler_params
from attn_rtl.sim.engine_stream import engine_output
from attn_rtl.sim.golden import Numerics
from attn_rtl.sim.sparse import SparsePattern, allowed_mask, parse_pattern, scheduled_tiles, walk_range
from attn_rtl.tb.test_sparse_scheduler import walk_cycles


def brute_force_mask(pattern: SparsePattern, n: int) -> np.ndarray:
    """The rules of docs/sparse.md pair by pair, written independently of the vectorized model."""
    out = np.zeros((n, n), bool)
    for i in range(n):
        for j in range(n):
            if pattern.kind == "dense":
                ok = True
            elif pattern.kind == "causal":
                ok = j <= i
            elif pattern.kind == "causal-window":
                ok = i - pattern.window < j <= i
            elif pattern.kind == "window":
                ok = 2 * abs(i - j) <= pattern.window
            elif pattern.kind == "dilated":
                ok = (i - j) % pattern.dilation == 0 and 2 * abs(i - j) <= pattern.dilation * pattern.window
            else:
                (_, w), (kh, kw) = pattern.grid, pattern.window2d
                ok = 2 * abs(i // w - j // w) <= kh and 2 * abs(i % w - j % w) <= kw
            out[i, j] = ok or i in pattern.global_tokens or j in pattern.global_tokens
    return out


PATTERNS = [
    ("window", dict(window=5), 23),
    ("window", dict(window=4, global_tokens="0,11,22"), 23),
    ("dilated", dict(window=4, dilation=3), 29),
    ("dilated", dict(window=7, dilation=2, global_tokens="13"), 29),
    ("grid", dict(grid="5x7", window2d="3x3"), 35),
    ("grid", dict(grid="6x4", window2d="5x1", global_tokens="23"), 24),
    ("dense", dict(global_tokens="3"), 9),
    ("causal", {}, 19),
    ("causal-window", dict(window=4), 21),
    ("causal-window", dict(window=40), 13),
]

#: Decoder runs: (pattern, options, seq_len (keys), query_len, group).
DECODER_RUNS = [
    ("causal", {}, 37, 1, 8),          # grouped decode
    ("causal", {}, 29, 5, 3),          # speculative decoding, odd group
    ("causal-window", dict(window=6), 33, 4, 2),
    ("causal-window", dict(window=1), 9, 9, 5),
    ("causal", {}, 1, 1, 1),
    ("dense", {}, 17, 2, 4),           # a decode step needs no mask: dense takes grouped queries too
]


@pytest.mark.parametrize("kind, options, n", PATTERNS)
def test_mask_follows_the_rules_pair_by_pair(kind, options, n):
    pattern = parse_pattern(kind, **options)
    np.testing.assert_array_equal(allowed_mask(pattern, n), brute_force_mask(pattern, n))


@pytest.mark.parametrize("kind, options", [("window", {}), ("dilated", dict(dilation=3))])
def test_window_at_least_twice_the_sequence_is_dense(kind, options):
    for n in (1, 7, 16):
        for w in (2 * n, 2 * n + 1, 5 * n):
            pattern = parse_pattern(kind, window=w, **options)
            if kind == "dilated":  # only pairs a multiple of the dilation apart take part
                i = np.arange(n)
                np.testing.assert_array_equal(allowed_mask(pattern, n), (i[:, None] - i[None, :]) % 3 == 0)
            else:
                assert allowed_mask(pattern, n).all()


def test_every_query_attends_itself_and_globals_attend_everything():
    for kind, options, n in PATTERNS:
        mask = allowed_mask(parse_pattern(kind, **options), n)
        assert mask.diagonal().all()
        for g in parse_pattern(kind, **options).global_tokens:
            assert mask[g].all() and mask[:, g].all()


@pytest.mark.parametrize("kind, options, n", PATTERNS)
@pytest.mark.parametrize("rows, cols", [(4, 3), (3, 4), (1, 1), (8, 8)])
def test_gathered_tiles_hold_exactly_the_keys_with_an_allowed_pair(kind, options, n, rows, cols):
    """Every key a block attends appears once in its tiles, no other key does, and the tile masks
    are the allowed pairs (padding rows and lanes past count masked)."""
    pattern = parse_pattern(kind, **options)
    mask = allowed_mask(pattern, n)
    s = scheduled_tiles(pattern, n, rows, cols)
    assert ((s.count >= 1) & (s.count <= cols)).all()
    assert (s.count[~s.last] == cols).all()          # only a block's last tile is partial
    seen_blocks = []
    for block, keys in s.blocks():
        queries = mask[block * rows:(block + 1) * rows]
        np.testing.assert_array_equal(np.sort(keys), np.flatnonzero(queries.any(axis=0)))
        seen_blocks.append(block)
    assert seen_blocks == list(range(-(-n // rows)))
    lanes = np.arange(cols)[None, :] < s.count[:, None]
    assert (s.keys[~lanes] == 0).all()
    padded = np.zeros((len(seen_blocks) * rows, n), bool)
    padded[:n] = mask
    for i in range(len(s)):
        expected = np.zeros((rows, cols), bool)
        expected[:, :s.count[i]] = padded[s.block[i] * rows:(s.block[i] + 1) * rows][:, s.keys[i, :s.count[i]]]
        np.testing.assert_array_equal(s.mask[i], expected)


@pytest.mark.parametrize("kind, options, n", PATTERNS)
def test_walk_range_reaches_every_allowed_key_but_globals(kind, options, n):
    pattern = parse_pattern(kind, **options)
    mask = allowed_mask(pattern, n)
    reachable = mask.copy()
    reachable[:, list(pattern.global_tokens)] = False
    for b in range(-(-n // 4)):
        lo, hi = walk_range(pattern, n, 4, b)
        keys = np.flatnonzero(reachable[4 * b:4 * b + 4].any(axis=0))
        assert lo <= keys.min() and keys.max() < hi


def brute_force_decoder_mask(pattern: SparsePattern, seq_len: int, query_len: int, group: int) -> np.ndarray:
    """Stacked rows pair by pair: row ``x`` is head ``x % group`` of query ``x // group``, at position
    ``seq_len - query_len + x // group``."""
    out = np.zeros((query_len * group, seq_len), bool)
    for x in range(query_len * group):
        p = seq_len - query_len + x // group
        for j in range(seq_len):
            out[x, j] = (pattern.kind == "dense" or (j <= p and (pattern.kind == "causal" or j > p - pattern.window)))
    return out


@pytest.mark.parametrize("kind, options, n, query_len, group", DECODER_RUNS)
@pytest.mark.parametrize("rows, cols", [(4, 3), (8, 8), (1, 1), (3, 5)])
def test_decoder_tiles_hold_exactly_the_allowed_keys_of_the_stacked_queries(kind, options, n, query_len, group,
                                                                              rows, cols):
    pattern = parse_pattern(kind, **options)
    mask = allowed_mask(pattern, n, query_len=query_len, group=group)
    np.testing.assert_array_equal(mask, brute_force_decoder_mask(pattern, n, query_len, group))
    s = scheduled_tiles(pattern, n, rows, cols, query_len=query_len, group=group)
    assert (s.count[~s.last] == cols).all()
    blocks = []
    for block, keys in s.blocks():
        np.testing.assert_array_equal(keys, np.flatnonzero(mask[block * rows:(block + 1) * rows].any(axis=0)))
        blocks.append(block)
    assert blocks == list(range(-(-query_len * group // rows)))
    if kind == "causal":   # tiles from key 0: those of the contract's key_tile = cols
        assert (s.keys[s.first, 0] == 0).all()


@pytest.mark.parametrize("options, message", [
    (dict(query_len=4, group=1), "the window pattern takes one query per key"),
    (dict(query_len=9, group=2), "no grouped heads"),
])
def test_only_dense_and_causal_patterns_take_decoder_shapes(options, message):
    with pytest.raises(ValueError, match=message):
        allowed_mask(parse_pattern("window", window=3), 9, **options)


def test_decoder_shapes_are_checked():
    with pytest.raises(ValueError, match="query_len must be at most seq_len"):
        allowed_mask(parse_pattern("causal"), 9, query_len=10)
    with pytest.raises(ValueError, match="group must be a positive integer, not 0"):
        allowed_mask(parse_pattern("causal"), 9, group=0)
    with pytest.raises(ValueError, match="global tokens do not apply to the causal pattern"):
        parse_pattern("causal", global_tokens="0")
    with pytest.raises(ValueError, match="the causal-window pattern needs window"):
        parse_pattern("causal-window")


def test_gathered_golden_equals_the_contiguous_one_when_the_tiles_are_the_same():
    """For the dense pattern the gathered tiles are the contiguous ones: both golden paths agree."""
    rng = np.random.default_rng(3)
    nm = Numerics()
    q, k, v = (rng.integers(-128, 128, size=(2, 11, 5)) for _ in range(3))
    schedule = scheduled_tiles(parse_pattern("dense"), 11, 4, 3)
    np.testing.assert_array_equal(engine_output(q, k, v, 40000, 20, nm, 3),
                                  engine_output(q, k, v, 40000, 20, nm, 3, schedule=schedule, rows=4))


def test_schedule_stream_flags():
    s = scheduled_tiles(parse_pattern("window", window=4), 10, 4, 3, heads=2)
    assert list(s.block[:4]) == [0, 0, 1, 1]
    assert s.first.sum() == s.last.sum() == 2 * 3 and s.run_end.sum() == 1 and s.run_end[-1]
    assert s.mask.shape == (len(s), 4, 3)


@pytest.mark.parametrize("options, message", [
    (dict(pattern="window"), "needs window"),
    (dict(pattern="dense", window=3), "window does not apply"),
    (dict(pattern="grid", grid="3x3"), "needs window2d"),
    (dict(pattern="grid", grid="3", window2d="3x3"), "grid must look like"),
    (dict(pattern="dilated", window=3, dilation=0), "dilation must be a positive integer, not 0"),
    (dict(pattern="window", window=0), "window must be a positive integer, not 0"),
    (dict(pattern="dense", global_tokens="1,1"), "global token 1 is listed twice"),
    (dict(pattern="dense", global_tokens="1,a"), "comma-separated"),
    (dict(pattern="sliding"), "pattern must be one of"),
])
def test_bad_patterns_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        parse_pattern(**options)


def test_pattern_must_fit_the_sequence():
    with pytest.raises(ValueError, match="grid 4x4 holds 16 tokens, not the sequence length 15"):
        allowed_mask(parse_pattern("grid", grid="4x4", window2d="3x3"), 15)
    with pytest.raises(ValueError, match="global token 15 is outside the sequence"):
        allowed_mask(parse_pattern("dense", global_tokens="15"), 15)


@pytest.mark.parametrize("params, message", [
    (dict(rows=0), "rows must be a positive integer, not 0"),
    (dict(max_globals=65), "max_globals must be at most 64"),
    (dict(lanes=4), "unknown scheduler parameter 'lanes'"),
])
def test_bad_scheduler_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        scheduler_params(**params)


def _runs(max_seq_len: int):
    P = lambda *a, **k: parse_pattern(*a, **k).to_dict()  # noqa: E731
    runs = [
        dict(pattern=P("window", window=5), seq_len=23, heads=1),                       # L not a tile multiple
        dict(pattern=P("window", window=3 * max_seq_len), seq_len=13, heads=2),           # wider than L
        dict(pattern=P("dilated", window=4, dilation=3, global_tokens="0,12,28"), seq_len=29, heads=1),
        dict(pattern=P("dilated", window=6, dilation=2), seq_len=17, heads=1),
        dict(pattern=P("grid", grid="5x7", window2d="3x3", global_tokens="17"), seq_len=35, heads=1),
        dict(pattern=P("grid", grid="7x5", window2d="5x1"), seq_len=35, heads=1),
        dict(pattern=P("dense"), seq_len=7, heads=2),
        dict(pattern=P("dense"), seq_len=1, heads=1),
        dict(pattern=P("window", window=2, global_tokens="0,30"), seq_len=31, heads=1),  # globals at both ends
        dict(pattern=P("causal"), seq_len=23, heads=2),                                   # prefill
        dict(pattern=P("causal"), seq_len=37, query_len=1, group=3, heads=1),             # grouped decode
        dict(pattern=P("causal-window", window=5), seq_len=29, heads=1),
        dict(pattern=P("causal-window", window=7), seq_len=30, query_len=3, group=2, heads=2),  # speculative
        dict(pattern=P("causal"), seq_len=1, query_len=1, group=2, heads=1),              # kv_len 1
        dict(pattern=P("causal-window", window=1), seq_len=max_seq_len, query_len=5, group=3, heads=1),
        dict(pattern=P("dense"), seq_len=19, query_len=2, group=3, heads=1),               # dense decode
    ]
    bad = [  # out-of-range registers raise error and do not start
        dict(pattern=P("dense"), seq_len=max_seq_len + 1, heads=1, expect_error=True),
        dict(pattern=P("window", window=3), seq_len=9, heads=1, expect_error=True, registers=dict(window=0)),
        dict(pattern=P("grid", grid="4x4", window2d="3x3"), seq_len=15, heads=1, expect_error=True),
        dict(pattern=P("dense", global_tokens="9"), seq_len=9, heads=1, expect_error=True),
        dict(pattern=P("dilated", window=3, dilation=2), seq_len=9, heads=1, expect_error=True,
             registers=dict(dilation=9)),
        dict(pattern=P("causal"), seq_len=9, heads=1, expect_error=True, registers=dict(group=4)),
        dict(pattern=P("causal"), seq_len=9, heads=1, expect_error=True, registers=dict(query_len=10)),
        dict(pattern=P("causal-window", window=2), seq_len=9, heads=1, expect_error=True, registers=dict(window=0)),
        dict(pattern=P("causal"), seq_len=9, heads=1, expect_error=True, registers=dict(global_count=1)),
        dict(pattern=P("window", window=3), seq_len=9, heads=1, expect_error=True, registers=dict(group=2)),
        dict(pattern=P("window", window=3), seq_len=9, heads=1, expect_error=True, registers=dict(query_len=4)),
        dict(pattern=P("dense"), seq_len=9, heads=1, expect_error=True, registers=dict(pattern=6)),  # no such code
        dict(pattern=P("window", window=3), seq_len=9, heads=1, expect_error=True, registers=dict(pattern=7)),
    ]
    return runs[:3] + bad + runs[3:]


SHAPES = [(4, 3), (3, 4), (1, 1), (8, 8)]


def _cases():
    cases = [pytest.param("icarus", r, c, id=f"icarus-{r}x{c}") for r, c in SHAPES]
    return cases + [pytest.param("verilator", r, c, id=f"verilator-{r}x{c}", marks=pytest.mark.slow if r == 8 else ())
                    for r, c in [(3, 4), (8, 8)]]


@pytest.mark.parametrize("sim, rows, cols", _cases())
def test_scheduler_matches_the_golden_schedule_under_backpressure(sim, rows, cols):
    params = dict(rows=rows, cols=cols, max_seq_len=64, max_heads=3, max_dilation=8, max_globals=3)
    report = simulate_scheduler(params, _runs(64), sim=sim, seed=rows * 7 + cols, stall=0.3, reset_mid=True)
    assert report["passed"] and report["elements"] > 0


def test_scheduler_walks_one_key_per_cycle():
    """With no backpressure the walk takes one cycle per key of each block's walk range, plus three
    set-up cycles and one per global token per block."""
    params = dict(rows=4, cols=4, max_seq_len=256, max_heads=1, max_dilation=4, max_globals=1)
    pattern = parse_pattern("window", window=9, global_tokens="200")
    run = dict(pattern=pattern.to_dict(), seq_len=256, heads=1)
    report = simulate_scheduler(params, [run], sim="icarus", seed=5)
    walk = walk_cycles(pattern, 256, 4)
    assert walk <= report["cycles_per_run"][0] <= walk + report["setup_cycles"] + 10


def test_dense_only_scheduler_walks_every_tile_and_rejects_patterns():
    P = lambda *a, **k: parse_pattern(*a, **k).to_dict()  # noqa: E731
    runs = [dict(pattern=P("dense"), seq_len=11, heads=2),
            dict(pattern=P("window", window=3), seq_len=9, heads=1, expect_error=True),
            dict(pattern=P("dense"), seq_len=1, heads=1)]
    report = simulate_scheduler(dict(rows=3, cols=2, max_seq_len=16, max_heads=2, sparse=False), runs,
                                sim="icarus", seed=2, stall=0.3)
    assert report["passed"]


def test_pattern_codes_follow_the_model_order():
    from attn_rtl.hdl.sparse_scheduler import PATTERN_CODES
    from attn_rtl.sim.sparse import PATTERNS

    assert [PATTERN_CODES[p] for p in PATTERNS] == list(range(len(PATTERNS)))
