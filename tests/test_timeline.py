"""Index maps between source, model (25 fps) and output timelines."""

import numpy as np
import pytest

from keysync.pipelines.timeline import (model_frames_for_audio, model_to_source, output_frames_for_audio,
                                        output_to_model, output_to_source, pingpong)


def test_pingpong_folds_back_and_forth():
    assert pingpong(np.arange(12), 4).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1]
    assert pingpong(np.arange(3), 1).tolist() == [0, 0, 0]
    # consecutive frames never jump by more than one
    folded = pingpong(np.arange(1000), 37)
    assert np.abs(np.diff(folded)).max() == 1 and folded.min() == 0 and folded.max() == 36
    with pytest.raises(ValueError, match="no frames"):
        pingpong(np.arange(3), 0)


def test_lengths_follow_the_audio():
    assert model_frames_for_audio(16000 * 5) == 125
    assert model_frames_for_audio(641) == 2
    assert output_frames_for_audio(16000 * 5, 30) == 150
    with pytest.raises(ValueError, match="empty"):
        model_frames_for_audio(0)


def test_rate_conversion_maps_nearest_frames():
    # 30 fps source, 25 fps model: model frame i shows source frame round(1.2 i)
    m2s = model_to_source(125, 120, 30.0)
    assert m2s[:6].tolist() == [0, 1, 2, 4, 5, 6]
    assert m2s.max() == 119 and m2s[-1] == pingpong(np.array([149]), 120)[0]
    o2m = output_to_model(150, 30.0, 125)
    assert o2m[:7].tolist() == [0, 1, 2, 3, 3, 4, 5] and o2m[-1] == 124
    assert output_to_source(150, 120).tolist()[118:123] == [118, 119, 118, 117, 116]
    # 25 fps everywhere: identities
    assert model_to_source(50, 50, 25.0).tolist() == list(range(50))
    assert output_to_model(50, 25.0, 50).tolist() == list(range(50))


@pytest.mark.parametrize("fps", [23.976, 24.0, 29.97, 30.0, 50.0, 59.94])
def test_no_audio_drift_over_an_hour(fps):
    """Output frame o (shown at o/fps s) uses the face generated for model frame m, made from
    audio [0.04 m, 0.04 m + 0.04) s: over an hour the offset never exceeds half a model frame."""
    n_out = int(3600 * fps)
    m = output_to_model(n_out, fps, n_model=90_001)
    offset = np.arange(n_out) / fps - m * 0.04
    assert np.abs(offset).max() <= 0.02 + 1e-9
    assert abs(offset[-1000:].mean() - offset[:1000].mean()) < 1e-3  # no drift: the end is like the start
