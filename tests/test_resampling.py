"""History resampling (n2n_live.reprojection filter="catmull-rom") and the neighbourhood clamp (live/temporal.py):
what keeps a history sharp and unbiased where the camera moves by a fraction of a pixel."""
import math

import pytest
import torch

from n2n_live.live.temporal import TemporalAccumulator, neighbourhood_clamp
from n2n_live.reprojection import Geometry, reproject

from test_temporal import cam_at, footprint, wall

pytestmark = pytest.mark.numeric

W, H = 32, 24


def stripes(period=6.0, w=W, h=H):
    """A smooth periodic image (no aliasing at `period` pixels), HWC."""
    x = torch.arange(w, dtype=torch.float32) + 0.5
    row = 1.0 + 0.8 * torch.sin(2 * math.pi * x / period)
    return row[None, :, None].expand(h, w, 3).contiguous()


def shifted_stripes(shift, period=6.0):
    """stripes() sampled `shift` pixels to the right: what a camera panned by -shift pixels sees."""
    x = torch.arange(W, dtype=torch.float32) + 0.5 + shift
    row = 1.0 + 0.8 * torch.sin(2 * math.pi * x / period)
    return row[None, :, None].expand(H, W, 3)


def pan(fraction):
    a = cam_at()
    return wall(a), wall(cam_at(-fraction * footprint(a)))


def error(out, valid, truth):
    inner = valid.clone()
    inner[:, :2] = inner[:, -3:] = False  # the cubic needs two taps either side
    return float((out - truth)[inner].abs().mean())


@pytest.mark.parametrize("fraction", [0.25, 0.5])
def test_catmull_rom_keeps_a_sub_pixel_pan_sharper_than_bilinear(fraction):
    prev, cur = pan(fraction)
    truth = shifted_stripes(fraction)
    bil = error(*reproject(stripes(), prev, cur), truth)
    cr = error(*reproject(stripes(), prev, cur, filter="catmull-rom"), truth)
    assert cr < 0.5 * bil, (cr, bil)


def test_catmull_rom_is_exact_without_motion_and_falls_back_to_bilinear_beside_an_invalid_tap():
    g = wall(cam_at())
    img = stripes() + torch.rand(H, W, 3)
    out, valid = reproject(img, g, g, filter="catmull-rom")
    assert valid.all() and torch.allclose(out, img, atol=1e-4)
    prev, cur = pan(0.5)
    hole = prev.normal.clone()
    hole[10, 10] = torch.tensor([1.0, 0.0, 0.0])  # one previous pixel saw another surface
    holed = Geometry(prev.camera, prev.position, hole)
    cr, valid = reproject(img, holed, cur, filter="catmull-rom")
    bil, _ = reproject(img, holed, cur)
    near = torch.zeros(H, W, dtype=torch.bool)
    near[9:11, 9:11] = True  # pixels whose 4 x 4 footprint surely holds the bad tap
    far = torch.ones(H, W, dtype=torch.bool)
    far[6:15, 6:15] = False
    assert valid[near].all() and torch.equal(cr[near], bil[near])
    assert (cr[far & valid] - bil[far & valid]).abs().max() > 0.01


def test_catmull_rom_does_not_overshoot_a_bright_edge():
    # an emitter's border: the cubic's negative lobes would ring below zero and above the light
    img = torch.full((H, W, 3), 0.5)
    img[:, 16:] = 50.0
    prev, cur = pan(0.5)
    out, valid = reproject(img, prev, cur, filter="catmull-rom")
    assert float(out[valid].min()) >= 0.5 - 1e-5 and float(out[valid].max()) <= 50.0 + 1e-4


def test_the_clamp_bounds_a_lagging_history_by_this_frames_neighbourhood():
    raw = torch.full((H, W, 3), 1.0)
    raw[:, 16:] = 10.0
    history = torch.full((H, W, 3), 1.0)
    history[:, 14:] = 10.0  # the edge lags two pixels behind
    out = neighbourhood_clamp(history, raw)
    assert torch.equal(out[:, :15], raw[:, :15]) and torch.equal(out[:, 16:], raw[:, 16:])
    assert float(out[:, 15].mean()) == 10.0  # next to the edge the neighbourhood allows either value
    # on noise the bounds are wide: an unbiased history is rarely touched
    noisy = 1.0 + 0.5 * torch.randn(H, W, 3, generator=torch.Generator().manual_seed(0))
    assert float((neighbourhood_clamp(torch.ones(H, W, 3), noisy) != 1.0).float().mean()) < 0.01


def test_clamped_histories_stay_independent_per_stream():
    g = torch.Generator().manual_seed(1)
    acc = TemporalAccumulator(clamp=True, filter="catmull-rom")
    prev, cur = pan(0.3)
    from types import SimpleNamespace
    outs = []
    for k, geom in enumerate((prev, cur, prev, cur)):
        a, b = (1.0 + 0.3 * torch.randn(H, W, 3, generator=g) for _ in range(2))
        pair = SimpleNamespace(noisy_a=a, noisy_b=b, albedo=torch.ones(H, W, 3), normal=geom.normal,
                               position=geom.position, frame=k)
        outs.append(acc.update(pair, geom.camera))
    last = outs[-1]
    assert float(last.history.max()) == 4.0
    from n2n_live.live.temporal import noise_correlation
    assert abs(noise_correlation(last.noisy_a - 1.0, last.noisy_b - 1.0)) < 0.05
