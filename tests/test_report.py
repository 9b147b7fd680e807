"""Tests of gradflow.report: summary numbers, findings, plots, tables and the atomic report directory.

Everything runs on synthetic tables with the SPEC §3 columns (``make_tables``), so these tests need
neither torch models nor the recorder.
"""

from __future__ import annotations

import base64
import doctest
import json
import math
import os
import re
import signal
import time

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from gradflow.errors import UsageError
from gradflow import report
from gradflow.report import plots, summary as summary_mod, tables as tables_mod, writer

SPEC_COLUMNS = {
    "per_step": ["step", "layer", "layer_index", "neuron", "t", "firing_rate", "window_fraction",
                 "grad_total_norm", "grad_spatial_norm", "grad_temporal_norm", "temporal_zero_fraction",
                 "nonfinite"],
    "pairs": ["step", "layer", "layer_index", "t", "t_source", "lag", "norm"],
    "lags": ["step", "layer", "layer_index", "lag", "norm", "relative"],
    "weights": ["step", "layer", "layer_index", "param", "spatial_norm", "temporal_norm", "total_norm",
                "temporal_share"],
}


# ------------------------------------------------------------------------------------ synthetic data

def make_tables(n_layers=3, T=4, steps=2, neuron="lif", run=None, decay=0.4, seed=0, nonfinite=False):
    """Synthetic recorder tables: pair norms decay geometrically by ``decay`` per lag.

    ``nonfinite=True`` sprinkles NaN and Inf over every table (norms, rates, relatives, predictions).
    """
    rng = np.random.default_rng(seed)
    names = [f"layer{i // 2 + 1}.sn{i % 2 + 1}" for i in range(n_layers)]
    per_step, pairs, lags, weights, theory = [], [], [], [], []
    for step in range(steps):
        for i, name in enumerate(names):
            P = rng.uniform(0.5, 2.0, size=T)
            pair = np.zeros((T, T))
            for t in range(T):
                for ts in range(t, T):
                    pair[t, ts] = P[ts] * decay ** (ts - t)
                    pairs.append((step, name, i, t, ts, ts - t, pair[t, ts]))
            for t in range(T):
                temporal = math.sqrt(sum(pair[t, ts] ** 2 for ts in range(t + 1, T)))
                per_step.append((step, name, i, neuron, t, rng.uniform(0.05, 0.3), rng.uniform(0.2, 0.6),
                                 math.hypot(P[t], temporal), P[t], temporal,
                                 1.0 if t == T - 1 else rng.uniform(0.3, 0.7), 0))
            G = [math.sqrt(np.mean([pair[t, t + k] ** 2 for t in range(T - k)])) for k in range(T)]
            for k in range(T):
                lags.append((step, name, i, k, G[k], G[k] / G[0]))
            for param in ("weight", "bias"):
                sp, tp = rng.uniform(0.1, 1.0), rng.uniform(0.0, 0.5)
                weights.append((step, name, i, param, sp, tp, sp + tp, tp / (sp + tp)))
    for i, name in enumerate(names):
        for k in range(T):
            measured, predicted = decay ** k, (decay * 1.05) ** k
            theory.append((name, i, k, measured, predicted, (measured - predicted) / predicted,
                           decay * 1.05, math.log(0.5) / math.log(decay * 1.05)))
    out = {
        "per_step": pd.DataFrame(per_step, columns=SPEC_COLUMNS["per_step"]),
        "pairs": pd.DataFrame(pairs, columns=SPEC_COLUMNS["pairs"]),
        "lags": pd.DataFrame(lags, columns=SPEC_COLUMNS["lags"]),
        "weights": pd.DataFrame(weights, columns=SPEC_COLUMNS["weights"]),
        "theory": pd.DataFrame(theory, columns=["layer", "layer_index", "lag", "measured_relative",
                                                "predicted_relative", "relative_error", "predicted_rate",
                                                "predicted_half_life_steps"]),
    }
    if nonfinite:
        ps = out["per_step"]
        ps.loc[ps.index[::5], "grad_spatial_norm"] = np.nan
        ps.loc[ps.index[1::7], "grad_temporal_norm"] = np.inf
        ps.loc[ps.index[2::6], "firing_rate"] = -np.inf
        ps.loc[ps.index[::5], "nonfinite"] = 3
        out["pairs"].loc[out["pairs"].index[::4], "norm"] = np.inf
        out["pairs"].loc[out["pairs"].index[1::9], "norm"] = np.nan
        out["lags"].loc[out["lags"].index[1::3], ["norm", "relative"]] = np.nan
        out["weights"].loc[out["weights"].index[::3], "temporal_norm"] = np.inf
        out["theory"].loc[out["theory"].index[::4], "predicted_relative"] = np.nan
    if run is not None:
        for key, df in out.items():
            df.insert(0, "run", run)
    return out


def comparison_tables(**kw):
    a = make_tables(run="LIF", neuron="lif", decay=0.3, seed=1, **kw)
    b = make_tables(run="CLIF", neuron="clif", decay=0.7, seed=2, **kw)
    return {k: pd.concat([a[k], b[k]], ignore_index=True) for k in a}


def all_nonfinite(tables):
    """Every number that a plot would draw replaced by NaN: empty after filtering."""
    out = {k: v.copy() for k, v in tables.items()}
    for col in ("firing_rate", "window_fraction", "grad_total_norm", "grad_spatial_norm",
                "grad_temporal_norm", "temporal_zero_fraction"):
        out["per_step"][col] = np.nan
    out["pairs"]["norm"] = np.inf
    out["lags"][["norm", "relative"]] = np.nan
    out["weights"][["spatial_norm", "temporal_norm"]] = np.nan
    out["theory"][["measured_relative", "predicted_relative"]] = np.nan
    return out


DATASETS = {
    "plain": lambda: make_tables(),
    "nonfinite": lambda: make_tables(nonfinite=True),
    "one_layer_T1": lambda: make_tables(n_layers=1, T=1, steps=1),
    "17_layers_T32": lambda: make_tables(n_layers=17, T=32, steps=1),
    "comparison": lambda: comparison_tables(nonfinite=True),
    "all_nonfinite": lambda: all_nonfinite(make_tables()),
    "empty": lambda: {k: v.iloc[0:0] for k, v in make_tables().items()},
}


def summary_of(t):
    return report.summarize(t["per_step"], t["lags"], t["weights"], t["theory"])


# ------------------------------------------------------------------------------------- the numbers

def test_half_life_interpolates_and_handles_edges():
    assert report.half_life([0, 1, 2], [1.0, 0.3, 0.05]) == pytest.approx(0.5 / 0.7)
    assert report.half_life([0, 1, 2, 3], [1.0, 0.8, 0.6, 0.4]) == pytest.approx(2.5)
    assert report.half_life([0, 1, 2], [1.0, 0.5, 0.1]) == pytest.approx(1.0)
    assert report.half_life([0, 1, 2], [1.0, 0.9, 0.7]) == math.inf
    assert math.isnan(report.half_life([0], [1.0]))                       # T = 1
    assert report.half_life([0, 1, 2], [1.0, np.nan, 0.0]) == pytest.approx(1.0)   # NaN lag skipped
    assert report.half_life([0, 1, 2], [np.nan, 0.3, 0.1]) == pytest.approx(0.5 / 0.7)  # relative_0 = 1


def test_lag_profile_pools_steps_as_rms():
    lags = pd.DataFrame({"step": [0, 0, 1, 1], "layer": "a", "layer_index": 0, "lag": [0, 1, 0, 1],
                         "norm": [1.0, 1.0, 3.0, 1.0], "relative": [1.0, 1.0, 1.0, 1 / 3]})
    prof = report.lag_profile(lags)
    assert prof["norm"].tolist() == pytest.approx([math.sqrt(5), 1.0])
    assert prof["relative"].tolist() == pytest.approx([1.0, 1 / math.sqrt(5)])


def hand_case():
    """One layer, T=3, two recorded steps, numbers chosen to be computed by hand."""
    base = dict(layer="layer3.1", layer_index=2, neuron="lif", grad_total_norm=1.0)
    rows = []
    for step, sp, tp, zf, fr in (
        (0, [0.0, 3.0, 4.0], [0.6, 0.8, 0.0], [0.5, 0.7, 1.0], [0.1, 0.2, 0.3]),
        (1, [0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.3, 0.5, 1.0], [0.1, 0.2, 0.3]),
    ):
        for t in range(3):
            rows.append(dict(base, step=step, t=t, firing_rate=fr[t], window_fraction=0.4,
                             grad_spatial_norm=sp[t], grad_temporal_norm=tp[t],
                             temporal_zero_fraction=zf[t], nonfinite=2 if (step, t) == (1, 2) else 0))
    per_step = pd.DataFrame(rows)[SPEC_COLUMNS["per_step"]]
    lags = pd.DataFrame({"step": [0, 0, 0, 1, 1, 1], "layer": "layer3.1", "layer_index": 2,
                         "lag": [0, 1, 2] * 2, "norm": [2.0, 0.6, 0.1] * 2,
                         "relative": [1.0, 0.3, 0.05] * 2})
    weights = pd.DataFrame({"step": 0, "layer": "layer3.1", "layer_index": 2, "param": ["weight", "bias"],
                            "spatial_norm": [3.0, 0.0], "temporal_norm": [0.0, 4.0],
                            "total_norm": [3.0, 4.0], "temporal_share": [0.0, 1.0]})
    return per_step, lags, weights


def test_summarize_hand_computed_numbers():
    per_step, lags, weights = hand_case()
    s = report.summarize(per_step, lags, weights)
    assert list(s.columns) == list(report.SUMMARY_COLUMNS)
    row = s.iloc[0]
    # step 0: ||P|| = 5, ||temporal|| = 1 -> 1/6; step 1: 1 and 1 -> 1/2; mean 1/3
    assert row["temporal_share"] == pytest.approx(1 / 3)
    # pooled over params: spatial 3, temporal 4 -> 4/7
    assert row["weight_temporal_share"] == pytest.approx(4 / 7)
    assert row["half_life"] == pytest.approx(0.5 / 0.7)
    # t = T-1 left out: (0.5 + 0.7 + 0.3 + 0.5) / 4
    assert row["temporal_zero_fraction"] == pytest.approx(0.5)
    assert row["firing_rate"] == pytest.approx(0.2)
    assert (row["nonfinite"], row["T"], row["steps"], row["max_lag"]) == (2, 3, 2, 2)


def test_findings_state_the_hand_computed_numbers():
    per_step, lags, weights = hand_case()
    found = report.findings(report.summarize(per_step, lags, weights))
    assert found[-1] == ("layer3.1: temporal share 33%, half-life 0.7 steps, 50% of temporal entries "
                         "exactly zero; 2 non-finite gradient values (NaN/Inf)")
    assert any(s.startswith("Warning: 2 non-finite") for s in found)
    assert found[0].startswith("1 LIF layer at T=3; temporal share 33%")


def test_summary_one_row_per_layer_and_run_first():
    t = comparison_tables()
    s = summary_of(t)
    assert list(s.columns[:3]) == ["run", "layer", "layer_index"]
    assert s["run"].tolist() == ["LIF"] * 3 + ["CLIF"] * 3
    assert s.groupby("run")["layer_index"].apply(list).to_dict() == {"LIF": [0, 1, 2], "CLIF": [0, 1, 2]}
    # a slower decay gives the CLIF run a longer half-life and a larger temporal share
    lif, clif = s[s.run == "LIF"], s[s.run == "CLIF"]
    assert (clif["half_life"].to_numpy() > lif["half_life"].to_numpy()).all()
    assert clif["temporal_share"].mean() > lif["temporal_share"].mean()
    # theory columns: predicted half-life from predicted_relative, constant columns passed through
    assert "predicted_half_life" in s and "theory_predicted_rate" in s and "theory_error" in s
    found = report.findings(s)
    assert any(f.startswith("CLIF vs LIF: median temporal share") for f in found)
    assert any(f.startswith("CLIF layer1.sn1: temporal share") for f in found)


def test_summary_survives_nonfinite_values():
    t = make_tables(nonfinite=True)
    s = summary_of(t)
    assert len(s) == 3
    assert s["nonfinite"].sum() == (t["per_step"]["nonfinite"]).sum()
    for col in ("temporal_share", "firing_rate", "half_life", "weight_temporal_share"):
        assert np.isfinite(s[col]).all(), col     # computed from the finite entries
    assert all(isinstance(f, str) for f in report.findings(s))


def test_summary_of_T1_and_empty_tables():
    t = make_tables(n_layers=1, T=1, steps=1)
    s = summary_of(t)
    assert math.isnan(s.loc[0, "half_life"]) and math.isnan(s.loc[0, "temporal_zero_fraction"])
    assert s.loc[0, "temporal_share"] == 0.0
    assert report.findings(s)[-1] == "layer1.sn1: T=1, so no gradient flows through time"
    empty = report.summarize(t["per_step"].iloc[0:0])
    assert empty.empty and report.findings(empty) == ["No layer was recorded, so there is nothing to report."]


def test_format_helpers():
    assert report.format_percent(0.6149) == "61%"
    assert report.format_percent(0.004) == "0.4%"
    assert report.format_half_life(math.inf, 5) == "beyond 5 steps"
    assert report.format_half_life(math.nan) == "not measurable"


# ------------------------------------------------------------------------------------------ plots

def _is_blank(ax) -> bool:
    return not (ax.lines or ax.patches or ax.images or ax.texts or ax.collections or ax.child_axes
                or ax.get_title() or ax.get_legend())


PLOTS = {
    "norms": lambda t, ax: plots.plot_norms_over_t(t["per_step"], ax=ax, logy=True, total=True),
    "share": lambda t, ax: plots.plot_temporal_share(summary_of(t), ax=ax),
    "share_from_per_step": lambda t, ax: plots.plot_temporal_share(t["per_step"], ax=ax),
    "weight_share": lambda t, ax: plots.plot_temporal_share(t["weights"], ax=ax, column="weight_temporal_share"),
    "heatmap": lambda t, ax: plots.plot_pair_heatmap(t["pairs"], ax=ax),
    "lag_decay": lambda t, ax: plots.plot_lag_decay(t["lags"], ax=ax, theory=t["theory"]),
    "lag_decay_theory": lambda t, ax: plots.plot_lag_decay(t["theory"], ax=ax),
    "window_firing": lambda t, ax: plots.plot_window_firing(summary_of(t), ax=ax),
}


@pytest.fixture(scope="module")
def datasets():
    return {name: make() for name, make in DATASETS.items()}


@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize("plot", list(PLOTS))
def test_plot_returns_its_ax_and_draws_only_on_it(plot, dataset, datasets):
    fig = Figure()
    ax, other = fig.subplots(1, 2)
    assert PLOTS[plot](datasets[dataset], ax) is ax
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert _is_blank(other)
    assert fig.axes == [ax, other]
    fig.canvas.draw()          # drawing must not fail either (log axes, empty images, inset colour bar)


def test_nonfinite_values_are_noted_on_the_axes(datasets):
    ax = Figure().subplots()
    plots.plot_norms_over_t(datasets["nonfinite"]["per_step"], ax=ax)
    assert any("non-finite" in t.get_text() for t in ax.texts)
    ax = Figure().subplots()
    plots.plot_temporal_share(summary_of(datasets["all_nonfinite"]), ax=ax)
    assert any("no finite data" in t.get_text() for t in ax.texts)


def test_comparison_plots_colour_by_neuron_type(datasets):
    t = datasets["comparison"]
    ax = Figure().subplots()
    plots.plot_temporal_share(summary_of(t), ax=ax)
    colours = {tuple(round(c, 3) for c in p.get_facecolor()[:3]) for p in ax.patches}
    expected = {tuple(round(c, 3) for c in __import__("matplotlib").colors.to_rgb(report.NEURON_COLORS[n]))
                for n in ("lif", "clif")}
    assert colours == expected
    assert [x.get_text() for x in ax.get_legend().get_texts()] == ["LIF", "CLIF"]


@pytest.mark.parametrize("dataset", ["plain", "17_layers_T32", "comparison", "one_layer_T1", "all_nonfinite",
                                     "empty"])
def test_grid_helpers_make_one_axes_per_layer(dataset, datasets):
    t = datasets[dataset]
    n_layers = max(t["per_step"]["layer"].nunique(), 1)     # an empty grid still says "no data"
    n_runs = t["per_step"]["run"].nunique() if "run" in t["per_step"] else 1
    fig = Figure(layout="constrained")
    assert len(plots.plot_norms_grid(t["per_step"], fig)) == n_layers
    fig = Figure(layout="constrained")
    assert len(plots.plot_pair_grid(t["pairs"], fig)) == n_layers * n_runs


def test_ax_none_uses_pyplot_current_axes():
    import matplotlib.pyplot as plt

    try:
        fig, ax = plt.subplots()
        assert plots.plot_window_firing(make_tables()["per_step"]) is ax
    finally:
        plt.close("all")


# ----------------------------------------------------------------------------------------- tables

def test_markdown_and_latex_escape_correctly():
    assert report.escape_markdown("a|b_c *d* `e` [f] <g>\nh\\") == r"a\|b\_c \*d\* \`e\` \[f\] \<g\> h\\"
    assert report.escape_latex("a_b & 50% $5 #1 {x} ~ ^ < > | \\") == (
        r"a\_b \& 50\% \$5 \#1 \{x\} \textasciitilde{} \textasciicircum{} \textless{} \textgreater{} "
        r"\textbar{} \textbackslash{}")


def test_markdown_table_format():
    df = pd.DataFrame({"layer": ["conv_1", "a|b"], "share": [0.25, np.nan], "n": [3, 4],
                       "h": [np.inf, 1.23456]})
    assert report.to_markdown(df).splitlines() == [
        "| layer | share | n | h |",
        "| :--- | ---: | ---: | ---: |",
        r"| conv\_1 | 0.25 | 3 | inf |",
        r"| a\|b | n/a | 4 | 1.235 |",
    ]


def test_latex_table_format():
    df = pd.DataFrame({"layer_name": ["conv_1"], "share (%)": ["4.0"], "h": [np.inf], "x": [np.nan]})
    tex = report.to_latex(df, caption="50% of_it", label="tab:a b")
    assert tex.splitlines() == [
        r"% Requires \usepackage{booktabs}.",
        r"\begin{table}[htbp]",
        r"\centering",
        r"\caption{50\% of\_it}",
        r"\label{tab:a-b}",
        r"\begin{tabular}{lrrr}",
        r"\toprule",
        r"layer\_name & share (\%) & h & x \\",
        r"\midrule",
        r"conv\_1 & 4.0 & $\infty$ & -- \\",
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]


def test_display_summary_and_write_tables(tmp_path):
    t = comparison_tables()
    s = summary_of(t)
    shown = report.display_summary(s)
    assert list(shown.columns[:3]) == ["Run", "Layer", "Neuron"] and shown["Neuron"].iloc[0] == "LIF"
    s2 = s.copy()
    s2.loc[0, "half_life"] = math.inf
    assert report.display_summary(s2).loc[0, "Half-life (steps)"] == f"> {int(s2.loc[0, 'max_lag'])}"
    written = report.write_tables({"summary": s, "theory": t["theory"], "lags": t["lags"]}, tmp_path)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    assert names == ["lags.csv", "summary.csv", "tables/comparison.md", "tables/comparison.tex",
                     "tables/summary.md", "tables/summary.tex", "tables/theory.md", "tables/theory.tex",
                     "theory.csv"]
    assert r"layer1.sn1" in (tmp_path / "tables/summary.tex").read_text()
    assert "Temporal share (\\%)" in (tmp_path / "tables/summary.tex").read_text()


# ---------------------------------------------------------------------------------------- reports

SUMMARY_JSON = {"model": "mlp", "neuron": "lif", "T": 4, "tau": 2.0, "loss": np.float32(1.25),
                "accuracy": float("nan"), "inputs": "synthetic", "versions": {"gradflow": "0.1.0"}}
SPEC_FILES = ["summary.json", "per_step.csv", "pairs.csv", "lags.csv", "weights.csv", "theory.csv",
              "report.md", "index.html"]


def _litter(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def written_report(tmp_path_factory):
    """A 17-layer, T=6 report with NaN/Inf everywhere; also timed (the brief: a few seconds)."""
    out = tmp_path_factory.mktemp("reports") / "gradflow-report"
    t = make_tables(n_layers=17, T=6, steps=2, nonfinite=True)
    start = time.perf_counter()
    report.write_report(out, summary_json=SUMMARY_JSON, tables=t, title="Synthetic <LIF> report")
    return out, t, time.perf_counter() - start


def test_report_has_every_spec_file(written_report):
    out, t, _ = written_report
    for name in SPEC_FILES:
        assert (out / name).is_file(), name
    for name in report.FIGURE_NAMES:
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / "figures" / f"{name}.svg").read_bytes()[:2000]
    for name in ("summary", "theory"):
        assert (out / "tables" / f"{name}.md").is_file() and (out / "tables" / f"{name}.tex").is_file()
    assert _litter(out.parent) == []


def test_report_csv_columns_and_values_preserved(written_report):
    out, t, _ = written_report
    for name in ("per_step", "pairs", "lags", "weights", "theory"):
        back = pd.read_csv(out / f"{name}.csv")
        assert list(back.columns) == list(t[name].columns), name
        assert len(back) == len(t[name])
    back = pd.read_csv(out / "per_step.csv")
    np.testing.assert_allclose(back["grad_temporal_norm"], t["per_step"]["grad_temporal_norm"])
    assert np.isinf(back["grad_temporal_norm"]).any() and back["grad_spatial_norm"].isna().any()


def test_report_summary_json(written_report):
    out, _, _ = written_report
    doc = json.loads((out / "summary.json").read_text())
    assert doc["loss"] == pytest.approx(1.25) and doc["accuracy"] is None and doc["T"] == 4


def test_index_html_is_self_contained(written_report):
    out, _, _ = written_report
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<title>Synthetic &lt;LIF&gt; report</title>" in page
    sources = re.findall(r"""\bsrc\s*=\s*["']([^"']*)""", page)
    assert len(sources) == len(report.FIGURE_NAMES)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""\bhref\s*=""", page) and "<link" not in page and "<script" not in page
    assert "non-finite gradient values" in page and 'class=warn' in page
    assert page.count("<figcaption>") == len(report.FIGURE_NAMES)


def test_report_md_links_existing_figures(written_report):
    out, _, _ = written_report
    md = (out / "report.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((figures/[^)]+)\)", md)
    assert len(links) == 2 * len(report.FIGURE_NAMES)
    assert all((out / link).is_file() for link in links)
    assert "## Findings" in md and "temporal share" in md


def test_comparison_report_shows_runs_side_by_side(tmp_path):
    out = tmp_path / "cmp"
    report.write_report(out, summary_json={"runs": {"LIF": {"model": "mlp", "T": 4, "warnings": []},
                                                    "CLIF": {"model": "mlp", "T": 4, "warnings": []}},
                                           "seed": 0},
                        tables=comparison_tables(nonfinite=True))
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "Runs side by side" in page and "Temporal share CLIF (%)" in page
    # run information: the runs as columns, key fields first, everything in "Run details"
    assert "<th>Field</th><th>LIF</th><th>CLIF</th>" in page and "Run details" in page
    assert (out / "tables" / "comparison.tex").is_file()
    assert "CLIF vs LIF" in (out / "report.md").read_text(encoding="utf-8")


def test_report_for_T1_single_layer_without_optional_tables(tmp_path):
    t = make_tables(n_layers=1, T=1, steps=1)
    out = report.write_report(tmp_path / "r", summary_json={}, tables={"per_step": t["per_step"]})
    assert list(pd.read_csv(out / "pairs.csv").columns) == SPEC_COLUMNS["pairs"]
    for name in SPEC_FILES:
        assert (out / name).is_file(), name
    assert "T=1, so no gradient flows through time" in (out / "report.md").read_text(encoding="utf-8")


def _boom(*args, **kwargs):
    raise RuntimeError("injected failure")


def small():
    return make_tables(n_layers=2, T=3, steps=1)


def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "plot_lag_decay", _boom)
    with pytest.raises(RuntimeError, match="injected"):
        report.write_report(tmp_path / "out", summary_json={}, tables=small())
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []


def test_interrupt_and_sigterm_mid_write_leave_nothing(tmp_path, monkeypatch):
    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "plot_lag_decay", interrupt)
    with pytest.raises(KeyboardInterrupt):
        report.write_report(tmp_path / "out", summary_json={}, tables=small())
    assert list(tmp_path.iterdir()) == []

    def terminate(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)                      # the handler raises before this ends

    monkeypatch.setattr(plots, "plot_temporal_share", terminate)
    with pytest.raises(SystemExit) as info:
        report.write_report(tmp_path / "out", summary_json={}, tables=small())
    assert info.value.code == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_existing_dir_needs_force_and_is_replaced_only_when_complete(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()                                     # a previous report (as far as the writer can tell)
    (out / "summary.json").write_text('{"n": 1}')
    (out / "index.html").write_text("<html></html>")
    with pytest.raises(UsageError, match="--force"):
        report.write_report(out, summary_json={"n": 2}, tables=small())
    assert json.loads((out / "summary.json").read_text()) == {"n": 1}

    with monkeypatch.context() as m:
        m.setattr(plots, "plot_norms_grid", _boom)
        with pytest.raises(RuntimeError):
            report.write_report(out, summary_json={"n": 3}, tables=small(), force=True)
    assert json.loads((out / "summary.json").read_text()) == {"n": 1}
    assert _litter(tmp_path) == []

    report.write_report(out, summary_json={"n": 4}, tables=small(), force=True)
    assert json.loads((out / "summary.json").read_text()) == {"n": 4}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    probe = tmp_path / "probe"      # the report gets the mode of an ordinary new directory, not 0o700
    probe.mkdir()
    assert oct(out.stat().st_mode & 0o777) == oct(probe.stat().st_mode & 0o777)


def test_force_refuses_to_replace_a_directory_that_is_not_a_report(tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("keep me")
    with pytest.raises(UsageError, match="does not look like a gradflow report"):
        report.write_report(precious, summary_json={}, tables=small(), force=True)
    assert (precious / "chapter1.tex").read_text() == "keep me"


def test_unwritable_location_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="Cannot write the report"):
        report.write_report(blocker / "out", summary_json={}, tables=small())


def test_17_layers_report_is_fast(written_report):
    _, t, elapsed = written_report
    assert t["per_step"]["layer"].nunique() == 17
    assert elapsed < 20, f"17-layer report took {elapsed:.1f} s"


def test_docstring_examples_run():
    for module in (summary_mod, tables_mod, plots, writer):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
