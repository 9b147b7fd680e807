"""The digits task: scikit-learn's real 8x8 images, a fixed stratified split, static over T."""

import sys

import numpy as np
import pytest
import torch

from gradflow.errors import UsageError
from gradflow.tasks import TASKS, make_task
from gradflow.tasks import digits as digits_mod
from gradflow.tasks.digits import DIGITS_TOTAL, Digits, load_digits_arrays

pytest.importorskip("sklearn")


def test_split_sizes_are_fixed_disjoint_and_stratified():
    task = Digits(T=3)
    assert task.split_size("train") == DIGITS_TOTAL - 400 and task.split_size("test") == 400
    _, labels = load_digits_arrays()
    train, test = digits_mod._split_indices(labels, 400, 0)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == DIGITS_TOTAL
    per_class = np.bincount(labels[test], minlength=10)
    assert per_class.min() >= 39 and per_class.max() <= 41            # 400 * (174..183) / 1797
    other, _ = digits_mod._split_indices(labels, 400, 1)
    assert not np.array_equal(train, other)                             # split_seed changes the split


def test_images_are_the_real_digits_scaled_to_unit_range():
    task = Digits(normalize=0)
    images, labels = load_digits_arrays()
    train, _ = digits_mod._split_indices(labels, 400, 0)
    x, y = task.arrays("train")
    assert x.shape == (len(train), 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    np.testing.assert_allclose(x[:, 0].numpy() * 16.0, images[train], atol=1e-5)
    np.testing.assert_array_equal(y.numpy(), labels[train])


def test_normalised_with_training_split_statistics():
    x, _ = Digits().arrays("train")
    assert abs(float(x.mean())) < 1e-5 and float(x.std()) == pytest.approx(1.0, abs=1e-3)
    raw, _ = Digits(normalize=0).arrays("test")
    xt, _ = Digits().arrays("test")
    ref, _ = Digits(normalize=0).arrays("train")
    mean, std = float(ref.double().mean()), float(ref.double().std(unbiased=False))
    torch.testing.assert_close(xt, (raw - mean) / std, atol=1e-5, rtol=0)


def test_sample_is_seeded_distinct_and_bounded():
    task = Digits(T=4)
    x1, y1 = task.sample(50, seed=3)
    x2, y2 = task.sample(50, seed=3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(task.sample(50, seed=4)[0], x1)
    full_x, full_y = task.sample(task.split_size("test"), seed=0, split="test")
    ref_x, ref_y = task.arrays("test")
    assert sorted(full_y.tolist()) == sorted(ref_y.tolist())           # a permutation of the split
    per_image = [torch.sort(a.flatten(1).double().sum(1)).values for a in (full_x, ref_x)]
    torch.testing.assert_close(per_image[0], per_image[1])
    with pytest.raises(UsageError, match="400 images"):
        task.sample(401, split="test")


def test_upsampling_and_channels_for_conv_nets():
    task = Digits(size=32, channels=3)
    x, _ = task.sample(4, seed=0, split="test")
    assert x.shape == (4, 3, 32, 32) and task.input_shape == (3, 32, 32)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    small, _ = Digits().sample(4, seed=0, split="test")
    # bilinear upsampling by 4 keeps each image's mean up to the border effect
    np.testing.assert_allclose(x[:, 0].mean((1, 2)).numpy(), small[:, 0].mean((1, 2)).numpy(), atol=0.08)
    with pytest.raises(UsageError, match="channels must be 1 or 3"):
        Digits(channels=2)
    with pytest.raises(UsageError, match="size"):
        Digits(size=4)


def test_static_task_scoring_and_config():
    task = Digits(T=5)
    assert not task.time_major and task.readout is None and task.chance == pytest.approx(0.1)
    again = Digits(**{k: v for k, v in task.config.items() if k != "name"})
    assert again.config == task.config and torch.equal(again.sample(3)[0], task.sample(3)[0])
    logits = torch.zeros(5, 2, 10)
    logits[:, 0, 3] = 1.0
    logits[:, 1, 7] = 1.0
    assert task.accuracy(logits, torch.tensor([3, 1])) == 0.5


def test_registered_as_a_builtin_task():
    assert TASKS["digits"] is Digits
    task = make_task("digits", T=2)
    assert isinstance(task, Digits) and make_task(**task.config).config == task.config


def test_missing_scikit_learn_says_how_to_install(monkeypatch):
    load_digits_arrays.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    try:
        with pytest.raises(UsageError, match="pip install scikit-learn"):
            Digits().sample(2)
    finally:
        load_digits_arrays.cache_clear()
