"""Lecture walk-through: how far back in time does the gradient reach through one LIF and one CLIF layer?

One layer of 4000 neurons, driven by the same noisy input current for T = 12 steps; the loss reads the
spikes of the last step only. Every bit of gradient at an earlier step t therefore travelled back
through the neurons' own state (the temporal path), and ``relative_k`` - the share of the last step's
spatial gradient that survives k steps back - says how far it gets.

* LIF (soft reset, rectangle surrogate of width theta): one step back multiplies the gradient by
  ``gamma = 1 - 1/tau`` outside the surrogate window and by exactly 0 inside it
  (du[t+1]/du[t] = gamma * (1 - theta * sg) = 0 there), so each step back loses the neurons near threshold.
* CLIF adds a second state m[t] that feeds the reset; the gradient also flows through m, and the
  in-window factor is no longer 0, so more of it survives.

    python examples/lif_vs_clif.py            # prints the numbers
    python examples/lif_vs_clif.py --out fig  # also saves fig/lif_vs_clif_lags.png (the report's lag plot)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import gradflow
from gradflow.report.notebook import plot_recorder


def measure(kind: str, x: torch.Tensor, tau: float):
    """Record one layer of ``kind`` neurons driven by ``x`` ``[T, N]``; the loss reads the last step only."""
    layer = gradflow.build_neuron(kind, tau=tau)          # rectangle surrogate, alpha = theta = 1
    x = x.clone().requires_grad_(True)
    with gradflow.record(layer, pairs=True, weights=False) as rec:
        spikes = layer(x)
        readout = torch.linspace(-1.0, 1.0, x.shape[1])   # a fixed readout of the last step's spikes
        (spikes[-1] * readout).sum().backward()
    return rec


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--T", type=int, default=12)
    p.add_argument("--neurons", type=int, default=4000)
    p.add_argument("--tau", type=float, default=2.0)
    p.add_argument("--out", default=None, help="directory for the figure (optional)")
    args = p.parse_args(argv)

    g = torch.Generator().manual_seed(0)
    x = 0.6 + 0.4 * torch.randn(args.T, args.neurons, generator=g)   # the same current for both layers
    gamma = 1 - 1 / args.tau
    recs = {kind: measure(kind, x, args.tau) for kind in ("lif", "clif")}

    print(f"T = {args.T}, {args.neurons} neurons, tau = {args.tau} (gamma = {gamma:.2f}); loss at the last step only\n")
    for kind, rec in recs.items():
        ps = rec.per_step()
        print(f"{kind.upper():5s} firing rate {ps.firing_rate.mean():.2f}, inside the surrogate window "
              f"{ps.window_fraction.mean():.2f} of the time")
    print("\nrelative_k: share of the last step's spatial gradient that is still there k steps back")
    print("  k    LIF     CLIF    gamma^k")
    profiles = {kind: rec.lags().set_index("lag")["relative"] for kind, rec in recs.items()}
    for k in range(0, min(args.T, 7)):
        print(f"{k:3d}  {profiles['lif'][k]:.4f}  {profiles['clif'][k]:.4f}  {gamma ** k:.4f}")
    for kind, prof in profiles.items():
        h = gradflow.stats.half_life(prof.to_numpy())
        print(f"{kind.upper():5s} half-life {h:.2f} steps")
    lif = recs["lif"].per_step()
    inside = lif.window_fraction.mean()
    print(f"\nLIF's first step back keeps at most gamma = {gamma:.2f} (outside the window) and nothing inside it; "
          f"with {inside:.0%} of the neurons inside, relative_1 = {profiles['lif'][1]:.2f}. "
          f"CLIF keeps {profiles['clif'][1]:.2f}: its reset passes gradient inside the window too.")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for kind, rec in recs.items():
            plot_recorder(rec, "lags").savefig(out / f"{kind}_lags.png", dpi=100)
        print("figures:", ", ".join(str(out / f"{k}_lags.png") for k in recs))


if __name__ == "__main__":
    main()
