"""Closed-form theory of temporal gradient decay in spiking neurons (numpy/scipy only).

``gradflow.theory`` predicts what the recorder measures (SPEC §2): the one-step temporal
factors of LIF and CLIF in closed form, the decay of ``relative_k`` with the lag ``k`` under
Gaussian, independent, Markov and Monte Carlo models, and the ``theory.csv`` table that sets
measurement beside prediction. Derivations and numbered formulas: ``docs/theory.md``.

This package never imports torch.

>>> from gradflow.theory import lif_eps
>>> lif_eps([0.2, 1.0], tau=2.0).tolist()     # outside / inside the rectangle window
[0.5, 0.0]
"""

from .compare import THEORY_COLUMNS, measured_relative, theory_table
from .curves import eps_curves, half_life_table, lag_curves
from .decay import (
    MODELS,
    CurrentModel,
    crossing_lag,
    decay_rate,
    fit_current_model,
    half_life,
    horizon,
    predict_lags,
    predict_relative,
    simulate_currents,
    transport_factors,
)
from .factors import (
    ClifJacobian,
    NeuronTrace,
    clif_backward,
    clif_jacobian,
    clif_near_threshold_factor,
    gamma_of,
    lif_backward,
    lif_eps,
    pair_factors,
    simulate_neuron,
)
from .gaussian import (
    fit_gaussian_membrane,
    gaussian_eps_moments,
    gaussian_firing_rate,
    gaussian_lag_profile,
    gaussian_window_fraction,
)
from .surrogates import DEFAULT_ALPHA, SURROGATES, TheoryError, heaviside, resolve_alpha, sg, sg_support

__all__ = [
    "DEFAULT_ALPHA",
    "MODELS",
    "SURROGATES",
    "THEORY_COLUMNS",
    "ClifJacobian",
    "CurrentModel",
    "NeuronTrace",
    "TheoryError",
    "clif_backward",
    "clif_jacobian",
    "clif_near_threshold_factor",
    "crossing_lag",
    "decay_rate",
    "eps_curves",
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
    "pair_factors",
    "predict_lags",
    "predict_relative",
    "resolve_alpha",
    "sg",
    "sg_support",
    "simulate_currents",
    "simulate_neuron",
    "theory_table",
    "transport_factors",
]
