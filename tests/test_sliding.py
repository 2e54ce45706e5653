"""The sliding-window (diagonal) tiling of sim/sliding.py against the pattern rules: every allowed pair
computed exactly once, no other pair, each row on its own window, and the bounds of docs/sparse.md."""

import numpy as np
import pytest

from attn_rtl.sim.golden import Numerics, logits, online_softmax_attention, scores
from attn_rtl.sim.sliding import (
    computed_rows,
    covered_pairs,
    diagonal_tiles,
    output_from_beats,
    sliding_beats,
    sliding_bound,
    sliding_output,
)
from attn_rtl.sim.sparse import allowed_mask, parse_pattern

P = parse_pattern
PATTERNS = [
    P("window", window=5), P("window", window=8, global_tokens="0,13"), P("window", window=1),
    P("window", window=60),
    P("dilated", window=4, dilation=3), P("dilated", window=5, dilation=2, global_tokens="7"),
    P("grid", grid="5x7", window2d="3x3"), P("grid", grid="6x4", window2d="5x3", global_tokens="0,23"),
    P("grid", grid="3x9", window2d="1x9"),
]


def _seq_len(pattern):
    return pattern.grid[0] * pattern.grid[1] if pattern.kind == "grid" else 29


@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 4), (4, 3), (8, 8)])
@pytest.mark.parametrize("pattern", PATTERNS, ids=str)
def test_every_allowed_pair_is_computed_once_and_no_other(pattern, rows, cols):
    seq_len = _seq_len(pattern)
    tiles = diagonal_tiles(pattern, seq_len, rows, cols)
    count = covered_pairs(tiles, seq_len)
    allowed = allowed_mask(pattern, seq_len)
    np.testing.assert_array_equal(count, allowed.astype(np.int64))
    # An element takes part only on a key inside the sequence, and a tile is computed only with one.
    keys = tiles.keys()
    assert ((keys >= 0) & (keys < seq_len))[tiles.mask].all()
    assert tiles.mask.reshape(len(tiles), -1).any(axis=1).all()
    # Lane u is the key of anti-diagonal u; a tile's global column holds its global key.
    n, r, c = np.nonzero(tiles.diagonal_mask)
    np.testing.assert_array_equal(tiles.lanes[n, r + c], keys[n, r, c])
    assert tiles.keep[n, r + c].all()
    carrying = np.flatnonzero(tiles.global_key >= 0)
    assert (keys[carrying, :, cols - 1] == np.asarray(pattern.global_tokens)[tiles.global_key[carrying], None]).all()
    # Global queries only in their own blocks, whose tiles carry no global column.
    assert (tiles.global_key[tiles.global_block[tiles.block]] < 0).all()
    assert sorted(tiles.queries[tiles.global_block].reshape(-1)[tiles.queries[tiles.global_block].reshape(-1) >= 0]
                  .tolist()) == sorted(pattern.global_tokens)


@pytest.mark.parametrize("rows, cols", [(3, 4), (8, 8)])
def test_each_row_sees_the_same_offsets_of_its_own_window(rows, cols):
    """A window's tiles give every interior row its 2·⌊w/2⌋ + 1 keys in ⌈(2⌊w/2⌋+1)/cols⌉ tiles, at the same
    offsets: nothing is masked but the rounding of the last tile."""
    w, seq_len = 9, 64
    tiles = diagonal_tiles(P("window", window=w), seq_len, rows, cols)
    per_block = -(-(2 * (w // 2) + 1) // cols)
    interior = [b for b, members in enumerate(tiles.queries) if members.min() >= w and members.max() < seq_len - w]
    assert interior
    for b in interior:
        mine = np.flatnonzero(tiles.block == b)
        assert len(mine) == per_block
        offsets = tiles.keys()[mine] - tiles.queries[b][None, :, None]
        assert (offsets == offsets[:, :1]).all()   # the same offsets in every row
        assert tiles.mask[mine].sum() == rows * (2 * (w // 2) + 1)


def test_dilated_blocks_hold_one_residue():
    tiles = diagonal_tiles(P("dilated", window=4, dilation=3), 29, 4, 3)
    assert tiles.stride == 3
    for members in tiles.queries:
        real = members[members >= 0]
        assert (np.diff(real) == 3).all()
    assert sorted(tiles.queries[tiles.queries >= 0].tolist()) == list(range(29))


def test_dense_and_causal_patterns_are_refused():
    for pattern in (P("dense"), P("causal")):
        with pytest.raises(ValueError, match="sliding-window tiling serves the window, dilated, grid patterns"):
            diagonal_tiles(pattern, 16, 2, 2)


@pytest.mark.parametrize("pattern", PATTERNS, ids=str)
def test_the_output_is_the_attention_of_every_allowed_pair(pattern):
    """Each query's O is the online softmax over its own key order: its row of each of its block's tiles (a
    global query: of its global block), the global column's key included, and that order holds exactly its
    allowed keys, each once.  Random operands, seed printed."""
    seq_len, d, nm = _seq_len(pattern), 5, Numerics()
    seed = 4242 + len(pattern.global_tokens)
    print("seed", seed)
    rng = np.random.default_rng(seed)
    q = rng.integers(-128, 128, (2, seq_len, d))
    k = rng.integers(-128, 128, (2, seq_len, d))
    v = rng.integers(-128, 128, (2, seq_len, d))
    tiles = diagonal_tiles(pattern, seq_len, 3, 4)
    got = sliding_output(q, k, v, 1, 12, nm, tiles)
    t = logits(scores(q, k), 1, 12, nm)
    allowed = allowed_mask(pattern, seq_len)
    for query in range(seq_len):
        own_block = tiles.global_block == (query in pattern.global_tokens)
        b, r = map(int, np.argwhere((tiles.queries == query) & own_block[:, None])[0])
        mine = np.flatnonzero(tiles.block == b)
        order = np.clip(tiles.keys()[mine, r], 0, seq_len - 1).reshape(-1)
        ok = tiles.mask[mine, r].reshape(-1)
        assert allowed[query, order[ok]].all() and ok.sum() == allowed[query].sum() == len(set(order[ok]))
        want, _ = online_softmax_attention(t[:, query, order][:, None], v[:, order], nm, key_tile=4, mask=ok[None])
        np.testing.assert_array_equal(got[:, query], want[:, 0], err_msg=f"query {query}")


def test_bounds_of_the_issue_workloads():
    """ViL stage 1 (56x56, 15x15, one global) and Longformer (L 4096, w 512, one global) on 8x8."""
    vil = sliding_bound(P("grid", grid="56x56", window2d="15x15", global_tokens="0"), 3136, 8, 8)
    # 15 of 16 lanes per window row inside the image; 2·28 of 56·15 lost at its left and right edges.
    assert vil["local_bound"] == pytest.approx((15 * 56 - 2 * 28) / (16 * 56), abs=0.001)
    # 30 tiles a block, less the window rows above and below the image; the global key rides in free last
    # columns (no tile more), the global query's block takes ⌈(3136 + 7)/8⌉ tiles.
    assert vil["local_tiles"] == 392 * (2 * 15) - 2 * 7 * 2 * (7 + 6 + 5 + 4 + 3 + 2 + 1)
    assert vil["global_tiles"] == 393 and vil["tiles"] == vil["local_tiles"] + 393
    assert 0.853 < vil["bound"] < 0.854 and 0.883 < vil["global_row_bound"] < 0.884
    longformer = sliding_bound(P("window", window=512, global_tokens="0"), 4096, 8, 8)
    assert longformer["local_bound"] > 0.98 and longformer["bound"] < 0.98 < longformer["global_row_bound"]


@pytest.mark.parametrize("pattern", [P("window", window=8, global_tokens="0,13"),
                                     P("dilated", window=5, dilation=2, global_tokens="7"),
                                     P("grid", grid="6x4", window2d="5x3", global_tokens="0,23")], ids=str)
def test_the_streams_of_a_diagonal_run_carry_each_tile(pattern):
    """The beats of docs/sparse.md's engine plan: from a block's Q beats and a tile's K beats, every
    element of the tile's score is the query's score against its key (the global lane in the global
    column); V beats are V of the same lanes; O beats hold each query's O once, in block order."""
    seq_len, d, rows, cols, heads = _seq_len(pattern), 5, 3, 4, 2
    rng = np.random.default_rng(77)
    q, k, v = (rng.integers(-128, 128, (heads, seq_len, d)) for _ in range(3))
    tiles = diagonal_tiles(pattern, seq_len, rows, cols)
    o = sliding_output(q, k, v, 1, 12, Numerics(), tiles)
    beats = sliding_beats(q, k, v, o, tiles)
    s = scores(q, k)
    keys = tiles.keys()
    with_tiles = np.unique(tiles.block)
    assert beats.q.shape == (heads * len(with_tiles) * d, rows)
    assert beats.k.shape == beats.v.shape == (heads * len(tiles) * d, rows + cols)
    at_q, at_k = 0, 0
    for h in range(heads):
        for b in with_tiles:
            block_q = beats.q[at_q:at_q + d]                       # (d, rows)
            at_q += d
            for n in np.flatnonzero(tiles.block == b):
                lanes_k, lanes_v = beats.k[at_k:at_k + d], beats.v[at_k:at_k + d]
                at_k += d
                for r, c in zip(*np.nonzero(tiles.mask[n])):
                    lane = rows + cols - 1 if (tiles.global_key[n] >= 0 and c == cols - 1) else r + c
                    assert block_q[:, r] @ lanes_k[:, lane] == s[h, tiles.queries[b, r], keys[n, r, c]]
                    np.testing.assert_array_equal(lanes_v[:, lane], v[h, keys[n, r, c]])
    o_rows = [(h, query) for h in range(heads) for b in with_tiles
              for query in tiles.queries[b][computed_rows(tiles, b)]]
    assert sorted(query for h, query in o_rows if h == 0) == list(range(seq_len))   # every query once
    chunks = -(-d // cols)
    at = 0
    for h in range(heads):
        for b in with_tiles:
            members = tiles.queries[b][computed_rows(tiles, b)]
            block = beats.o[at:at + chunks * len(members)].reshape(chunks, len(members), cols)
            at += chunks * len(members)
            got = block.transpose(1, 0, 2).reshape(len(members), -1)[:, :d]
            np.testing.assert_array_equal(got, o[h, members])
            assert beats.o_last[at - 1] and not beats.o_last[at - chunks * len(members):at - 1].any()


GLOBAL_PATTERNS = [p for p in PATTERNS if p.global_tokens] + [P("window", window=3, global_tokens="28"),
                                                             P("dilated", window=3, dilation=4, global_tokens="0,1,2")]


@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 4), (4, 3), (8, 8)])
@pytest.mark.parametrize("pattern", GLOBAL_PATTERNS, ids=str)
def test_a_global_row_takes_every_key_once_from_the_window_tiles(pattern, rows, cols):
    """With a global row the global queries' blocks have no tiles; each key reaches the row exactly once:
    a plain key on its own query's self element (the tile's self column), a global key from a global column
    of the head's first block; the pairs of the tiles and the row together are the pattern's, each once."""
    seq_len = _seq_len(pattern)
    globals_ = len(pattern.global_tokens)
    tiles = diagonal_tiles(pattern, seq_len, rows, cols, global_row=globals_)
    assert tiles.global_row and tiles.global_tiles == 0
    plain = diagonal_tiles(pattern, seq_len, rows, cols)
    assert len(tiles) == len(plain) - plain.global_tiles
    np.testing.assert_array_equal(covered_pairs(tiles, seq_len), allowed_mask(pattern, seq_len).astype(np.int64))
    row_keys, ok = tiles.row_keys()
    assert sorted(row_keys[ok].tolist()) == list(range(seq_len))
    # A tile's new plain keys lie on its self column: lane self_column + r is row r's query.
    n, r = np.nonzero(tiles.self_rows)
    assert (tiles.self_column[n] >= 0).all()
    np.testing.assert_array_equal(tiles.lanes[n, tiles.self_column[n] + r], tiles.queries[tiles.block[n], r])
    assert tiles.keep[n, tiles.self_column[n] + r].all()
    # Fewer row lanes than globals, or no plain query: the global blocks stay.
    assert not diagonal_tiles(pattern, seq_len, rows, cols, global_row=globals_ - 1).global_row
    only_globals = P("window", window=3, global_tokens="0,1")
    assert not diagonal_tiles(only_globals, 2, rows, cols, global_row=2).global_row
    with pytest.raises(ValueError, match="global_row must be a non-negative integer, not -1"):
        diagonal_tiles(pattern, seq_len, rows, cols, global_row=-1)


@pytest.mark.parametrize("pattern", GLOBAL_PATTERNS, ids=str)
def test_the_global_rows_output_is_its_attention(pattern):
    """A global query's O from the row is the online softmax over every key, rows + 1 keys a tile at most,
    within a few LSB of float attention, and the plain queries' O is unchanged by the row.  Seed printed."""
    seq_len, d, nm = _seq_len(pattern), 6, Numerics()
    seed = 515 + seq_len
    print("seed", seed)
    rng = np.random.default_rng(seed)
    q, k, v = (rng.integers(-128, 128, (2, seq_len, d)) for _ in range(3))
    with_row = diagonal_tiles(pattern, seq_len, 3, 4, global_row=4)
    without = diagonal_tiles(pattern, seq_len, 3, 4)
    got = sliding_output(q, k, v, 1, 12, nm, with_row)
    plain = [x for x in range(seq_len) if x not in pattern.global_tokens]
    np.testing.assert_array_equal(got[:, plain], sliding_output(q, k, v, 1, 12, nm, without)[:, plain])
    t = logits(scores(q, k), 1, 12, nm)
    real = np.exp2(t / 2 ** nm.logit_frac_bits)
    for g in pattern.global_tokens:
        p = real[:, g] / real[:, g].sum(axis=1, keepdims=True)
        want = np.einsum("hj,hjc->hc", p, v)
        assert np.abs(got[:, g] - want).max() <= 2, f"global query {g}"


@pytest.mark.parametrize("pattern", GLOBAL_PATTERNS[:3], ids=str)
def test_the_streams_of_a_run_with_a_global_row(pattern):
    """Per head the global queries' Q first (lane j: the j-th global), then the blocks that have tiles; no
    tile of a global block on K, V or kv_index; O in output_blocks order, the row's after the head's blocks."""
    seq_len, d, rows, cols, heads = _seq_len(pattern), 5, 3, 4, 2
    rng = np.random.default_rng(78)
    q, k, v = (rng.integers(-128, 128, (heads, seq_len, d)) for _ in range(3))
    tiles = diagonal_tiles(pattern, seq_len, rows, cols, global_row=rows)
    o = sliding_output(q, k, v, 1, 12, Numerics(), tiles)
    beats = sliding_beats(q, k, v, o, tiles)
    with_tiles = np.unique(tiles.block)
    per_head = (1 + len(with_tiles)) * d
    assert beats.q.shape == (heads * per_head, rows)
    assert beats.k.shape == (heads * len(tiles) * d, rows + cols) and len(beats.kv_keys) == heads * len(tiles)
    globals_ = list(pattern.global_tokens)
    for h in range(heads):
        np.testing.assert_array_equal(beats.q[h * per_head:h * per_head + d, :len(globals_)], q[h, globals_].T)
        assert not beats.q[h * per_head:h * per_head + d, len(globals_):].any()
    np.testing.assert_array_equal(output_from_beats(beats.o, tiles, heads, seq_len, d), o)
    # The row's O closes each head: its global queries' rows, the head's last O beats.
    chunks = -(-d // cols)
    per_head_o = len(beats.o) // heads
    tail = beats.o[per_head_o - chunks * len(globals_):per_head_o].reshape(chunks, len(globals_), cols)
    np.testing.assert_array_equal(tail.transpose(1, 0, 2).reshape(len(globals_), -1)[:, :d], o[0, globals_])
