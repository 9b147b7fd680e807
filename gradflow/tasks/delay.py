"""Delayed cue recall: a temporal-memory task whose difficulty is the delay ``D``.

Time line of one sample (``T = cue_len + delay + readout`` steps, input ``[T, N, F]``)::

    steps 0 .. cue_len-1               cue: the channels of the class group fire at every step
    steps cue_len .. cue_len+delay-1   distractor: Bernoulli(noise) spikes on every cue channel
    last `readout` steps               go: the go channel is on, distractor noise continues

Channels: ``num_classes`` groups of ``group`` cue channels, then one go channel, so
``F = num_classes * group + 1``. All inputs are 0/1 spikes. Distractor noise (probability ``noise``
per channel and step) runs on every cue channel through the whole sample, cue steps included.

Scoring: only the last ``readout`` steps are scored (:class:`~gradflow.tasks.base.Task`): the loss is
CE over those steps, the prediction the argmax of their mean logits. Chance accuracy is
``1 / num_classes`` (classes drawn uniformly).

Why only temporal credit assignment solves it: at the scored steps the input has the same
distribution for every class, so the answer exists only in the network's state, written at the cue
steps ``delay`` or more steps earlier. For a weight to learn to write the cue into that state, the
loss gradient must travel from the readout steps back to the cue steps through the neurons' state.
Cutting that path (``truncate=1``) leaves only the residue of the cue that a random network happens
to keep, which fades as the delay grows (measured in ``tests/test_tasks.py``).

>>> task = DelayedCue(delay=3, num_classes=4, group=2)
>>> x, y = task.sample(5, seed=0)
>>> tuple(x.shape), task.T, task.chance
((6, 5, 9), 6, 0.25)
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from .base import Task, check_float, check_int

__all__ = ["DelayedCue"]


class DelayedCue(Task):
    """Cue at the start, ``delay`` steps of distractor noise, answer at the end.

    Options: ``delay`` (D >= 0, the difficulty knob), ``num_classes`` (2..64, default 4),
    ``cue_len`` (steps of cue, default 2), ``readout`` (scored final steps, default 1),
    ``group`` (cue channels per class, default 4), ``noise`` (distractor spike probability per
    channel and step, default 0.1).
    """

    name = "delay"
    time_major = True

    def __init__(self, delay: int = 4, num_classes: int = 4, cue_len: int = 2, readout: int = 1,
                 group: int = 4, noise: float = 0.1):
        self.delay = check_int("delay", delay, 0, 10_000)
        self.num_classes = check_int("num_classes", num_classes, 2, 64)
        self.cue_len = check_int("cue_len", cue_len, 1, 10_000)
        self.readout = check_int("readout", readout, 1, 10_000)
        self.group = check_int("group", group, 1, 1024)
        self.noise = check_float("noise", noise, 0.0, 1.0)
        self.T = self.cue_len + self.delay + self.readout
        self.input_shape = (self.num_classes * self.group + 1,)

    def _options(self) -> Dict[str, Any]:
        return {"delay": self.delay, "num_classes": self.num_classes, "cue_len": self.cue_len,
                "readout": self.readout, "group": self.group, "noise": self.noise}

    def _draw(self, n: int, gen: torch.Generator):
        C, g, T = self.num_classes, self.group, self.T
        y = torch.randint(0, C, (n,), generator=gen)
        # distractor: Bernoulli spikes on every cue channel, all steps
        cue_ch = C * g
        x = torch.zeros(T, n, cue_ch + 1)
        x[:, :, :cue_ch] = (torch.rand(T, n, cue_ch, generator=gen) < self.noise).float()
        # cue: the class group fires at every cue step
        onehot = torch.nn.functional.one_hot(y, C).float().repeat_interleave(g, dim=1)  # [N, C*g]
        x[: self.cue_len, :, :cue_ch] = torch.maximum(x[: self.cue_len, :, :cue_ch], onehot)
        # go: the last channel marks the scored steps
        x[T - self.readout:, :, cue_ch] = 1.0
        return x, y
