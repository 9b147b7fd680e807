"""Closed-form theory of temporal gradient decay in spiking neurons (numpy/scipy only).

``gradflow.theory`` explains what the recorder measures: the one-step temporal factors of LIF and
CLIF in closed form, the exact factorisation of a layer's transport into leak, reset survival and
CLIF's ``m`` path (:func:`exact_transport`), the default ``window`` predictor of ``relative_k``
from a few per-step population statistics (:func:`transport_inputs`, :func:`predict_transport`),
the comparison models (Gaussian, independent, Markov, Monte Carlo) and the ``theory.csv`` table
that sets measurement beside prediction. Derivations and numbered formulas: ``docs/theory.md``.

This package never imports torch.

>>> from gradflow.theory import lif_eps
>>> lif_eps([0.2, 1.0], tau=2.0).tolist()     # outside / inside the rectangle window
[0.5, 0.0]
"""

from .compare import THEORY_COLUMNS, measured_relative, predict_window, theory_table
from .curves import eps_curves, half_life_table, lag_curves
from .decay import (
    MODELS,
    CurrentModel,
    decay_rate,
    fit_current_model,
    half_life,
    horizon,
    predict_lags,
    predict_relative,
    rate_half_life,
    rate_horizon,
    simulate_currents,
    transport_factors,
)
from .factors import (
    ClifJacobian,
    MembraneTrajectory,
    NeuronConfig,
    clif_backward,
    clif_jacobian,
    clif_memory,
    gamma_of,
    lif_backward,
    lif_eps,
    pair_factors,
    reset_factor,
    simulate_neuron,
)
from .gaussian import (
    fit_gaussian_membrane,
    gaussian_eps_moments,
    gaussian_firing_rate,
    gaussian_lag_profile,
    gaussian_window_fraction,
)
from .inwindow import clif_exceeds_lif, clif_near_threshold_factor, clif_window_alpha
from .surrogates import DEFAULT_ALPHA, SURROGATES, TheoryError, heaviside, resolve_alpha, sg, sg_support
from .transport import TransportFactors, exact_transport, one_step_jacobian
from .window import (
    INPUT_KEYS,
    ZONE_EDGES,
    add_transport_inputs,
    predict_transport,
    predict_transport_many,
    transport_inputs,
    transport_summary,
    transport_summary_many,
    window_zones,
    zone_width,
)

__all__ = [
    "DEFAULT_ALPHA",
    "INPUT_KEYS",
    "MODELS",
    "SURROGATES",
    "THEORY_COLUMNS",
    "ZONE_EDGES",
    "ClifJacobian",
    "CurrentModel",
    "MembraneTrajectory",
    "NeuronConfig",
    "TheoryError",
    "TransportFactors",
    "add_transport_inputs",
    "clif_backward",
    "clif_exceeds_lif",
    "clif_jacobian",
    "clif_memory",
    "clif_near_threshold_factor",
    "clif_window_alpha",
    "decay_rate",
    "eps_curves",
    "exact_transport",
    "fit_current_model",
    "fit_gaussian_membrane",
    "gamma_of",
    "gaussian_eps_moments",
    "gaussian_firing_rate",
    "gaussian_lag_profile",
    "gaussian_window_fraction",
    "half_life",
    "half_life_table",
    "heaviside",
    "horizon",
    "lag_curves",
    "lif_backward",
    "lif_eps",
    "measured_relative",
    "one_step_jacobian",
    "pair_factors",
    "predict_lags",
    "predict_relative",
    "predict_transport",
    "predict_transport_many",
    "predict_window",
    "rate_half_life",
    "rate_horizon",
    "reset_factor",
    "resolve_alpha",
    "sg",
    "sg_support",
    "simulate_currents",
    "simulate_neuron",
    "theory_table",
    "transport_factors",
    "transport_inputs",
    "transport_summary",
    "transport_summary_many",
    "window_zones",
    "zone_width",
]
