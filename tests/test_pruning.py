"""Cascade token and head pruning and progressive quantization (SpAtten): RTL layers against their golden models."""

import json

import numpy as np
import pytest

from attn_rtl.gen.cli import main
from attn_rtl.gen.simulate import simulate_engine, simulate_layer, simulate_progressive
from attn_rtl.sim.engine_stream import flag_beats, row_flags
from attn_rtl.sim.golden import Numerics
from attn_rtl.sim.progressive import k_bytes, msb_only, progressive_layer
from attn_rtl.sim.pruning import check_index_list, fetched, parse_index_list, pruned_layer, select

NM = Numerics()
ENGINE = dict(rows=3, cols=5, max_seq_len=40, max_head_dim=12, max_heads=3, importance=True, row_flags=True)
# int8 operands of a realistic scale (q, k ~ N(0, 1) quantized): rows neither one-hot nor flat.
SCALE = dict(scale_mult=36490, scale_shift=17)


def operands(seed, heads=3, seq_len=23, head_dim=6):
    rng = np.random.default_rng(seed)
    print("seed", seed)
    return [rng.integers(-128, 128, (heads, seq_len, head_dim)) for _ in range(3)]


def golden_layer(q, k, v, **kw):
    return pruned_layer(q, k, v, SCALE["scale_mult"], SCALE["scale_shift"], NM, ENGINE["rows"], ENGINE["cols"], **kw)


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_pruning_across_two_layers(sim):
    q, k, v = operands(31)
    first, first_reports = simulate_layer(ENGINE, q, k, v, token_keep=11, head_keep=2, sim=sim, seed=31, **SCALE)
    expect = golden_layer(q, k, v, token_keep=11, head_keep=2)
    np.testing.assert_array_equal(first.o, expect.o)
    np.testing.assert_array_equal(first.importance, expect.importance)
    np.testing.assert_array_equal(first.kept_tokens, expect.kept_tokens)
    np.testing.assert_array_equal(first.kept_heads, expect.kept_heads)
    assert len(first.kept_tokens) == 11 and len(first.kept_heads) == 2 and "token_topk" in first_reports

    # The next layer computes only what the first kept, and ranks again.
    second, reports = simulate_layer(ENGINE, q, k, v, tokens=first.kept_tokens, heads=first.kept_heads, token_keep=4,
                                     sim=sim, seed=32, idle=0.2, stall=0.2, **SCALE)
    expect = golden_layer(q, k, v, tokens=first.kept_tokens, heads=first.kept_heads, token_keep=4)
    np.testing.assert_array_equal(second.o, expect.o)
    np.testing.assert_array_equal(second.kept_tokens, expect.kept_tokens)
    assert set(second.kept_tokens) <= set(first.kept_tokens) and second.o.shape == (2, 11, 6)
    # Work and fetched bytes shrink with what is kept (both runs without stalls: cycles are work).
    assert second.fetched.total < 0.3 * first.fetched.total
    again, again_reports = simulate_layer(ENGINE, q, k, v, tokens=first.kept_tokens, heads=first.kept_heads, token_keep=4,
                              sim=sim, seed=32, **SCALE)
    np.testing.assert_array_equal(again.o, second.o)
    print("cycles", _cycles(first_reports), _cycles(again_reports))
    assert _cycles(again_reports) < 0.4 * _cycles(first_reports)


def _cycles(reports):
    return reports["engine"]["runs"][0]["cycles"]


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
@pytest.mark.parametrize("head_keep", [3, pytest.param(1, marks=pytest.mark.slow)])   # 20 s each
def test_head_pruning_keeps_every_head_or_one(sim, head_keep):
    q, k, v = operands(33)
    layer, _ = simulate_layer(ENGINE, q, k, v, head_keep=head_keep, sim=sim, seed=33, **SCALE)
    expect = golden_layer(q, k, v, head_keep=head_keep)
    np.testing.assert_array_equal(layer.kept_heads, expect.kept_heads)
    assert len(layer.kept_heads) == head_keep
    if head_keep == 1:   # the head with the largest output magnitude, ties to the lower index
        assert layer.kept_heads[0] == np.lexsort((np.arange(3), -layer.head_importance))[0]
    # The next layer over the kept heads only.
    following, _ = simulate_layer(ENGINE, q, k, v, heads=layer.kept_heads, sim=sim, seed=34, **SCALE)
    np.testing.assert_array_equal(following.o, golden_layer(q, k, v, heads=layer.kept_heads).o)
    assert following.o.shape[0] == head_keep


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
@pytest.mark.parametrize("threshold, recomputed", [(0, "none"), (16000, "some"), ((1 << 16) - 1, "all")])
def test_progressive_quantization_recomputes_no_some_or_every_row(sim, threshold, recomputed):
    q, k, v = operands(35, heads=2, seq_len=17, head_dim=11)
    layer, _ = simulate_progressive(ENGINE, q, k, v, msb_bits=4, threshold=threshold, sim=sim, seed=35, idle=0.2,
                                    stall=0.2, **SCALE)
    expect = progressive_layer(q, k, v, SCALE["scale_mult"], SCALE["scale_shift"], NM, ENGINE["rows"],
                               ENGINE["cols"], msb_bits=4, threshold=threshold)
    np.testing.assert_array_equal(layer.flags, expect.flags)
    np.testing.assert_array_equal(layer.o, expect.o)
    assert layer.k_bytes_fetched == expect.k_bytes_fetched
    fraction = layer.recomputed_fraction
    assert {"none": fraction == 0, "some": 0 < fraction < 1, "all": fraction == 1}[recomputed]
    half = k_bytes(2, 17, 17, 11, ENGINE["rows"], 4)
    assert layer.k_bytes_full == 2 * half and layer.k_bytes_fetched >= half
    if recomputed == "none":   # only K's four most significant bits were fetched
        assert layer.k_bytes_fetched == half


def test_row_flags_of_queries_fewer_than_keys():
    # A recompute run: 4 and 7 queries against 13 and 20 keys, flags masked past query_len.
    runs = [dict(seq_len=13, head_dim=7, heads=2, query_len=4, threshold=(1 << 16) - 1),
            dict(seq_len=20, head_dim=5, heads=1, query_len=7, threshold=12000, importance=True),
            dict(seq_len=1, head_dim=1, heads=1, threshold=(1 << 16) - 1)]
    report = simulate_engine(ENGINE, runs, sim="icarus", seed=36, idle=0.3, stall=0.3, reset_mid=True, **SCALE)
    assert report["passed"]


def test_golden_row_flags_and_msb_only():
    assert msb_only(np.array([127, -128, -1, 5, -6]), 4, 8).tolist() == [112, -128, -16, 0, -16]
    words, last = flag_beats(np.array([[1, 0, 1, 1], [0, 0, 0, 1]], bool), 3)
    assert words.tolist() == [0b101, 0b001, 0b000, 0b001] and last.tolist() == [False, False, False, True]
    q, k, _ = operands(37, heads=1, seq_len=9, head_dim=4)
    assert not row_flags(q, k, 1, 0, NM, 4, 0).any() and row_flags(q, k, 1, 0, NM, 4, (1 << 16) - 1).all()


def test_selection_and_lists():
    assert select([5, 9, 9, 1, 7], 3).tolist() == [1, 2, 4]          # ties to the lower index
    assert select([5, 9, 9, 1, 7], 2, original=[10, 20, 30, 40, 50]).tolist() == [20, 30]
    assert parse_index_list("--token-list", "3, 1\n2") == [3, 1, 2]
    assert check_index_list("--token-list", [3, 1, 2], 4, "token").tolist() == [1, 2, 3]
    for bad, message in (([4], "token 4 is outside 0 … 3"), ([1, 1], "token 1 is listed twice"), ([], "at least one")):
        with pytest.raises(ValueError, match=message):
            check_index_list("--token-list", bad, 4, "token")
    with pytest.raises(ValueError, match="must hold integers, not 'x'"):
        parse_index_list("--head-list", "1,x")
    with pytest.raises(ValueError, match="keep must be from 1 to 5"):
        select([1, 2, 3, 4, 5], 6)
    # K streams once per query block, twice in an importance run.
    assert fetched(2, 10, 4, 3, 8).k == 2 * 4 * 10 * 4 and fetched(2, 10, 4, 3, 8, importance=True).k == 640


def _cli(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr()


SMALL = ["--rows", "2", "--cols", "4", "--max-seq-len", "32", "--max-head-dim", "8", "--max-heads", "4"]


def test_cli_sim_prunes_and_ranks(capsys, tmp_path):
    listing = tmp_path / "tokens.txt"
    listing.write_text("0 1 2 3\n5,6,7 9 10\n")
    code, out = _cli(capsys, "sim", "engine", *SMALL, "--seq-len", "12", "--head-dim", "8", "--heads", "3",
                     "--token-list-file", str(listing), "--head-list", "0,2", "--token-keep", "4", "--head-keep", "1",
                     "--json")
    assert code == 0, out.err
    report = json.loads(out.out)
    assert report["passed"] and report["mismatches"] == 0 and report["tokens"] == [0, 1, 2, 3, 5, 6, 7, 9, 10]
    assert report["heads_computed"] == [0, 2] and len(report["kept_tokens"]) == 4 and len(report["kept_heads"]) == 1
    assert set(report["kept_tokens"]) <= set(report["tokens"]) and report["kept_heads"][0] in (0, 2)
    assert sorted(map(int, report["importance"])) == report["tokens"] and report["recomputed_rows"] == 0
    assert report["k_bytes_fetched"] == fetched(2, 9, 8, 2, 8, importance=True).k


def test_cli_sim_and_golden_progressive(capsys, tmp_path):
    rng = np.random.default_rng(38)
    inputs = tmp_path / "qkv.npz"
    np.savez(inputs, q=rng.normal(size=(2, 12, 8)), k=rng.normal(size=(2, 12, 8)), v=rng.normal(size=(2, 12, 8)))
    code, out = _cli(capsys, "sim", "engine", *SMALL, "--inputs", str(inputs), "--progressive", "3",
                     "--threshold", "0.25", "--json")
    assert code == 0, out.err
    hw = json.loads(out.out)
    code, out = _cli(capsys, "golden", "--inputs", str(inputs), "--output", str(tmp_path / "o.npz"), "--key-tile", "4",
                     "--query-block", "2", "--progressive", "3", "--threshold", "0.25", "--json")
    assert code == 0, out.err
    gold = json.loads(out.out)
    for name in ("recomputed_rows", "k_bytes_fetched", "k_bytes_full", "threshold"):
        assert hw[name] == gold[name], name
    assert gold["threshold"] == round(0.25 * (1 << 15)) and 0 < hw["recomputed_rows"] < 24
    with np.load(tmp_path / "o.npz") as f:
        assert f["recomputed"].sum() == gold["recomputed_rows"]


@pytest.mark.parametrize("argv, message", [
    (["--token-keep", "13"], "--token-keep must be from 1 to 12"),
    (["--head-list", "0,5"], "--head-list: head 5 is outside 0 … 2"),
    (["--token-list", "1,1"], "token 1 is listed twice"),
    (["--progressive", "4"], "--progressive needs --threshold"),
    (["--threshold", "0.5"], "--threshold needs --progressive"),
    (["--progressive", "8", "--threshold", "0.5"], "--progressive must be from 1 to 7"),
    (["--progressive", "4", "--threshold", "2.5"], "--threshold must be from 0 to"),
    (["--progressive", "4", "--threshold", "0.5", "--token-keep", "2"], "cannot be combined"),
    (["--token-list", "1", "--token-list-file", "x"], "exclusive"),
    (["--token-list-file", "/nonexistent/list"], "cannot read --token-list-file"),
    (["--token-keep", "2", "--pattern", "window", "--window", "3", "--sparse"], "dense pattern only"),
])
def test_cli_rejects_bad_pruning_flags(capsys, argv, message):
    code, out = _cli(capsys, "sim", "engine", *SMALL, "--seq-len", "12", "--head-dim", "8", "--heads", "3", *argv)
    assert code == 2 and message in out.err and "Traceback" not in out.err
