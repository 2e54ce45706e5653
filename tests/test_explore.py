"""`attn-rtl explore`: the whole space in seconds, picks that generate and simulate, clear errors."""

import tomllib

import numpy as np
import pytest

from attn_rtl.gen.cli import main
from attn_rtl.gen.cost.explore import explore, parse_budget
from attn_rtl.gen.cost.model import TARGETS, in_domain, predict_cycles
from attn_rtl.gen.cost.workloads import WORKLOADS, Workload
from attn_rtl.gen.simulate import simulate_engine
from attn_rtl.hdl.engine import engine_params


@pytest.mark.parametrize("target", ["ecp5-85f", "xc7a100t"])
def test_every_preset_workload_explores_a_million_candidates_in_seconds(target):
    for workload in WORKLOADS.values():
        result = explore(workload, target, "edp")
        print(f"{workload.name} {target}: {result.candidates:,} in {result.seconds:.2f} s")
        # The bar: a million candidates in at most 5 s, i.e. 200,000 a second (the ECP5 space
        # is four times larger).
        assert result.candidates >= 1_000_000 and result.candidates_per_second >= 200_000
        t, best = result.table, result.best
        feasible = in_domain(workload, t["rows"], t["cols"], t["prob_tiles"]) & _fits(t, target)
        assert feasible[best].all()
        # Nothing feasible beats the first pick on the objective.
        assert t["edp"][best[0]] == np.min(t["edp"][feasible])


def _fits(t, target):
    part = TARGETS[target]
    return np.all([t[r] <= part[r] for r in ("lut", "ff", "dsp", "bram")], axis=0)


@pytest.mark.slow
def test_the_pick_generates_and_its_cycles_hold_in_rtl(tmp_path, capsys):
    """A small workload under a budget: the chosen configuration is written as TOML, `generate`
    takes it, and the engine built from it runs the workload in the predicted cycles (±3%)."""
    spec = tmp_path / "small.toml"
    spec.write_text("[workload]\nseq_len = 40\nhead_dim = 32\nheads = 2\n")
    best = tmp_path / "best.toml"
    assert main(["explore", "--workload", str(spec), "--target", "ecp5-85f", "--budget", "lut=9000,dsp=40",
                 "--plot", str(tmp_path / "pareto.png"), "--emit", str(best)]) == 0
    out = capsys.readouterr().out
    assert "configurations in" in out and (tmp_path / "pareto.png").stat().st_size > 10_000
    config = tomllib.loads(best.read_text())["engine"]
    assert main(["generate", "engine", "--config", str(best), "-o", str(tmp_path / "rtl")]) == 0
    assert (tmp_path / "rtl" / "attention_engine.v").exists()
    params = {k: v for k, v in config.items()}
    measured = simulate_engine(params, [dict(seq_len=40, head_dim=32, heads=2)], sim="icarus", seed=2)
    predicted = predict_cycles(Workload("small", 40, 32, 2), config["rows"], config["cols"],
                               config["prob_tiles"]).total[0]
    print(f"pick {config['rows']}x{config['cols']}: measured {measured['runs'][0]['cycles']}, predicted {predicted:.0f}")
    assert measured["passed"]
    assert predicted == pytest.approx(measured["runs"][0]["cycles"], rel=0.03)


def test_budget_nothing_meets_names_the_tightest_constraint(capsys):
    assert main(["explore", "--workload", "bert-base", "--target", "ecp5-85f", "--budget", "lut=100,dsp=100"]) == 2
    err = capsys.readouterr().err
    assert "no configuration fits" in err and "budget lut=100" in err and "tightest" in err
    assert main(["explore", "--workload", "vil-stage1", "--target", "ice40-up5k"]) == 2
    assert "ice40-up5k's 5,280" in capsys.readouterr().err


@pytest.mark.parametrize("budget, message", [("lut:5", "budget entries are NAME=N"),
                                             ("luts=5", "budget entries are NAME=N"),
                                             ("lut=five", "budget lut must be a non-negative integer, not 'five'"),
                                             ("dsp=-1", "budget dsp must be a non-negative integer, not -1")])
def test_malformed_budgets(budget, message):
    with pytest.raises(ValueError, match=message):
        parse_budget(budget)


def test_budgets_given_through_the_api_are_checked_too():
    with pytest.raises(ValueError, match="budget names lut, ff, dsp, bram, not 'luts'"):
        explore(WORKLOADS["bert-base"], "xc7a100t", budget={"luts": 5})
    with pytest.raises(ValueError, match="budget dsp must be a non-negative integer, not -2"):
        explore(WORKLOADS["bert-base"], "xc7a100t", budget={"dsp": -2})


def test_bad_workloads_and_targets(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[workload]\nseq_len = 64\nhead_dim = 64\nwindow_size = 9\n")
    assert main(["explore", "--workload", str(bad), "--target", "ecp5-85f"]) == 2
    assert "unknown key 'window_size'" in capsys.readouterr().err
    assert main(["explore", "--workload", str(tmp_path / "missing.toml"), "--target", "ecp5-85f"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["explore", "--workload", "bert", "--target", "ecp5-85f"]) == 2
    assert "workload must be one of bert-base" in capsys.readouterr().err
    assert main(["explore", "--workload", "bert-base", "--target", "ecp5"]) == 2
    assert "invalid choice: 'ecp5' (choose from 'ecp5-85f', 'ice40-up5k', 'xc7a100t')" in capsys.readouterr().err


SMALL_SPACE = {"rows": range(1, 9), "cols": range(1, 9), "prob_tiles": (3, 4), "seq_len_factor": (1,),
               "head_dim_factor": (1,), "heads_factor": (1,), "multiplier": ("generic",),
               "fifo_memory": ("registers",)}


def test_memory_mapped_exploration_weighs_the_kv_buffer(tmp_path, capsys):
    """With the memory-mapped top, every shape comes with and without a K/V buffer: the buffer costs its
    block RAM and saves the re-reads (the model's bytes), and the energy pick's configuration builds."""
    from attn_rtl.gen.config import resolve_params
    from attn_rtl.gen.cost.model import dma_memory_bits, offchip_bytes
    from attn_rtl.hdl.engine_mm import AttentionEngineMM

    workload = Workload("mm", 256, 64, 2)
    result = explore(workload, "ecp5-85f", "energy", space=SMALL_SPACE, memory_mapped=True)
    t = result.table
    with_buffer, without = t["kv_buffer_keys"] > 0, t["kv_buffer_keys"] == 0
    assert with_buffer.sum() == without.sum() == result.candidates // 2
    assert (t["read_bytes"][with_buffer] <= t["read_bytes"][without]).all()
    assert (t["memory_bits"][with_buffer] > t["memory_bits"][without]).all()
    best = result.config(int(result.best[0]))
    assert best["kv_buffer_keys"] >= 256          # off-chip energy dominates: the pick holds the keys
    read, _ = offchip_bytes(workload, [best["rows"]], cols=[best["cols"]], kv_buffer_keys=[best["kv_buffer_keys"]])
    assert read[0] == 2 * 256 * 64 + 2 * 2 * 256 * 64   # Q once, K and V once per head
    top = AttentionEngineMM(**{k: v for k, v in best.items()})
    top._MustUse__silence = True
    assert dma_memory_bits(best["rows"], best["cols"], best["prob_tiles"], best["max_head_dim"],
                           best["kv_buffer_keys"]) == top.dma.memory_bits
    config = tmp_path / "pick.toml"
    assert main(["explore", "--workload", "bert-base", "--target", "ecp5-85f", "--memory-mapped", "--top", "2",
                 "--objective", "energy",
                 "--emit", str(config), "--plot", str(tmp_path / "p.png")]) == 0
    assert "kv_buffer_keys" in capsys.readouterr().out
    assert resolve_params("engine_mm", config=str(config))["kv_buffer_keys"] > 0


def test_memory_mapped_exploration_of_a_ranked_pruned_layer():
    """A SpAtten layer through memory: the buffer reads K once even in a ranking run, the lists are read
    and the head importances written; the DMA's list memory counts in its bits."""
    from attn_rtl.gen.cost.model import dma_memory_bits, offchip_bytes
    from attn_rtl.hdl.engine_mm import AttentionEngineMM

    workload = Workload("ranked", 256, 64, 4, token_keep=0.5, head_keep=0.5, rank=True)
    result = explore(workload, "ecp5-85f", "energy", space=SMALL_SPACE, memory_mapped=True)
    best = result.config(int(result.best[0]))
    read, written = offchip_bytes(workload, [best["rows"]], cols=[best["cols"]],
                                  kv_buffer_keys=[best["kv_buffer_keys"]])
    assert best["kv_buffer_keys"] >= 128
    # Q, K and V of 128 tokens of 2 heads once, the token and head lists; O, 128 token and 2 head importances
    assert (read[0], written[0]) == (3 * 2 * 128 * 64 + 2 * (128 + 2), 2 * 128 * 64 + 4 * 128 + 4 * 2)
    top = AttentionEngineMM(**dict(best, importance=True))
    top._MustUse__silence = True
    assert dma_memory_bits(best["rows"], best["cols"], best["prob_tiles"], best["max_head_dim"],
                           best["kv_buffer_keys"], best["max_seq_len"]) == top.dma.memory_bits


def test_memory_mapped_exploration_refuses_what_the_top_cannot_run():
    with pytest.raises(ValueError, match="the memory-mapped top's exploration takes dense layers .*not longformer"):
        explore(WORKLOADS["longformer-base"], "ecp5-85f", memory_mapped=True)


def test_window_layers_weigh_the_diagonal_tiles_of_a_sliding_build():
    """ViL's 2-D window: the space holds every configuration with and without the sliding mode (its area
    added), and the diagonal tiles' cycles (fewer tiles than the gathered ones) win the latency pick."""
    workload = WORKLOADS["vil-stage1"]
    result = explore(workload, "ecp5-85f", "latency")
    t = result.table
    best = result.config(int(result.best[0]))
    assert best["sliding"] and best["sparse"]
    same = (t["rows"] == best["rows"]) & (t["cols"] == best["cols"]) & (t["prob_tiles"] == best["prob_tiles"])
    with_mode, without = same & (t["sliding"] == 1), same & (t["sliding"] == 0)
    assert t["cycles"][with_mode].max() < t["cycles"][without].min()
    assert t["lut"][with_mode].min() > t["lut"][without].min()
    # Its one global token: the global PE row as well (2), no global block's tiles for more area.
    with_row = same & (t["sliding"] == 2)
    assert with_row.any() and t["cycles"][with_row].max() < t["cycles"][with_mode].min()
    assert t["dsp"][with_row].min() > t["dsp"][with_mode].max()
    assert t["ff"][with_row].min() > t["ff"][with_mode].max()
    row_pick = result.config(int(np.flatnonzero(with_row)[0]))
    assert row_pick["global_row"] and row_pick["sliding"]
    engine_params(**row_pick)   # a configuration the generator takes
    # Outside the sliding patterns the axis is not there.
    assert "sliding" not in explore(WORKLOADS["bert-base"], "ecp5-85f").table
