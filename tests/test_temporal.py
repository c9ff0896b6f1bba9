"""Temporal reuse (n2n_live.live.temporal, n2n_live.reprojection): reprojection, disocclusion tests, per-stream histories, resets."""
import math

import numpy as np
import pytest
import torch

from n2n_live.live.temporal import TemporalAccumulator, noise_correlation
from n2n_live.reprojection import Geometry, pixel_directions, project, reproject
from renderer.camera import Camera

pytestmark = pytest.mark.numeric  # make test reruns these under ATEN_CPU_CAPABILITY=default

W, H = 32, 24


def cam_at(x=0.0, fov=60.0):
    """Looking down +z from (x, 0, 0) at a wall z = 10 (facing the camera)."""
    return Camera([x, 0.0, 0.0], [x, 0.0, 10.0], [0.0, 1.0, 0.0], fov)


def wall(cam, depth=10.0, w=W, h=H):
    """Geometry of a wall at z = depth seen by cam (exact pixel-centre hits, normals towards the camera)."""
    d = pixel_directions(cam, w, h)
    origin = torch.as_tensor(cam.origin, dtype=torch.float32)
    t = (depth - origin[2]) / d[..., 2]
    pos = origin + t[..., None] * d
    normal = torch.zeros(h, w, 3)
    normal[..., 2] = -1.0
    return Geometry(cam, pos, normal)


def footprint(cam, depth=10.0, w=W):
    """World width of one pixel on the wall."""
    return 2 * depth * math.tan(math.radians(cam.fov_deg) / 2) / w


def pattern(h=H, w=W, c=3):
    return torch.arange(h * w * c, dtype=torch.float32).view(h, w, c)


def test_projecting_a_pixel_centre_gives_the_pixel():
    cam = cam_at()
    x, y, z = project(cam, W, H, wall(cam).position)
    assert torch.allclose(x, torch.arange(W)[None, :] + 0.5, atol=1e-3)
    assert torch.allclose(y, torch.arange(H)[:, None] + 0.5, atol=1e-3)
    assert (z > 0).all()


def test_still_camera_reprojection_is_the_identity():
    g = wall(cam_at())
    out, valid = reproject(pattern(), g, g)
    assert valid.all()
    assert torch.allclose(out, pattern(), atol=1e-2)


@pytest.mark.parametrize("k", [1, 3])
def test_a_known_pan_moves_the_image_by_the_known_number_of_pixels(k):
    a = cam_at()
    # Mitsuba's camera frame has +x as the image's left: moving to -x moves the camera k pixels to the right,
    # so the content moves k pixels to the left
    b = cam_at(-k * footprint(a))
    img = pattern()
    out, valid = reproject(img, wall(a), wall(b))
    assert valid[:, :-k].all() and not valid[:, -k:].any()  # the k new columns on the right were off-screen
    assert torch.allclose(out[:, :-k], img[:, k:], atol=0.05)


def test_mitsuba_positions_project_back_to_their_pixels():
    # the projection agrees with Mitsuba's camera (the sign of each image axis, the horizontal x_fov)
    from renderer.scene import load_scene
    from renderer.tracer import PathTracer
    from renderer.variant import choose_variant

    choose_variant()
    loaded = load_scene("cornell-box", 20, 14)
    cam = loaded.path.at(0)
    pair = PathTracer(loaded, spp=4).render_pair(cam, 0)
    inside = pair.normal.norm(dim=-1) > 0.99
    x, y, _ = project(cam, 20, 14, pair.position)
    assert inside.sum() > 100
    # box-filtered positions: the mean over the pixel's samples, within half a pixel of its centre
    assert (x - (torch.arange(20)[None, :] + 0.5))[inside].abs().max() < 0.5
    assert (y - (torch.arange(14)[:, None] + 0.5))[inside].abs().max() < 0.5


def test_disocclusions_are_rejected():
    cam = cam_at()
    background = wall(cam, 10.0)
    front = wall(cam, 5.0)
    prev_pos = background.position.clone()
    prev_pos[:, 8:14] = front.position[:, 8:14]  # an object in front, removed in the current frame
    prev = Geometry(cam, prev_pos, background.normal)
    _, valid = reproject(pattern(), prev, background)
    assert not valid[:, 9:13].any()  # the uncovered wall never reuses the object's colour
    assert valid[:, :7].all() and valid[:, 15:].all()


def test_normal_changes_are_rejected():
    g = wall(cam_at())
    turned = g.normal.clone()
    turned[5:10] = torch.tensor([0.0, 1.0, 0.0])  # same place, a surface facing elsewhere
    _, valid = reproject(pattern(), Geometry(g.camera, g.position, turned), g)
    assert not valid[6:9].any() and valid[:4].all() and valid[11:].all()


def _noisy_pair(rng, clean):
    return (clean + torch.from_numpy(rng.normal(0, 0.3, clean.shape)).float(),
            clean + torch.from_numpy(rng.normal(0, 0.3, clean.shape)).float())


class _Pair:
    def __init__(self, a, b, geom, frame):
        self.noisy_a, self.noisy_b, self.frame = a, b, frame
        self.normal, self.position, self.albedo = geom.normal, geom.position, torch.zeros_like(a)


def test_histories_accumulate_each_stream_alone_and_stay_uncorrelated():
    rng = np.random.default_rng(0)
    clean = torch.full((H, W, 3), 2.0)
    acc = TemporalAccumulator(max_history=8)  # long enough to see the clamp
    for f in range(10):
        cam = cam_at(-f * 0.5 * footprint(cam_at()))  # half a pixel per frame: resampling every frame
        g = wall(cam)
        a, b = _noisy_pair(rng, clean)
        out = acc.update(_Pair(a, b, g, f), cam)
    assert out.history.max() == 8 and out.history.shape == (2, H, W, 1)  # per stream: A, B
    inner = (out.history[..., 0] == 8).all(dim=0)  # pixels that kept both histories for the last 8 frames
    assert inner.float().mean() > 0.9
    ra, rb = out.noisy_a[inner] - 2.0, out.noisy_b[inner] - 2.0
    assert ra.std() < 0.6 * 0.3 and rb.std() < 0.6 * 0.3  # averaging reduced the noise of each stream
    assert abs(noise_correlation(ra, rb)) < 0.08  # ... and A's history knows nothing of B's samples


def test_history_resets_on_camera_jump_resize_and_reset():
    rng = np.random.default_rng(1)
    acc = TemporalAccumulator()
    clean = torch.ones(H, W, 3)
    cam = cam_at()
    for f in range(3):
        out = acc.update(_Pair(*_noisy_pair(rng, clean), wall(cam), f), cam)
    assert (out.history == 3).all()
    far = Camera([50.0, 0.0, 0.0], [50.0, 0.0, -10.0], [0.0, 1.0, 0.0], 60.0)  # looking away: nothing in common
    back = torch.ones(H, W, 3)
    out = acc.update(_Pair(back, back, Geometry(far, wall(far).position, -wall(far).normal), 3), far)
    assert (out.history == 1).all() and acc.resets == 1
    small = wall(cam, w=16, h=12)
    out = acc.update(_Pair(torch.ones(12, 16, 3), torch.ones(12, 16, 3), small, 4), cam)
    assert (out.history == 1).all()
    acc.reset()
    out = acc.update(_Pair(torch.ones(12, 16, 3), torch.ones(12, 16, 3), small, 5), cam)
    assert (out.history == 1).all()


def test_live_loop_with_kernel_model_and_temporal_reuse():
    from n2n_live.live.config import LiveConfig
    from n2n_live.live.loop import LiveLoop
    from n2n_live.models import KernelPredictingNet

    cfg = LiveConfig(scene="cornell-box", width=32, height=32, crop=32, iters_per_frame=1, sync=True, lr=1e-3,
                     reference_spp=16, model="kernel", temporal=True, device="cpu")
    with LiveLoop(cfg) as loop:
        assert isinstance(loop.trainer.net, KernelPredictingNet) and loop.trainer.net.n_in == 13 and loop.trainer.net.blend
        r0, r1 = loop.step(), loop.step()
        assert r1.pair.seeds != r0.pair.seeds and r1.pair.position.shape == (32, 32, 3)  # the rendered pair
        assert loop.temporal.valid_fraction > 0.5  # a smooth fly-through keeps most of its history
        assert r0.flicker_denoised is None or math.isnan(r0.flicker_denoised)
        for v in (r1.flicker_input, r1.flicker_denoised, r1.flicker_reference, r1.psnr_history):
            assert v is not None and math.isfinite(v)
        assert r1.psnr_history > r1.psnr_input  # two frames' samples beat one frame's
        loop.set_denoiser("paper", False)
        assert loop.temporal is None and type(loop.trainer.net).__name__ == "UNet"
        assert loop.step().denoised.shape == (32, 32, 3)


def test_model_and_temporal_flags_reach_the_config(capsys):
    from n2n_live.commands.cli import build_config, build_parser, main

    cfg = build_config(build_parser().parse_args(["--model", "kernel", "--temporal", "on"]), headless=True)
    assert (cfg.model, cfg.temporal) == ("kernel", True)
    cfg = build_config(build_parser().parse_args(["--model", "paper", "--temporal", "off"]), headless=True)
    assert (cfg.model, cfg.temporal) == ("paper", False)
    with pytest.raises(SystemExit) as e:
        main(["--headless", "--model", "resnet"])
    assert e.value.code == 2 and "--model" in capsys.readouterr().err


def test_a_surface_just_in_front_of_another_is_rejected():
    # the Cornell box's light hangs 1 cm below the ceiling (same normal): its bright history must not leak
    cam = cam_at()
    g = wall(cam, 10.0)
    prev_pos = g.position.clone()
    prev_pos[:, 8:14] = wall(cam, 9.97).position[:, 8:14]  # 3 cm in front, 10 m away
    _, valid = reproject(pattern(), Geometry(cam, prev_pos, g.normal), g)
    assert not valid[:, 9:13].any() and valid[:, :7].all()


def test_silhouette_pixels_are_rejected():
    """A pixel whose samples mix surfaces (|mean normal| inside reprojection.EDGE) never reuses history, nor lends
    it, even where every other test passes: here the camera stands still and both frames share the geometry, so
    plane, normal and off-screen tests accept every pixel. Mutant caught: the silhouette rejection removed."""
    cam = cam_at()
    g = wall(cam)
    pos, nrm = g.position.clone(), g.normal.clone()
    # column 10: half wall (normal -z), half a side surface (normal +x); the box-filtered normal averages them
    nrm[:, 10] = 0.5 * (torch.tensor([0.0, 0.0, -1.0]) + torch.tensor([1.0, 0.0, 0.0]))  # |n| = 0.71: a hit
    # column 20: 30 % wall, 70 % sky (no normal): a silhouette against the background
    nrm[:, 20] = torch.tensor([0.0, 0.0, -0.3])  # |n| = 0.3: not a hit
    mixed = Geometry(cam, pos, nrm)
    clean = [c for c in range(W) if abs(c - 10) > 1 and abs(c - 20) > 1]
    _, valid = reproject(pattern(), mixed, mixed)
    assert not valid[:, 10].any() and not valid[:, 20].any() and valid[:, clean].all()
    # only the current frame's pixel mixes surfaces (its direction still the wall's), and only the previous one's
    turned = nrm.clone()
    turned[:, 10] = torch.tensor([0.0, 0.0, -0.6])
    for prev, cur in ((g, Geometry(cam, pos, turned)), (Geometry(cam, pos, turned), g)):
        _, valid = reproject(pattern(), prev, cur)
        assert not valid[:, 10].any() and valid[:, clean].all()


def test_each_streams_shape_index_keeps_another_surface_out_of_its_history():
    # a light hanging in the ceiling's plane (same position plane, same normal): only the shape index tells them
    # apart. Stream A's samples saw the light in column 10 of the previous frame, B's did not.
    cam = cam_at()
    prev, cur = wall(cam), wall(cam_at(-0.5 * footprint(cam)))
    ceiling = torch.zeros(H, W)
    shape_a = ceiling.clone()
    shape_a[:, 10] = 1.0
    acc = TemporalAccumulator()
    a = torch.ones(H, W, 3)
    a[:, 10] = 50.0
    first = _Pair(a, torch.ones(H, W, 3), prev, 0)
    first.shape = torch.stack([shape_a, ceiling])
    acc.update(first, cam)
    second = _Pair(torch.ones(H, W, 3), torch.ones(H, W, 3), cur, 1)
    second.shape = torch.stack([ceiling, ceiling])
    out = acc.update(second, cur.camera)
    assert float(out.noisy_a.max()) == 1.0  # no light leaked into A's ceiling
    assert (out.history == 2).float().mean() > 0.9  # the ceiling itself kept its history


def test_histories_hold_reflected_light_and_take_this_frames_emission_fresh():
    # an emitter seen straight on in A's previous frame is gone now (it moved off this pixel): the history must not
    # drag its radiance along, while the surface's reflected light keeps its history
    cam = cam_at()
    g = wall(cam)
    before, now = torch.zeros(2, H, W, 3), torch.zeros(2, H, W, 3)
    before[0, :, 10] = 50.0
    now[0, :, 12] = 50.0
    acc = TemporalAccumulator()
    first = _Pair(1.0 + before[0], torch.ones(H, W, 3), g, 0)
    first.emission = before
    acc.update(first, cam)
    second = _Pair(1.0 + now[0], torch.ones(H, W, 3), g, 1)
    second.emission = now
    out = acc.update(second, cam)
    assert (out.history == 2).all()  # one surface, a still camera: every pixel kept its history
    assert torch.allclose(out.noisy_a[:, 10], torch.ones(H, 3))  # no trace of the light that left
    assert torch.allclose(out.noisy_a[:, 12], torch.full((H, 3), 51.0))  # the light that came, at once
    assert torch.equal(out.noisy_b, torch.ones(H, W, 3))
