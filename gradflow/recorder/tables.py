"""The recorder's tables, built once from the finished passes (docs/reference.md, Tables).

Every function takes the finished :class:`~.decompose.LayerPass` list sorted by (step, layer_index)
and moves the device statistics to the host in one transfer per table. Column lists come from
:mod:`gradflow.schema`; extra columns follow them. Under ``torch.distributed`` the sums (squared
norms, counts) of all ranks are added before anything is derived from them, and :func:`samples`
gathers every rank's samples.
"""

from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Optional

import numpy as np
import pandas as pd
import torch

from .. import schema, stats
from ..errors import UsageError
from ..theory.window import ZONE_EDGES
from .decompose import EPS_SQ, EPS_SUM, NONFINITE, SPATIAL, SPIKES, TEMPORAL, TOTAL, TZERO, WINDOW, LayerPass

__all__ = ["LayerSamples", "Columns", "per_step", "pairs", "lags", "weights", "samples", "transport_inputs",
           "layer_info", "per_step_columns", "pairs_columns", "lags_columns", "weights_columns",
           "layer_info_columns"]


class LayerSamples(NamedTuple):
    """Per-sample statistics of one layer over every recorded backward pass (``n`` samples in all).

    ``spatial_sq``, ``temporal_sq``, ``total_sq`` ``[n, T]``: ``||P[t]_i||^2``, ``||temporal[t]_i||^2``,
    ``||delta[t]_i||^2`` (squared L2 norm over sample i's neurons at step t); ``pair_sq``
    ``[n, T, K+1]``: ``||pair[t, t+k]_i||^2`` (0 where ``t + k >= T``; None without pairs);
    ``spikes``, ``window`` ``[n, T]``: counts of spikes and of elements inside the surrogate window;
    ``numel``: elements per sample and step (firing rate = spikes / numel); ``step`` ``[n]``: the
    backward pass each sample came from. Passes with fewer steps than the layer's largest ``T`` are
    padded with NaN.
    """

    spatial_sq: np.ndarray
    temporal_sq: np.ndarray
    total_sq: np.ndarray
    pair_sq: Optional[np.ndarray]
    spikes: np.ndarray
    window: np.ndarray
    numel: int
    step: np.ndarray


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _allreduce(t: torch.Tensor) -> np.ndarray:
    """Sum over ranks (a no-op outside torch.distributed), as float64 numpy."""
    if _distributed():
        t = t.clone()
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    return t.cpu().numpy()


def _ids(passes: List[LayerPass], counts: List[int]) -> dict:
    return {
        "step": np.concatenate([np.full(c, ps.step) for ps, c in zip(passes, counts)]),
        "layer": [ps.name for ps, c in zip(passes, counts) for _ in range(c)],
        "layer_index": np.concatenate([np.full(c, ps.index) for ps, c in zip(passes, counts)]),
    }


#: A table as columns: column name -> numpy array (or list), in column order, all of one length.
Columns = Dict[str, object]


def _ordered(cols: dict, names) -> Columns:
    """``cols`` in the column order ``names``."""
    return {c: cols[c] for c in names}


def per_step(passes: List[LayerPass]) -> pd.DataFrame:
    """One row per (step, layer, t): ``schema.PER_STEP_COLUMNS``, then ``eps_mean``, ``eps_rms``, ``T``,
    ``tau`` and ``samples`` (the DataFrame of :func:`per_step_columns`)."""
    return pd.DataFrame(per_step_columns(passes))


def per_step_columns(passes: List[LayerPass]) -> Columns:
    """The columns of :func:`per_step`, in order (numpy arrays; ``layer`` and ``neuron`` lists).

    Norms are the square roots of the per-sample squared norms summed over samples (and ranks);
    ``eps_mean``/``eps_rms`` are the mean and RMS over elements of ``eps[t] = du[t+1]/du[t]`` at fixed
    input, for CLIF also at fixed ``m[t-1]`` (= ``a * dv[t]/du[t]``; 0 at ``t = T-1`` and before a
    truncation cut).
    """
    parts = []
    for ps in passes:
        s = ps.per_sample.sum(2)  # [5, T]
        numel = torch.full((ps.T,), float(ps.n * ps.E), dtype=torch.float64, device=s.device)
        count = torch.full((ps.T,), float(ps.n), dtype=torch.float64, device=s.device)
        parts.append(torch.stack([numel, s[SPIKES], s[WINDOW], s[TOTAL], s[SPATIAL], s[TEMPORAL],
                                  ps.per_t[:, TZERO], ps.per_t[:, NONFINITE], ps.per_t[:, EPS_SUM],
                                  ps.per_t[:, EPS_SQ], count], dim=1))
    a = _allreduce(torch.cat(parts))
    n = np.where(a[:, 0] > 0, a[:, 0], np.nan)
    counts = [ps.T for ps in passes]
    cols = _ids(passes, counts)
    cols["neuron"] = [ps.kind.name for ps in passes for _ in range(ps.T)]
    cols["t"] = np.concatenate([np.arange(ps.T) for ps in passes])
    cols.update(
        firing_rate=a[:, 1] / n, window_fraction=a[:, 2] / n, grad_total_norm=np.sqrt(a[:, 3]),
        grad_spatial_norm=np.sqrt(a[:, 4]), grad_temporal_norm=np.sqrt(a[:, 5]),
        temporal_zero_fraction=a[:, 6] / n, nonfinite=a[:, 7].astype(np.int64), eps_mean=a[:, 8] / n,
        eps_rms=np.sqrt(a[:, 9] / n), T=np.concatenate([np.full(ps.T, ps.T) for ps in passes]),
        tau=np.concatenate([np.full(ps.T, _tau(ps)) for ps in passes]), samples=a[:, 10].astype(np.int64),
    )
    return _ordered(cols, list(schema.PER_STEP_COLUMNS) + ["eps_mean", "eps_rms", "T", "tau", "samples"])


def _tau(ps: LayerPass) -> float:
    k = float(ps.k)
    return math.inf if k == 0 else 1.0 / k


def _pair_sums(passes: List[LayerPass]) -> List[np.ndarray]:
    """``[T, K+1]`` squared pair norms summed over samples and ranks, per pass."""
    sums = [ps.pair_sq.sum(2) for ps in passes]
    flat = _allreduce(torch.cat([s.reshape(-1) for s in sums]))
    out, i = [], 0
    for s in sums:
        out.append(flat[i:i + s.numel()].reshape(tuple(s.shape)))
        i += s.numel()
    return out


def pairs(passes: List[LayerPass]) -> pd.DataFrame:
    """One row per (step, layer, t, t_source) with ``t <= t_source <= t + max_lag``: ``||pair[t, t_source]||``."""
    return pd.DataFrame(pairs_columns(passes))


def pairs_columns(passes: List[LayerPass]) -> Columns:
    """The columns of :func:`pairs`, in order."""
    sums = _pair_sums(passes)
    t, k, norm = [], [], []
    for q in sums:
        T, K1 = q.shape
        tt, kk = np.meshgrid(np.arange(T), np.arange(K1), indexing="ij")
        keep = (tt + kk) < T
        t.append(tt[keep])
        k.append(kk[keep])
        norm.append(np.sqrt(q[keep]))
    cols = _ids(passes, [len(v) for v in t])
    t, k = np.concatenate(t), np.concatenate(k)
    cols.update(t=t, t_source=t + k, lag=k, norm=np.concatenate(norm))
    return _ordered(cols, schema.PAIRS_COLUMNS)


def lags(passes: List[LayerPass]) -> pd.DataFrame:
    """One row per (step, layer, lag): ``norm`` = ``G_k`` (RMS over the ``T - k`` pairs at lag k) and
    ``relative`` = the transport ratio ``sqrt(sum_t ||pair[t, t+k]||^2 / sum_t ||P[t+k]||^2)``
    (:func:`gradflow.stats.relative_from_pair_sq`: sources without a spatial gradient add nothing)."""
    return pd.DataFrame(lags_columns(passes))


def lags_columns(passes: List[LayerPass]) -> Columns:
    """The columns of :func:`lags`, in order."""
    sums = _pair_sums(passes)
    counts = [q.shape[1] for q in sums]
    cols = _ids(passes, counts)
    cols["lag"] = np.concatenate([np.arange(c) for c in counts])
    cols["norm"] = np.concatenate([stats.lag_norm_from_pair_sq(q) for q in sums])
    cols["relative"] = np.concatenate([stats.relative_from_pair_sq(q) for q in sums])
    return _ordered(cols, schema.LAGS_COLUMNS)


def weights(passes: List[LayerPass]) -> pd.DataFrame:
    """One row per (step, layer, param): the spatial/temporal split of the parameter's gradient through
    the layer, ``schema.WEIGHTS_COLUMNS`` then ``spatial_sq``, ``temporal_sq``, ``inner``
    (``||g_s||^2``, ``||g_t||^2``, ``<g_s, g_t>``).

    ``total_norm = ||g_s + g_t||``; ``spatial_projection``/``temporal_projection`` =
    ``<g_part, g>/||g||^2`` (sum to 1), ``cosine`` = ``<g_s, g_t>/(||g_s|| ||g_t||)``
    (:func:`gradflow.stats.projections`). Under torch.distributed the squared norms and inner products
    of the ranks are summed (root-sum-square of per-rank norms, not the norm of the reduced gradient).
    NaN where the split could not be made (a region that cannot be called without side effects).
    """
    cols = weights_columns(passes)
    return pd.DataFrame(cols) if len(cols["step"]) else pd.DataFrame(columns=list(cols))


def weights_columns(passes: List[LayerPass]) -> Columns:
    """The columns of :func:`weights`, in order (empty ones when no layer has a weight split)."""
    cols = list(schema.WEIGHTS_COLUMNS) + ["spatial_sq", "temporal_sq", "inner"]
    with_w = [ps for ps in passes if ps.weight_sq is not None and ps.weight_names]
    if not with_w:
        return {c: [] for c in cols}
    sq = _allreduce(torch.cat([ps.weight_sq for ps in with_w]))
    counts = [len(ps.weight_names) for ps in with_w]
    d = _ids(with_w, counts)
    d["param"] = [name for ps in with_w for name in ps.weight_names]
    ss, tt, st = sq[:, 0], sq[:, 1], sq[:, 2]
    gg = np.maximum(ss + tt + 2.0 * st, 0.0)
    sn, tn = np.sqrt(ss), np.sqrt(tt)
    d["spatial_norm"], d["temporal_norm"], d["total_norm"] = sn, tn, np.sqrt(gg)
    denom = sn + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        d["temporal_share"] = np.where(denom > 0, tn / np.where(denom > 0, denom, 1.0), np.nan)
    proj = stats.projections(np.nan_to_num(ss, nan=0.0), np.nan_to_num(tt, nan=0.0), np.nan_to_num(st, nan=0.0))
    bad = ~np.isfinite(ss)
    for name, value in zip(("spatial_projection", "temporal_projection", "cosine"), proj):
        d[name] = np.where(bad, np.nan, np.asarray(value, dtype=np.float64))
    d["spatial_sq"], d["temporal_sq"], d["inner"] = ss, tt, st
    return _ordered(d, cols)


def _gather_layers(local: Dict[str, dict]) -> List[tuple]:
    """``(name, entry)`` per layer in layer_index order; under torch.distributed every rank's ``parts``
    are appended (rank order) to one entry per layer. An entry is ``{"index", "parts", ...}``."""
    if _distributed():
        gathered = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, local)
        merged: Dict[str, dict] = {}
        for part in gathered:
            for name, d in part.items():
                merged.setdefault(name, dict(d, parts=[]))["parts"].extend(d["parts"])
        local = merged
    return sorted(local.items(), key=lambda item: item[1]["index"])


def samples(passes: List[LayerPass], pairs_enabled: bool) -> Dict[str, LayerSamples]:
    """Per layer (in layer_index order): a :class:`LayerSamples` over all recorded passes (and ranks)."""
    local: Dict[str, dict] = {}
    for ps in passes:
        d = local.setdefault(ps.name, {"index": ps.index, "parts": [], "E": ps.E})
        ps_arr = ps.per_sample.cpu().numpy()  # [5, T, n]
        pair = None if ps.pair_sq is None else ps.pair_sq.permute(2, 0, 1).cpu().numpy()  # [n, T, K+1]
        d["parts"].append((ps_arr.transpose(0, 2, 1), pair, np.full(ps.n, ps.step)))
    out = {}
    for name, d in _gather_layers(local):
        T = max(a.shape[2] for a, _, _ in d["parts"])
        K1 = max((pq.shape[2] for _, pq, _ in d["parts"] if pq is not None), default=0)
        per = np.concatenate([_pad(a, T, axis=2) for a, _, _ in d["parts"]], axis=1)  # [5, n, T]
        pair = None
        if pairs_enabled:
            pair = np.concatenate([_pad(_pad(pq, T, axis=1), K1, axis=2) for _, pq, _ in d["parts"]], axis=0)
        out[name] = LayerSamples(per[SPATIAL], per[TEMPORAL], per[TOTAL], pair, per[SPIKES], per[WINDOW],
                                 int(d["E"]), np.concatenate([s for _, _, s in d["parts"]]))
    return out


def transport_inputs(passes: List[LayerPass]) -> Dict[str, Dict[str, np.ndarray]]:
    """Per layer (layer_index order): the window model's per-sample sums of all passes (and ranks),
    concatenated along the sample axis, plus the shared ``zone_edges`` (:mod:`.transport`)."""
    local: Dict[str, dict] = {}
    for ps in passes:
        if ps.transport is None:
            continue
        d = local.setdefault(ps.name, {"index": ps.index, "parts": []})
        d["parts"].append({k: v.cpu().numpy() for k, v in ps.transport.items()})
    out = {}
    for name, d in _gather_layers(local):
        if len({part["count"].shape[1] for part in d["parts"]}) > 1:
            raise UsageError(f"Layer {name} was recorded with different numbers of time steps; the window "
                             "model's inputs of such passes cannot be pooled.")
        merged_arrays = {k: np.concatenate([part[k] for part in d["parts"]]) for k in d["parts"][0]}
        merged_arrays["zone_edges"] = np.asarray(ZONE_EDGES, dtype=np.float64)
        out[name] = merged_arrays
    return out


def _pad(a: np.ndarray, size: int, axis: int) -> np.ndarray:
    if a.shape[axis] == size:
        return a
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, size - a.shape[axis])
    return np.pad(a.astype(np.float64), widths, constant_values=np.nan)


#: Columns of :func:`layer_info`, in order.
_LAYER_INFO_COLUMNS = ("layer", "layer_index", "neuron", "tau", "v_threshold", "surrogate", "alpha", "reset",
                       "v_reset", "detach_reset", "decay_input", "m_grad", "truncate")


def layer_info(passes: List[LayerPass]) -> pd.DataFrame:
    """One row per recorded layer: its constants at the latest recorded pass (PLIF: the tau it used)."""
    return pd.DataFrame(layer_info_columns(passes))


def layer_info_columns(passes: List[LayerPass]) -> Columns:
    """The columns of :func:`layer_info`, in order (rows in layer_index order)."""
    rows = {}
    for ps in passes:
        p = ps.params
        rows[ps.name] = dict(
            layer=ps.name, layer_index=ps.index, neuron=ps.kind.name, tau=_tau(ps), v_threshold=p.v_threshold,
            surrogate=p.surrogate.name, alpha=p.surrogate.alpha, reset="soft" if p.v_reset is None else "hard",
            v_reset=p.v_reset, detach_reset=p.detach_reset, decay_input=p.decay_input, m_grad=p.m_grad,
            truncate=ps.module.truncate,
        )
    ordered = sorted(rows.values(), key=lambda r: r["layer_index"])
    return {c: [r[c] for r in ordered] for c in _LAYER_INFO_COLUMNS}
