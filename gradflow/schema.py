"""The names gradflow's tables, neurons, surrogates and figures share (torch-free).

One module owns every column list, neuron kind, surrogate name and default, model name and colour, so
that the recorder, the theory, the report toolkit and the CLI cannot drift apart. It imports nothing
but the standard library: :mod:`gradflow.theory` and the CLI's ``--help`` read it without torch.

Every column is defined in words in ``docs/reference.md``; the tables themselves are pandas DataFrames
whose first columns are exactly the tuples below, in this order (extra columns may follow).

>>> from gradflow import schema
>>> schema.LAGS_COLUMNS
('step', 'layer', 'layer_index', 'lag', 'norm', 'relative')
>>> schema.SURROGATE_DEFAULT_ALPHA["atan"]
2.0
"""

from __future__ import annotations

from typing import Dict, Tuple

__all__ = [
    "NEURON_KINDS",
    "SURROGATES",
    "SURROGATE_DEFAULT_ALPHA",
    "DEFAULTS",
    "BACKENDS",
    "RESETS",
    "LOSSES",
    "OPTIMIZERS",
    "ARCHITECTURES",
    "TASKS",
    "RECORD_MODES",
    "THEORY_NEURONS",
    "PER_STEP_COLUMNS",
    "PAIRS_COLUMNS",
    "LAGS_COLUMNS",
    "WEIGHTS_COLUMNS",
    "SUMMARY_COLUMNS",
    "SUMMARY_INTERVAL_METRICS",
    "THEORY_COLUMNS",
    "TABLES",
    "RUN",
    "NEURON_COLORS",
    "OTHER_COLOR",
    "neuron_color",
]

# ----------------------------------------------------------------------------- neurons and surrogates

#: Neuron kinds of the built-in architectures (``neuron`` column values; ``if`` is LIF without leak,
#: ``tau = inf``). Adapted snnTorch layers report their own kinds (``lif_ral``, ``lif_noreset``).
NEURON_KINDS: Tuple[str, ...] = ("lif", "clif", "plif", "if")

#: Surrogate gradients and their default width parameter ``alpha`` (see docs/reference.md, Neurons).
SURROGATE_DEFAULT_ALPHA: Dict[str, float] = {"rectangle": 1.0, "sigmoid": 4.0, "atan": 2.0, "triangle": 1.0}

#: Surrogate names, in the order help texts list them.
SURROGATES: Tuple[str, ...] = tuple(SURROGATE_DEFAULT_ALPHA)

#: Implementations of a neuron's multi-step forward/backward.
BACKENDS: Tuple[str, ...] = ("torch", "fused")

#: Defaults of every neuron option (the paper's setting).
DEFAULTS: Dict[str, object] = {
    "neuron": "lif",
    "tau": 2.0,
    "v_threshold": 1.0,
    "v_reset": None,
    "surrogate": "rectangle",
    "alpha": SURROGATE_DEFAULT_ALPHA["rectangle"],
    "detach_reset": False,
    "decay_input": False,
    "backend": "torch",
}

#: Neuron reset modes (``v_reset`` None = soft).
RESETS: Tuple[str, ...] = ("soft", "hard")

# ----------------------------------------------------------------------------- workflows

#: Losses (``ce``: mean over t of cross-entropy of the step-t logits; ``tet`` adds the TET MSE term).
LOSSES: Tuple[str, ...] = ("ce", "tet")

#: Optimisers of ``gradflow train``.
OPTIMIZERS: Tuple[str, ...] = ("sgd", "adam")

#: Built-in architectures (``gradflow.models.build``).
ARCHITECTURES: Tuple[str, ...] = (
    "mlp", "snn5_noAP", "spiking_resnet18", "spiking_resnet34", "spiking_vgg11_bn", "spiking_vgg13_bn",
)

#: Built-in tasks (``gradflow.tasks``).
TASKS: Tuple[str, ...] = ("delay", "shapes", "digits", "cifar10", "cifar100")

#: Neuron choices of ``gradflow theory`` (``both`` draws LIF and CLIF side by side).
THEORY_NEURONS: Tuple[str, ...] = ("lif", "clif", "both")

#: Whether a model is recorded in eval or train mode (batch norm statistics, dropout).
RECORD_MODES: Tuple[str, ...] = ("eval", "train")

# ----------------------------------------------------------------------------- recorder tables

#: ``per_step``: one row per (step, layer, t).
PER_STEP_COLUMNS: Tuple[str, ...] = (
    "step", "layer", "layer_index", "neuron", "t", "firing_rate", "window_fraction",
    "grad_total_norm", "grad_spatial_norm", "grad_temporal_norm", "temporal_zero_fraction", "nonfinite",
)

#: ``pairs``: one row per (step, layer, t, t_source) with ``t_source >= t``.
PAIRS_COLUMNS: Tuple[str, ...] = ("step", "layer", "layer_index", "t", "t_source", "lag", "norm")

#: ``lags``: one row per (step, layer, lag).
LAGS_COLUMNS: Tuple[str, ...] = ("step", "layer", "layer_index", "lag", "norm", "relative")

#: ``weights``: one row per (step, layer, param).
WEIGHTS_COLUMNS: Tuple[str, ...] = (
    "step", "layer", "layer_index", "param", "spatial_norm", "temporal_norm", "total_norm", "temporal_share",
    "spatial_projection", "temporal_projection", "cosine",
)

# ----------------------------------------------------------------------------- report tables

#: The column a comparison of several checkpoints puts first.
RUN = "run"

#: Summary metrics that carry ``<metric>_ci_low`` / ``<metric>_ci_high`` (95% bootstrap intervals).
SUMMARY_INTERVAL_METRICS: Tuple[str, ...] = (
    "temporal_share", "weight_temporal_projection", "relative_1", "half_life", "decay_rate", "theory_error",
)

#: ``summary``: one row per (run, layer) (``run`` only in comparisons): the metrics, their intervals,
#: then how they were computed (``steps``: backward passes; ``resampled``: ``samples`` or ``passes``), then
#: the window model's per-layer numbers that explain the decay (docs/theory.md §6), with intervals.
SUMMARY_COLUMNS: Tuple[str, ...] = (
    "layer", "layer_index", "neuron", "T", "samples",
    "firing_rate", "window_fraction",
    "temporal_share", "weight_temporal_projection", "relative_1", "half_life", "decay_rate",
    "predicted_half_life", "theory_error",
) + tuple(f"{m}_ci_{side}" for m in SUMMARY_INTERVAL_METRICS for side in ("low", "high")) + (
    "steps", "resampled", "max_lag", "weight_temporal_share", "weight_cosine",
    "temporal_zero_fraction", "nonfinite", "tau",
    "one_step_survival", "one_step_survival_ci_low", "one_step_survival_ci_high",
    "in_window_before", "in_window_before_ci_low", "in_window_before_ci_high",
    "window_occupancy", "window_occupancy_ci_low", "window_occupancy_ci_high",
    "firing_rate_ci_low", "firing_rate_ci_high", "window_fraction_ci_low", "window_fraction_ci_high",
)

#: ``theory``: one row per (layer, lag); ``predicted_relative_<model>`` columns may follow.
THEORY_COLUMNS: Tuple[str, ...] = (
    "layer", "layer_index", "lag", "measured_relative", "predicted_relative", "relative_error",
    "fitted_decay_rate", "predicted_decay_rate", "measured_half_life", "predicted_half_life",
    "measured_horizon", "predicted_horizon", "model",
)

#: The minimum columns each table must carry for the report toolkit.
TABLES: Dict[str, Tuple[str, ...]] = {
    "per_step": PER_STEP_COLUMNS,
    "pairs": PAIRS_COLUMNS,
    "lags": LAGS_COLUMNS,
    "weights": WEIGHTS_COLUMNS,
    "theory": ("layer", "layer_index", "lag", "measured_relative", "predicted_relative", "relative_error"),
}

# ----------------------------------------------------------------------------- colours

#: One colour per neuron kind (Okabe-Ito, safe for colour-blind readers).
NEURON_COLORS: Dict[str, str] = {"lif": "#0072B2", "clif": "#D55E00", "plif": "#009E73", "if": "#CC79A7"}

#: The colour of anything that is not a known neuron kind.
OTHER_COLOR = "#555555"


def neuron_color(neuron) -> str:
    """The colour of a neuron kind (case-insensitive); grey for unknown or missing kinds.

    >>> neuron_color("CLIF"), neuron_color(None)
    ('#D55E00', '#555555')
    """
    if neuron is None:
        return OTHER_COLOR
    return NEURON_COLORS.get(str(neuron).lower(), OTHER_COLOR)
