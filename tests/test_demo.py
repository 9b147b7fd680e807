"""``gradflow demo``: finishes quickly and writes one self-contained page."""

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from gradflow.demo import neuron_traces, run_demo
from gradflow.errors import UsageError
from gradflow.report import page
from gradflow_cli.main import app

SMALL = ["--T", "3", "--batch", "16", "--width", "16", "--trace-steps", "12", "--dpi", "30"]


def test_demo_writes_a_self_contained_page(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--out", str(out), *SMALL])
    assert r.exit_code == 0, r.output
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 4
    # nothing to fetch: no external scripts, styles or images
    assert not re.search(r'(src|href)="(https?:)?//', page)
    for words in ("One neuron", "temporal factor", "pair[t, t']", "Decay with the lag"):
        assert words in page
    assert list(out.iterdir()) == [out / "index.html"]
    # refuses to overwrite without --force
    again = CliRunner().invoke(app, ["demo", "--out", str(out), *SMALL])
    assert again.exit_code == 2 and "--force" in again.output


def test_traces_follow_the_neuron_equations():
    x = np.array([0.6, 0.6, 0.6, 1.2, 0.0])
    tr = neuron_traces(x, tau=2.0)
    lif = tr[tr.neuron == "lif"]
    # u = 0.6, 0.9, 1.05 (spike, v = 0.05), 1.225 (spike, v = 0.225), 0.1125
    np.testing.assert_allclose(lif.u, [0.6, 0.9, 1.05, 1.225, 0.1125])
    assert lif.s.tolist() == [0, 0, 1, 1, 0]
    # rectangle surrogate with alpha = theta: eps is gamma outside the window, 0 inside
    np.testing.assert_allclose(lif.factor, [0.0, 0.0, 0.0, 0.0, 0.5])
    clif = tr[tr.neuron == "clif"]
    assert clif.m.notna().all() and lif.m.isna().all()
    # CLIF's factor inside the window is negative, not zero
    assert (clif.factor[clif.u.between(0.5, 1.5)] < 0).all()


@pytest.mark.parametrize("bad,msg", [(["--tau", "1"], "tau"), (["--trace-steps", "1"], "--trace-steps must be at least 2")])
def test_demo_bad_options(tmp_path, bad, msg):
    r = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), *SMALL, *bad])
    assert r.exit_code == 2 and msg in r.output


def test_demo_directory_is_written_atomically_and_replaced_only_with_force(tmp_path, monkeypatch):
    kw = dict(T_trace=4, batch=8, width=8, T=2, dpi=20)
    out = tmp_path / "demo"

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as m:
        m.setattr(page, "render_figure", broken)
        with pytest.raises(RuntimeError, match="disk on fire"):
            run_demo(out, **kw)
    assert list(tmp_path.iterdir()) == []                  # no half-written page, no temporary litter
    first = run_demo(out, **kw)
    with pytest.raises(UsageError, match="--force"):
        run_demo(out, **kw)
    again = run_demo(out, force=True, **kw)
    assert first.path == again.path == str(out / "index.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
    assert set(first.tables) == {"traces", "per_step", "pairs", "lags", "theory"}
