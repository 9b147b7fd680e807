"""Watch a SpikingJelly network while it trains: gradient flow through time, recorded every N steps.

A two-layer SpikingJelly LIF network learns a delayed-recall task: the class is shown only at the first
two of T time steps (a burst on one of four input groups), noise follows, and the readout is averaged
over all steps, so the network has to carry the cue through its membrane state. gradflow swaps the
SpikingJelly neurons for its own (same forward, same gradients: ``gradflow.convert``) and
``gradflow.watch`` records every ``--every``-th training step of this ordinary loop into ``--out``.
Afterwards ``gradflow report OUT`` (or ``--report`` here) draws how far the gradient reaches back in
time, per layer, as training goes on.

    python examples/watch_spikingjelly.py --steps 300 --every 25 --out runs/sj --report

Runs in seconds on a laptop CPU.
"""

from __future__ import annotations

import argparse

import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

import gradflow
import gradflow.watch
from gradflow.report.training_page import write_training_report


def make_batch(n: int, T: int, g: torch.Generator):
    """Inputs ``[T, n, 16]`` (time-major) and labels ``[n]``: class c bursts on inputs 4c..4c+3 at t = 0, 1."""
    y = torch.randint(0, 4, (n,), generator=g)
    x = (torch.rand(T, n, 16, generator=g) < 0.1).float()            # background noise spikes
    cue = torch.zeros(n, 16)
    cue[torch.arange(n).repeat_interleave(4), (4 * y).repeat_interleave(4) + torch.arange(4).repeat(n)] = 1.0
    x[:2] = torch.maximum(x[:2], cue)
    return x, y


def build(tau: float) -> nn.Module:
    """The network as a SpikingJelly user writes it (multi-step mode), converted to gradflow neurons."""
    net = nn.Sequential(
        layer.Linear(16, 64), neuron.LIFNode(tau=tau, surrogate_function=surrogate.ATan()),
        layer.Linear(64, 64), neuron.LIFNode(tau=tau, surrogate_function=surrogate.ATan()),
        layer.Linear(64, 4))
    functional.set_step_mode(net, "m")
    return gradflow.convert(net)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300, help="training steps")
    p.add_argument("--every", type=int, default=25, help="record every N-th step")
    p.add_argument("--T", type=int, default=8, help="time steps")
    p.add_argument("--tau", type=float, default=4.0, help="membrane time constant")
    p.add_argument("--out", default="runs/spikingjelly-watch", help="run directory (resumed if it exists)")
    p.add_argument("--report", action="store_true", help="write OUT/report afterwards")
    args = p.parse_args(argv)

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    net = build(args.tau)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    # the one line gradflow adds to the loop:
    with gradflow.watch(net, every=args.every, out=args.out, n_resamples=200) as w:
        for step in range(args.steps):
            x, y = make_batch(64, args.T, g)
            loss = nn.functional.cross_entropy(net(x).mean(0), y)    # readout averaged over time
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % max(args.steps // 5, 1) == 0:
                print(f"step {step:4d}  loss {loss.item():.3f}")
    x, y = make_batch(512, args.T, g)
    with torch.no_grad():
        accuracy = (net(x).mean(0).argmax(1) == y).float().mean().item()
    print(f"test accuracy {accuracy:.2f} (chance 0.25); {w.passes} steps recorded in {args.out}")

    s = gradflow.watch.read_run(args.out).summary
    for layer_name, d in s.groupby("layer", sort=False):
        first, last = d.iloc[0], d.iloc[-1]
        print(f"{layer_name}: half-life {first.half_life:.2f} -> {last.half_life:.2f} steps, "
              f"relative_1 {first.relative_1:.2f} -> {last.relative_1:.2f} "
              f"[{last.relative_1_ci_low:.2f}, {last.relative_1_ci_high:.2f}] (training steps "
              f"{int(first.train_step)} -> {int(last.train_step)})")
    if args.report:
        print("report:", write_training_report(args.out, force=True, max_theory_steps=3) / "index.html")


if __name__ == "__main__":
    main()
