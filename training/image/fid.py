"""Frechet distance between two sets of feature vectors (the FID formula, any features).

Each set is summarised as a Gaussian: its mean m and covariance C. The distance is the
Frechet (2-Wasserstein) distance between the two Gaussians,

    |m1 - m2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)),

0 for identical statistics, growing with any difference of mean or spread. FID (Heusel
et al., 2017) is this formula on Inception-v3 pool features; here the features are
another network's (training/image/classifier.py), so the numbers are not FIDs and do
not compare with published ones, only with each other under the same classifier.

Small-sample caveat: the estimate is biased upwards, and the bias grows as the sample
shrinks (it is far from 0 even for two samples of the same distribution). With 172
images against 64 features the bias is large: compare figures only at the same sample
sizes, and read them beside a real-vs-real floor measured at that size.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.linalg

Features = npt.NDArray[np.floating]


def statistics(features: Features) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean [D] and sample covariance [D, D] of features [N, D] (N >= 2)."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need [N >= 2, D] features, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(a: Features, b: Features) -> float:
    """Frechet distance between the Gaussians fitted to feature sets a [N, D] and b [M, D]."""
    mean_a, cov_a = statistics(a)
    mean_b, cov_b = statistics(b)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():
        # A singular product (fewer samples than features) can defeat sqrtm; a tiny
        # ridge on both covariances, as the reference FID code does, makes it defined.
        ridge = 1e-6 * np.eye(cov_a.shape[0])
        root = scipy.linalg.sqrtm((cov_a + ridge) @ (cov_b + ridge))
    # sqrtm of a product of (possibly singular) covariances picks up tiny imaginary
    # parts from round-off; they mean nothing, so the real part is kept.
    root = np.real(root)
    distance = float(np.sum((mean_a - mean_b) ** 2)
                     + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root))
    return max(distance, 0.0)   # round-off can leave a tiny negative for equal sets
