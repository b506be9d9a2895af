"""Fréchet distance between Gaussian fits of two feature sets (FID, FVD).

``d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`` with the trace of the matrix square
root computed as ``sum sqrt(eig(sqrt(S1) S2 sqrt(S1)))`` (a symmetric PSD matrix, so the
eigenvalues are real; small negative round-off values are clipped to 0). Same value as
pytorch-fid's ``scipy.linalg.sqrtm`` formula, without its complex-number fallback. Everything
in float64.

:class:`FeatureStats` accumulates features (any number of (n, D) batches) into the sums
needed for the mean and the unbiased covariance (``np.cov`` convention, n - 1). While a set
has no more vectors than dimensions it also keeps them, and :meth:`FeatureStats.distance` then
uses the exact low-rank form ``tr (S1 S2)^(1/2) = ||A B^T||_* / sqrt((n1 - 1)(n2 - 1))``
(A, B the centred features; nuclear norm = sum of singular values), which avoids a
(D, D) eigendecomposition (2048 x 2048 for FID) on small evaluations.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FeatureStats", "frechet_distance", "psd_sqrt"]


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigendecomposition)."""
    vals, vecs = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Squared Fréchet distance of N(mu1, sigma1) and N(mu2, sigma2) (D,), (D, D)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(f"statistics differ in shape: {mu1.shape}/{s1.shape} vs {mu2.shape}/{s2.shape}")
    root1 = psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean, 0.0))


class FeatureStats:
    """Running mean / covariance of D-dimensional features."""

    def __init__(self):
        self.n = 0
        self._sum = None
        self._outer = None
        self._rows: list | None = []

    def add(self, feats) -> None:
        x = np.asarray(feats, dtype=np.float64)
        x = x.reshape(len(x), -1)
        if self._sum is None:
            self._sum, self._outer = np.zeros(x.shape[1]), np.zeros((x.shape[1], x.shape[1]))
        self.n += len(x)
        self._sum += x.sum(axis=0)
        self._outer += x.T @ x
        if self._rows is not None:
            self._rows.append(x)
            if self.n > x.shape[1]:
                self._rows = None  # enough vectors: the covariance route is as cheap

    def centred(self) -> np.ndarray | None:
        """The centred features (n, D) while they are kept, else None."""
        if self._rows is None or self.n < 2:
            return None
        x = np.concatenate(self._rows)
        return x - x.mean(axis=0)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, have {self.n}")
        mu = self._sum / self.n
        cov = (self._outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, cov

    def distance(self, other: "FeatureStats") -> float:
        a, b = self.centred(), other.centred()
        if a is None or b is None:
            return frechet_distance(*self.mean_cov(), *other.mean_cov())
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
        c1, c2 = self.n - 1, other.n - 1
        diff = self._sum / self.n - other._sum / other.n
        nuclear = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(c1 * c2)
        return float(max(diff @ diff + (a * a).sum() / c1 + (b * b).sum() / c2 - 2 * nuclear, 0.0))
