"""The face_alignment FAN + SFD backend, loaded from local weight files (random weights here:
the published files cannot be downloaded in tests)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from face_alignment.detection.sfd.net_s3fd import s3fd  # noqa: E402
from face_alignment.models import FAN  # noqa: E402

from keysync.face.backend_fan import FANBackend, decode_heatmaps, load_fan  # noqa: E402
from keysync.face.landmarks import create_backend, extract_landmarks  # noqa: E402


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fan")
    torch.manual_seed(0)
    torch.save(FAN(1).state_dict(), d / "2DFAN1-random.pth.tar")  # one hourglass keeps it fast
    torch.save(s3fd().state_dict(), d / "s3fd-random.pth")
    return d / "2DFAN1-random.pth.tar", d / "s3fd-random.pth"


def test_decode_heatmaps_geometry():
    hm = np.zeros((1, 68, 64, 64), np.float32)
    hm[0, :, 30, 20] = 1.0  # row 30, column 20
    hm[0, :, 30, 21] = 0.5  # larger right neighbour: +0.25 in x
    hm[0, :, 29, 20] = 0.5  # larger upper neighbour: -0.25 in y
    pts, scores = decode_heatmaps(hm, np.array([[100.0, 80.0]]), np.array([1.0]))
    span = 200.0
    expected = np.array([(21 + 0.25 - 0.5) * span / 64 + 100 - span / 2,
                         (31 - 0.25 - 0.5) * span / 64 + 80 - span / 2])
    assert pts.shape == (1, 68, 2) and np.allclose(pts[0], expected, atol=1e-4)
    assert np.allclose(scores, 1.0)


def test_load_fan_reads_the_number_of_stacks(weight_files):
    net = load_fan(weight_files[0])
    assert net.num_modules == 1 and not net.training


def test_fan_backend_runs_offline_from_local_files(weight_files):
    be = create_backend("fan", fan_weights=weight_files[0], detector_weights=weight_files[1],
                        detector_threshold=0.0, max_faces=1)
    assert isinstance(be, FANBackend)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (1, 128, 160, 3), dtype=np.uint8)
    out = be.detect(frames)
    assert len(out) == 1 and 1 <= len(out[0]) <= 1
    cand = out[0][0]
    assert cand.points.shape == (68, 2) and np.isfinite(cand.points).all() and cand.box.shape == (4,)
    track = extract_landmarks(frames, be, progress=False)
    assert track.points.shape == (1, 68, 2) and track.found.all()


def test_missing_weight_files_say_where_to_get_them(tmp_path, weight_files):
    with pytest.raises(FileNotFoundError, match="2DFAN4-11f355bf06"):
        FANBackend(tmp_path / "missing.pth.tar", weight_files[1])
    with pytest.raises(FileNotFoundError, match="SFD"):
        FANBackend(weight_files[0], tmp_path / "missing.pth")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_torchscript_archive_is_accepted(tmp_path, weight_files):
    """The older published FAN file (2DFAN4-cd938726ad.zip) is a TorchScript archive."""
    net = FAN(1).eval()
    with torch.no_grad():
        traced = torch.jit.trace(net, torch.zeros(1, 3, 256, 256), check_trace=False)
    path = tmp_path / "2DFAN1-random.zip"
    traced.save(str(path))
    loaded = load_fan(path)
    assert isinstance(loaded, torch.jit.ScriptModule)
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        a, b = net(x), loaded(x)
    a = a[-1] if isinstance(a, (list, tuple)) else a
    b = b[-1] if isinstance(b, (list, tuple)) else b
    assert torch.allclose(a, b, atol=1e-5)
