"""Adapter: snnTorch ``Leaky`` -> gradflow's neuron equations, with snnTorch's own semantics and call.

snnTorch's ``Leaky`` (``beta``, ``threshold``; ``mem[-1] = 0``) differs from SpikingJelly's LIF in two
ways: it fires only at ``mem > threshold`` (``H(0) = 0``), and by default (``reset_delay=True``) the
spike of step ``t`` is subtracted from the *next* step's charge, computed from the previous potential
and detached (``r[t] = H(mem[t-1] - threshold)``)::

    subtract:  mem[t] = beta * mem[t-1] + x[t] - threshold * r[t]     -> kind "lif_ral"
    zero:      mem[t] = beta * (1 - r[t]) * mem[t-1] + x[t]           -> "lif", hard reset to 0, detach_reset
    none:      mem[t] = beta * mem[t-1] + x[t]                        -> kind "lif_noreset"
    spk[t] = H(mem[t] - threshold) * graded_spikes_factor             (mem[t] is what snnTorch returns)

With ``reset_delay=False`` the reset acts in the same step and is not detached, and the returned ``mem``
is the potential after it: ``zero`` is LIF's hard reset to 0 (``detach_reset=False``); ``subtract`` is
LIF's soft reset (``detach_reset=False``) as long as the potential after a reset stays below the
threshold; above it, snnTorch also subtracts the threshold in the next charge (its detached ``r[t]``)
and adds it back after firing, which the converted module reproduces:
``mem[t] = u[t] - (s[t] - r[t]) threshold`` with ``u[t]`` of kind "lif_ral". ``tau = 1 / (1 - beta)``; the one-step factors are in
:mod:`gradflow.neurons.extra` (``eps = beta`` for ``subtract`` and ``none``).

The converted module is a subclass of ``snntorch.Leaky`` that keeps the original's parameters and
buffers (``beta``, ``threshold``, ``graded_spikes_factor``: learned ones stay learnable, state_dict keys
are unchanged) and its call signature: ``spk, mem = lif(x, mem)``, or ``spk = lif(x)`` with
``init_hidden=True`` (``output=True`` returns both), ``reset_mem()``/``init_leaky()``, and
``snntorch.utils.reset(net)`` all work as before, so the user's own loop runs unchanged. Each call runs
one step of the gradflow kind (``kind.step``) under autograd, so outputs and the gradients of the input,
``beta`` (``learn_beta``), ``threshold`` (``learn_threshold``) and ``graded_spikes_factor`` equal
snnTorch's to float32 rounding, with identical spikes.

Surrogates: ``atan(alpha)`` (the default) -> ``atan``, ``sigmoid(slope)`` -> ``sigmoid`` with
``alpha = slope``, ``fast_sigmoid(slope)`` -> ``fast_sigmoid``. snnTorch's ``sigmoid`` computes
``slope e^{-slope x} / (e^{-slope x} + 1)^2``, which is NaN in float32 once ``slope * x < -88``
(``inf / inf``); gradflow's is the limit 0 there. Refused with one sentence: the other surrogates
(``triangular``, ``straight_through_estimator``, ``heaviside``, ``spike_rate_escape``, ``SSO``,
``LSO``, ``SFS``, custom), ``surrogate_disable``, ``inhibition``, ``state_quant``, a ``beta`` or
``threshold`` with one value per neuron, ``beta`` outside ``(0, 1)``, and every other snnTorch neuron
(``Synaptic``, ``Alpha``, ``RLeaky``, ``Lapicque``, ...).

Recording: the converted module is also a single-step gradflow neuron (``step_mode="s"``), so
``gradflow.record`` assembles its steps into sequences (:mod:`gradflow.recorder.single`): a step
continues the sequence when it receives the potential the previous step returned, anything else
(``init_leaky()``, ``utils.reset(net)``) starts a new one. With ``reset_mechanism="subtract"`` and
``reset_delay=False`` the recorder decomposes with LIF's soft-reset Jacobian, which is exact there: the
extra ``r[t]`` terms are detached constants.
"""

from __future__ import annotations

from torch import nn

from ..neurons import LIF_KIND, make_params
from ..neurons.extra import LIF_NORESET_KIND, LIF_RAL_KIND
from .common import library_classes, scalar, unsupported

__all__ = ["LIBRARY", "SUPPORTED", "claims", "convert_module", "surrogate_of"]

LIBRARY = "snnTorch"
SUPPORTED = ("Leaky",)
_PREFIXES = ("snntorch.",)

#: snnTorch surrogate factory -> (gradflow name, name of the factory's parameter).
_SURROGATES = {"atan": ("atan", "alpha"), "sigmoid": ("sigmoid", "slope"), "fast_sigmoid": ("fast_sigmoid", "slope")}


def claims(module: nn.Module) -> bool:
    """True for every snnTorch spiking neuron not converted yet (refused ones included)."""
    return (any(c.__name__ == "SpikingNeuron" for c in library_classes(module, _PREFIXES))
            and not getattr(module, "_gradflow_converted", False))


def surrogate_of(lif: nn.Module) -> tuple:
    """``(gradflow surrogate name, alpha)`` of an snnTorch neuron's ``spike_grad`` closure."""
    fn = lif.spike_grad
    qual = getattr(fn, "__qualname__", type(fn).__name__)
    factory = qual.split(".<locals>")[0]
    if factory not in _SURROGATES or getattr(fn, "__module__", "") != "snntorch.surrogate":
        known = ", ".join(_SURROGATES)
        raise unsupported(LIBRARY, lif, f"its surrogate {factory} has no closed form in gradflow (supported: {known})")
    name, param = _SURROGATES[factory]
    cells = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__ or ())))
    return name, scalar(LIBRARY, lif, f"surrogate {param}", cells.get(param))


def _options(lif: nn.Module) -> tuple:
    """``(kind, NeuronParams, mode)`` for an snnTorch Leaky (refusals as UsageErrors); ``mode`` is the
    reset as :class:`~gradflow.adapters._snntorch_leaky.GradflowLeaky` runs it."""
    for flag, what in (("surrogate_disable", "surrogate_disable=True"), ("inhibition", "inhibition=True"),
                       ("state_quant", "state_quant")):
        if getattr(lif, flag, False):
            raise unsupported(LIBRARY, lif, f"{what} has no gradflow counterpart")
    beta = scalar(LIBRARY, lif, "beta", lif.beta)
    if not 0.0 < beta < 1.0:
        raise unsupported(LIBRARY, lif, f"beta={beta:g} is outside (0, 1), where gradflow's tau = 1/(1 - beta) is defined")
    theta = scalar(LIBRARY, lif, "threshold", lif.threshold)
    scalar(LIBRARY, lif, "graded_spikes_factor", lif.graded_spikes_factor)
    sur, alpha = surrogate_of(lif)
    mechanism, delay = lif.reset_mechanism, bool(getattr(lif, "reset_delay", True))
    common = dict(tau=1.0 / (1.0 - beta), v_threshold=theta, surrogate=sur, alpha=alpha, fire_at_threshold=False)
    if mechanism == "none":
        return LIF_NORESET_KIND, make_params(**common), "none"
    if mechanism == "subtract":
        # without the delay snnTorch also takes the reset signal of the previous step off the charge and
        # adds it back after firing; that signal is 0 while the potential after a reset stays below
        # the threshold, where this is LIF's soft reset (detach_reset=False)
        return LIF_RAL_KIND, make_params(**common), ("subtract_delay" if delay else "subtract_now")
    if mechanism == "zero":
        return LIF_KIND, make_params(v_reset=0.0, detach_reset=delay, **common), ("zero_delay" if delay else "zero_now")
    raise unsupported(LIBRARY, lif, f"reset_mechanism={mechanism!r} is not one of subtract, zero, none")


def convert_module(module: nn.Module) -> nn.Module:
    """The snnTorch ``Leaky`` with gradflow's equations (module docstring); refusals for the rest.

    The converted module is built by :func:`gradflow.adapters._snntorch_leaky.make`, imported here
    because snnTorch is an optional dependency (not to break an import cycle).
    """
    if type(module).__name__ != "Leaky" or not type(module).__module__.startswith("snntorch"):
        raise unsupported(LIBRARY, module, "gradflow converts snnTorch's Leaky only")
    kind, params, mode = _options(module)
    record_kind, record_params = kind, params
    if mode == "subtract_now":  # the recorder's Jacobian: LIF's soft reset (the extra r[t] terms are constants)
        record_kind, record_params = LIF_KIND, params
    from ._snntorch_leaky import make

    return make(module, kind, params, mode, record_kind, record_params)
