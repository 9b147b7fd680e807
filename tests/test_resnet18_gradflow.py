"""`gradflow experiment resnet18-gradflow --quick`: writes the 0.2 tables (projection, cosine, transport ratio,
half-life, each with an interval) and its numbers agree with the recorder's raw weight-split rows."""

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from gradflow import stats
from gradflow_cli.main import app

runner = CliRunner()


def test_quick_resnet18_gradflow_writes_0_2_tables(tmp_path):
    out = tmp_path / "rn"
    r = runner.invoke(app, ["experiment", "resnet18-gradflow", "--out", str(out), "--seeds", "0", "--quick", "-q"])
    assert r.exit_code == 0, r.output
    names = {p.name for p in out.iterdir()}
    assert {"runs.csv", "summary.csv", "summary.md", "flow.csv", "profile.csv", "flow_summary.csv", "contrasts.csv",
            "weights.csv"} <= names
    assert not {"temporal_share.csv", "lags.csv", "report.md"} & names
    assert {p.name for p in (out / "figures").iterdir()} == {"weight_projection_per_layer.png",
                                                             "transport_per_layer.png", "temporal_share_per_layer.png"}
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs.neuron) == {"lif", "clif"} and (runs.samples == 8).all() and runs.test_accuracy.between(0, 1).all()
    flow = pd.read_csv(out / "flow.csv")
    assert set(flow.point) == {"init", "after"} and flow.layer_index.nunique() == 17
    assert (flow.samples == 8).all() and (flow.passes == 2).all()
    for m in ("weight_temporal_projection", "weight_cosine", "relative_1", "decay_rate"):
        ok = flow[[m, f"{m}_ci_low", f"{m}_ci_high"]].notna().all(axis=1)
        assert ok.all(), m
        assert (flow[f"{m}_ci_low"] <= flow[m] + 1e-12).all() and (flow[m] <= flow[f"{m}_ci_high"] + 1e-12).all(), m
    assert flow.relative_1.between(0, 1).all() and flow.weight_cosine.between(-1, 1).all()

    # the pooled projection is stats.projections of the raw rows' sums over the layer's conv weights and passes
    w = pd.read_csv(out / "weights.csv")
    assert not w.param.str.contains(r"\.bn\d?\.|^bn\d", regex=True).any() and w.param.str.endswith("weight").all()
    row = flow[(flow.neuron == "clif") & (flow.point == "init") & (flow.layer_index == 0)].iloc[0]
    d = w[(w.neuron == "clif") & (w.point == "init") & (w.layer_index == 0)]
    p = stats.projections(d.spatial_sq.sum(), d.temporal_sq.sum(), d.inner.sum())
    assert np.isclose(row.weight_temporal_projection, p.temporal_projection)
    assert np.isclose(row.weight_cosine, p.cosine)

    # relative_1 at lag 1 of the profile is the flow's relative_1; lag 0 is 1
    prof = pd.read_csv(out / "profile.csv")
    merged = prof[prof.lag == 1].merge(flow, on=["neuron", "seed", "point", "layer"])
    assert np.allclose(merged.relative, merged.relative_1)
    assert np.allclose(prof[prof.lag == 0].relative, 1.0)
    fs = pd.read_csv(out / "flow_summary.csv")
    assert len(fs) == 2 * 2 * 17 and (fs.seeds == 1).all()
