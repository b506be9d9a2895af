"""Known landmarks (a .npy file or an array) used in place of a detector."""

from __future__ import annotations

import numpy as np
import pytest

from keysync.face.landmarks import create_backend, extract_landmarks


def _points(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.uniform(20, 40, (68, 2)).astype(np.float32)
    return np.stack([base + i for i in range(n)])


def test_file_backend_gives_the_rows_in_order_and_fills_gaps(tmp_path):
    pts = _points(6)
    pts[3] = 0  # "no face" in frame 3
    np.save(tmp_path / "lm.npy", pts)
    backend = create_backend("file", points=tmp_path / "lm.npy")
    frames = np.zeros((6, 64, 64, 3), np.uint8)
    track = extract_landmarks(frames, backend, batch_size=4, smooth_sigma=0.0, progress=False)
    assert track.found.tolist() == [True, True, True, False, True, True]
    assert np.allclose(track.points[[0, 1, 2, 4, 5]], pts[[0, 1, 2, 4, 5]])
    assert np.allclose(track.points[3], (pts[2] + pts[4]) / 2, atol=1e-4)  # filled from its neighbours
    again = extract_landmarks(frames, backend, smooth_sigma=0.0, progress=False)  # reset() starts over
    assert np.allclose(again.points, track.points)


def test_file_backend_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="landmarks file not found"):
        create_backend("file", points=tmp_path / "missing.npy")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="not a readable .npy"):
        create_backend("file", points=tmp_path / "bad.npy")
    with pytest.raises(ValueError, match=r"\(N, 68, 2\)"):
        create_backend("file", points=np.zeros((4, 5, 2)))
    backend = create_backend("file", points=_points(2))
    with pytest.raises(ValueError, match="more frames than the landmarks file"):
        extract_landmarks(np.zeros((3, 64, 64, 3), np.uint8), backend, progress=False)


def test_dub_command_takes_a_landmarks_file_for_one_video_only(tmp_path, capsys):
    from keysync.cli.main import main

    assert main(["dub", "--filelist", str(tmp_path), "--output_folder", str(tmp_path / "o"),
                 "--landmarks_file", str(tmp_path / "lm.npy")]) == 2
    assert "--landmarks_file belongs to one video" in capsys.readouterr().err
