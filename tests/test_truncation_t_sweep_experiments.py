"""The tau-truncation and lif-vs-clif-T experiments: intervals over seeds and paired contrasts."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gradflow.lab.experiments import run_experiment
from gradflow.lab.experiments import t_sweep, truncation


def test_t_interval_matches_scipy():
    v = np.array([0.71, 0.74, 0.70])
    r = truncation.t_interval(v)
    lo, hi = sps.t.interval(0.95, 2, loc=v.mean(), scale=sps.sem(v))
    assert math.isclose(r["ci_low"], lo) and math.isclose(r["ci_high"], hi) and r["n"] == 3
    assert truncation.verdict(r["ci_low"], r["ci_high"]) == "> 0"
    one = truncation.t_interval([0.5])
    assert one["mean"] == 0.5 and math.isnan(one["ci_low"]) and truncation.verdict(one["ci_low"], 1) == "cannot tell"


def _truncation_runs():
    rows = []
    for seed, base in enumerate((0.30, 0.32, 0.34)):
        for tau, gain in ((1.1, 0.0), (2.0, 0.5 + 0.01 * seed)):
            for k in ("1", "T"):
                rows.append(dict(task_name="delay", tau=tau, k=k, seed=seed, chance=0.25, train_accuracy=base,
                                 test_accuracy=base + (gain if k == "T" else 0.0)))
    return pd.DataFrame(rows)


def test_truncation_contrasts_are_paired_by_seed():
    runs = _truncation_runs()
    c = truncation._contrasts(runs, (1.1, 2.0), ["1", "T"]).set_index(["contrast", "tau"])
    assert c.loc[("cost", 1.1), "mean"] == 0 and c.loc[("cost", 1.1), "verdict"] == "cannot tell"
    cost = c.loc[("cost", 2.0)]
    # the seed-to-seed spread of the baseline cancels in the paired difference
    assert math.isclose(cost["mean"], 0.51) and cost["verdict"] == "> 0" and cost["n_positive"] == 3
    assert math.isclose(c.loc[("cost_vs_tau", 2.0), "mean"], 0.51) and c.loc[("cost_vs_tau", 2.0), "tau_ref"] == 1.1
    s = truncation.summarize_with_intervals(runs, ["task_name", "tau", "k"])
    row = s[(s.tau == 2.0) & (s.k == "1")].iloc[0]
    assert row.test_accuracy_ci_low < row.test_accuracy_mean < row.test_accuracy_ci_high and row.seeds == 3


def test_t_sweep_contrasts():
    rows = []
    for seed in range(3):
        for T in (1, 2, 4, 8):
            for nk in ("lif", "clif"):
                acc = 0.7 + 0.01 * seed + (0.02 * (T >= 8) if nk == "clif" else 0.0)
                rows.append(dict(T=T, neuron=nk, seed=seed, test_accuracy=acc))
    c = t_sweep._contrasts(pd.DataFrame(rows), (1, 2, 4, 8))
    clif = c[c.contrast == "clif_minus_lif"].set_index("T")
    assert clif.loc[4, "mean"] == 0 and math.isclose(clif.loc[8, "mean"], 0.02)
    gap = c[c.contrast == "gap_change"].iloc[0]
    assert gap["T"] == 8 and gap["T_ref"] == 4 and math.isclose(gap["mean"], 0.02)
    assert set(c[c.contrast == "change_from_ref"].neuron) == {"lif", "clif"}
    first = c[(c.contrast == "change_from_first") & (c.neuron == "clif")].set_index("T")
    assert list(first.index) == [2, 4, 8] and (first.T_ref == 1).all() and math.isclose(first.loc[8, "mean"], 0.02)


@pytest.mark.parametrize("name", ["tau-truncation", "lif-vs-clif-T"])
def test_experiment_quick_writes_intervals_and_contrasts(tmp_path, name):
    tables = run_experiment(name, str(tmp_path), seeds=[0, 1], quick=True)
    assert {"runs", "summary", "contrasts"} <= set(tables)
    s = pd.read_csv(tmp_path / "summary.csv")
    assert {"test_accuracy_ci_low", "test_accuracy_ci_high"} <= set(s.columns)
    c = pd.read_csv(tmp_path / "contrasts.csv")
    assert set(c.verdict) <= {"> 0", "< 0", "cannot tell"} and (c.n == 2).all()
    assert any((tmp_path / "figures").glob("*.png"))
