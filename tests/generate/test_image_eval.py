"""The image eval's parts: the Frechet distance and the classifier's feature space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.image.classifier import FEATURES, Classifier
from training.image.fid import frechet_distance


@pytest.fixture
def features() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(200, 16))


def test_frechet_distance_of_a_set_with_itself_is_zero(features: np.ndarray) -> None:
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_grows_with_a_mean_shift(features: np.ndarray) -> None:
    distances = [frechet_distance(features, features + shift) for shift in (0.5, 1.0, 2.0)]
    assert distances == sorted(distances)
    # A shift of every coordinate by s moves the mean by s * sqrt(D): distance D s^2.
    assert distances[1] == pytest.approx(16.0, rel=1e-6)


def test_frechet_distance_is_symmetric(features: np.ndarray) -> None:
    other = np.random.default_rng(1).normal(1.0, 2.0, size=(150, 16))
    assert frechet_distance(features, other) == pytest.approx(frechet_distance(other, features))


def test_frechet_distance_sees_a_change_of_spread(features: np.ndarray) -> None:
    assert frechet_distance(features, 3.0 * features) > 1.0


def test_classifier_features_have_the_documented_size() -> None:
    torch.set_num_threads(1)
    model = Classifier(classes=95).eval()
    x = torch.zeros((3, 4, 32, 32))
    with torch.no_grad():
        assert model.features(x).shape == (3, FEATURES)
        assert model(x).shape == (3, 95)
