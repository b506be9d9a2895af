"""Reconstruction and distribution metrics: PSNR, SSIM, Fréchet distance, and the FID / FVD /
CSIM / LPIPS networks loaded from (randomly initialised) files in their published formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from keysync.evaluation.arcface import ARCFACE_TEMPLATE, align_faces, five_points, load_arcface, IResNet
from keysync.evaluation.frechet import FeatureStats, frechet_distance
from keysync.evaluation.i3d import I3D, clip_starts, load_i3d
from keysync.evaluation.image_metrics import PSNR_CAP, psnr_frames, ssim_frames
from keysync.evaluation.inception import InceptionFID, load_inception_fid
from keysync.evaluation.lpips import LPIPS, load_lpips
from keysync.evaluation.synthetic import render_face_clip, syllable_signal
from keysync.models.checkpoints import CheckpointError

pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest.single_thread


@pytest.fixture(scope="module")
def frames():
    video, landmarks = render_face_clip(syllable_signal(6, seed=2), size=96, seed=3)
    return video, landmarks


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                elif t.ndim >= 2:
                    t.copy_(torch.randn(t.shape, generator=g) / max(1, t[0].numel()) ** 0.5)
                else:
                    t.copy_(0.1 * torch.randn(t.shape, generator=g) + (1.0 if name.endswith("weight") else 0.0))
    return model.eval()


# ---------------------------------------------------------------------------- PSNR / SSIM
def test_psnr_ssim_identity_and_reference(frames):
    video, _ = frames
    assert np.all(psnr_frames(video, video) == PSNR_CAP)
    assert np.all(np.isinf(psnr_frames(video, video, cap=None)))
    assert np.allclose(ssim_frames(video, video), 1.0)
    noisy = np.clip(video.astype(int) + np.random.default_rng(0).integers(-12, 13, video.shape), 0, 255).astype(np.uint8)
    mse = np.mean((noisy.astype(float) - video) ** 2, axis=(1, 2, 3))
    assert np.allclose(psnr_frames(noisy, video), 10 * np.log10(255 ** 2 / mse))
    assert (ssim_frames(noisy, video) < 0.999).all()
    with pytest.raises(ValueError, match="same shape"):
        psnr_frames(video[:2], video[:3])
    import skimage.metrics as skimage
    ref = [skimage.structural_similarity(noisy[i], video[i], channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=255) for i in range(len(video))]
    assert np.abs(ssim_frames(noisy, video) - ref).max() < 1e-9


# ---------------------------------------------------------------------------- Fréchet distance
def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 6))
    a, b = FeatureStats(), FeatureStats()
    a.add(x[:200]), a.add(x[200:])
    b.add(x)
    assert a.distance(b) == pytest.approx(0.0, abs=1e-8)
    mu, cov = a.mean_cov()
    assert np.allclose(mu, x.mean(0)) and np.allclose(cov, np.cov(x, rowvar=False))
    # few vectors (n <= D): the low-rank route equals the covariance route
    small1, small2 = FeatureStats(), FeatureStats()
    small1.add(rng.standard_normal((5, 40))), small2.add(rng.standard_normal((7, 40)) * 2 + 1)
    assert small1.centred() is not None
    assert small1.distance(small2) == pytest.approx(frechet_distance(*small1.mean_cov(), *small2.mean_cov()), rel=1e-7)
    assert a.centred() is None  # 500 vectors of 6 dims: covariance only
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    expected = 3.0 + sum(v1 + v2 - 2 * np.sqrt(v1 * v2) for v1, v2 in [(1, 4), (4, 1), (9, 1)])
    assert frechet_distance(np.zeros(3), s1, np.array([1.0, 1.0, 1.0]), s2) == pytest.approx(expected)
    import scipy.linalg as linalg
    c1, c2 = np.cov(rng.standard_normal((50, 5)), rowvar=False), np.cov(rng.standard_normal((50, 5)) * 2, rowvar=False)
    ref = np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real)
    assert frechet_distance(np.zeros(5), c1, np.zeros(5), c2) == pytest.approx(ref, rel=1e-6)


# ---------------------------------------------------------------------------- networks + weight files
def test_fid_inception_loads_and_extracts(tmp_path, frames):
    model = _randomise(InceptionFID())
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "pt_inception.pth")
    loaded = load_inception_fid(tmp_path / "pt_inception.pth")
    x = torch.from_numpy(frames[0][:2]).float().permute(0, 3, 1, 2) / 255
    with torch.no_grad():
        feats = loaded(x)
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all() and (feats >= 0).all()
    del state["Mixed_7c.branch_pool.conv.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="Mixed_7c.branch_pool"):
        load_inception_fid(tmp_path / "broken.pth")


def test_i3d_loads_and_extracts(tmp_path):
    model = _randomise(I3D())
    assert "Mixed_5c.b3b.conv3d.weight" in model.state_dict() and "logits.conv3d.bias" in model.state_dict()
    torch.save(model.state_dict(), tmp_path / "i3d.pt")
    loaded = load_i3d(tmp_path / "i3d.pt")
    with torch.no_grad():
        feats = loaded.features(torch.rand(1, 3, 9, 112, 112) * 2 - 1)  # resized to 224 inside
    assert feats.shape == (1, 400) and torch.isfinite(feats).all()
    assert clip_starts(40) == [0, 16] and clip_starts(15) == []


def test_arcface_alignment_and_embedding(tmp_path, frames):
    video, landmarks = frames
    import cv2

    pts = five_points(landmarks)[0]
    matrix = cv2.estimateAffinePartial2D(pts, ARCFACE_TEMPLATE, method=cv2.LMEDS)[0]
    moved = pts @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(moved - ARCFACE_TEMPLATE).max() < 6.0  # the cartoon face fits the template
    faces = align_faces(video[:2], landmarks[:2])
    assert faces.shape == (2, 112, 112, 3)
    model = _randomise(IResNet((1, 1, 1, 1)))
    torch.save(model.state_dict(), tmp_path / "backbone.pth")
    loaded = load_arcface(tmp_path / "backbone.pth")
    assert [len(getattr(loaded, f"layer{i}")) for i in range(1, 5)] == [1, 1, 1, 1]
    emb = loaded.embed(faces)
    assert emb.shape == (2, 512) and torch.allclose(emb.norm(dim=1), torch.ones(2))
    assert float((loaded.embed(faces[:1]) * emb[:1]).sum()) == pytest.approx(1.0, abs=1e-5)


def test_lpips_loads_from_two_files(tmp_path, frames):
    model = _randomise(LPIPS())
    with torch.no_grad():
        for lin in model.lins:  # the published linear heads are non-negative
            lin.model[1].weight.abs_()
    torch.save({f"features.{k}": v for k, v in model.features.state_dict().items()}, tmp_path / "alexnet.pth")
    torch.save({f"lin{k}": v for k, v in model.lins.state_dict().items()}, tmp_path / "alex.pth")
    loaded = load_lpips(tmp_path / "alex.pth", tmp_path / "alexnet.pth")
    video = frames[0]
    assert np.allclose(loaded.frames(video[:2], video[:2]), 0.0)
    noisy = np.clip(video[:2].astype(int) + 40, 0, 255).astype(np.uint8)
    assert (loaded.frames(noisy, video[:2]) > 0).all()
    with pytest.raises(CheckpointError):
        load_lpips(tmp_path / "alexnet.pth", tmp_path / "alexnet.pth")
