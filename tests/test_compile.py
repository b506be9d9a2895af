"""``keysync dub --compile on``: torch.compile'd UNets and VAE decoder give the eager frames
within float tolerance (tiny models, CPU inductor)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from keysync.pipelines.dubbing_models import TINY_CONFIGS, load_dubbing_models
from keysync.pipelines.planning import plan_keysync
from keysync.pipelines.tiny import write_tiny_dubbing_weights
from keysync.pipelines.two_stage import ConditioningStreams, SamplingOptions, generate_frames

pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest.single_thread


def test_compiled_models_match_eager(tmp_path):
    models = load_dubbing_models(write_tiny_dubbing_weights(tmp_path), keyframe_config=TINY_CONFIGS[0],
                                 interpolation_config=TINY_CONFIGS[1])
    models.use_fast_sampler(2)
    n = 14  # one segment; one shape per network (each new shape is another compilation, ~1 min on CPU)
    g = torch.Generator().manual_seed(1)
    dk = models.keyframe_audio(np.zeros(2560, np.float32), 16000, 4).shape[-1]
    di = models.interpolation_audio(np.zeros(2560, np.float32), 16000, 4).shape[-1]
    streams = ConditioningStreams(torch.randn((n, 4, 16, 16), generator=g),
                                  (torch.rand((n, 1, 16, 16), generator=g) > 0.5).float(),
                                  torch.randn((n, 2, dk), generator=g), torch.randn((n, 2, di), generator=g),
                                  torch.randn((4, 16, 16), generator=g))
    plan = plan_keysync(n)

    def run():
        frames = generate_frames(plan, streams, models.keyframe, models.interpolation,
                                 torch.Generator().manual_seed(5), SamplingOptions(decode_batch=n, interpolation_chunk=3 * n,
                                                                                 progress=False))
        return torch.stack([f for _, f in frames]).int()

    eager = run()
    models.compile()
    assert type(models.keyframe.model.diffusion_model).__name__ == "OptimizedModule"
    compiled = run()
    diff = (compiled - eager).abs()
    assert compiled.shape == eager.shape == (n, 32, 32, 3)
    assert diff.max() <= 2 and diff.float().mean() < 0.1, (diff.max(), diff.float().mean())
