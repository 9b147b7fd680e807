"""The gradient recorder: exact per-step spatial/temporal decomposition of every neuron layer (docs/reference.md).

For one neuron layer with pre-reset potentials ``u[t]`` and loss ``L``:

* ``delta[t] = dL/du[t]``, read during the backward (what autograd computes, untouched);
* ``P[t] = g_out[t] * sg(u[t] - theta)`` (spatial), ``g_out`` the gradient reaching the spike output;
* ``temporal[t]``: what reaches ``u[t]`` through the neuron's own state, from the recorded
  ``delta[t+1]`` through the kind's closed-form one-step Jacobian (:mod:`gradflow.neurons.adjoint`);
  ``P + temporal`` reproduces ``delta`` to rounding, and entries the Jacobian cuts are exactly 0;
* ``pair[t, t']``: ``P[t']`` carried back to step t by the same adjoint, so
  ``sum_{t' >= t} pair[t, t'] = delta[t]``;
* the weight split: each parameter's gradient through the layer, split into the part from ``P`` and
  the part from ``temporal``, without re-entering the user's graph (:mod:`.region`).

Statistics are kept per sample (:meth:`Recorder.samples`) so that every reported number can be
resampled. Layout: :mod:`.hooks` (life cycle, no side effects), :mod:`.decompose` (the device
arithmetic), :mod:`.region` (hook-free back-propagation through a layer's region), :mod:`.tables`
(DataFrames).

>>> import torch, gradflow
>>> lif = gradflow.LIF(tau=2.0)
>>> x = torch.randn(6, 100, requires_grad=True)
>>> with gradflow.record(lif) as rec:
...     lif(x).sum().backward()
>>> rec.per_step().shape[0], sorted(rec.lags().lag.unique().tolist())[:3]
(6, [0, 1, 2])
>>> rec.samples()["lif"].spatial_sq.shape                  # [samples, T]
(100, 6)
"""

from __future__ import annotations

from .. import schema
from .decompose import LayerPass, sample_bytes
from .hooks import Recorder, record
from .region import Region, RegionError, find_region
from .tables import LayerSamples

__all__ = [
    "record", "Recorder", "LayerSamples", "LayerPass", "sample_bytes", "Region", "RegionError", "find_region",
    "PER_STEP_COLUMNS", "PAIRS_COLUMNS", "LAGS_COLUMNS", "WEIGHTS_COLUMNS",
]

#: Table columns (:mod:`gradflow.schema`), as lists; extra columns follow them in the tables.
PER_STEP_COLUMNS = list(schema.PER_STEP_COLUMNS)
PAIRS_COLUMNS = list(schema.PAIRS_COLUMNS)
LAGS_COLUMNS = list(schema.LAGS_COLUMNS)
WEIGHTS_COLUMNS = list(schema.WEIGHTS_COLUMNS)
