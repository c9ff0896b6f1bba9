"""Viewer pieces that need no window: fly camera, keyframe files, progressive reference, options, history."""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import pytest
import torch

from n2n_live.errors import UserError
from n2n_live.metrics import psnr_hdr
from n2n_live.viewer.cli_args import add_arguments
from n2n_live.viewer.fly_camera import FlyCamera
from n2n_live.viewer.history import FrameHistory
from n2n_live.viewer.keyframes import KeyframeRecorder
from n2n_live.viewer.modes import MODES, SOURCES, parse_split
from n2n_live.viewer.reference import ProgressiveReference
from renderer.camera import Camera


def test_fly_camera_round_trips_the_start_camera():
    for up in ([0, 1, 0], [0, 0, 1]):
        cam = Camera([1.0, 2.0, 3.0], [0.2, -0.5, 0.1], up, 40.0)
        out = FlyCamera(cam).camera()
        assert out == cam  # same origin, target, up, fov (Camera compares rounded values)


def test_fly_camera_moves_and_looks():
    cam = Camera([0, 1, 5], [0, 1, 0], [0, 1, 0], 40)  # looking down -z, y up: right is +x
    fly = FlyCamera(cam, speed=2.0)
    assert np.allclose(fly.right, [1, 0, 0], atol=1e-9)
    assert fly.move(1, 0, 0, dt=0.5)  # forward 1 unit
    assert np.allclose(fly.position, [0, 1, 4])
    fly.move(0, 1, 1, dt=0.5)  # right and up
    assert np.allclose(fly.position, [1, 2, 4])
    assert not fly.move(0, 0, 0, dt=1.0)
    fly.look(100, 0)  # mouse right: turn right
    assert fly.forward[0] > 0.1
    fly.look(0, -10000)  # mouse far up: pitch clamps below 90 degrees, no flip
    assert 0.99 < fly.forward[1] < 1.0
    assert np.isfinite(fly.camera().to_world()).all()


def test_keyframes_save_load_and_play(tmp_path):
    rec = KeyframeRecorder(frames_per_loop=30)
    with pytest.raises(UserError):
        rec.path()
    for x in (0.0, 1.0, 2.0):
        rec.add(Camera([x, 0, 5], [x, 0, 0], [0, 1, 0], 45))
    path = tmp_path / "keys.json"
    rec.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == "n2n-live-keyframes" and len(data["keyframes"]) == 3
    back = KeyframeRecorder.load(path)
    assert back.frames_per_loop == 30 and len(back) == 3
    p = back.path()
    assert p.at(0) == rec.keyframes[0] and p.at(10) == rec.keyframes[1]  # passes through every keyframe
    assert p.at(30) == p.at(0)  # loops


@pytest.mark.parametrize("content, words", [
    (None, "no such keyframe file"),
    ("{not json", "not a readable JSON"),
    ('{"keyframes": []}', "no keyframes"),
    ('{"keyframes": [{"origin": [0, 0]}]}', "keyframe 0 is invalid"),
    ('[1, 2]', "not a keyframe file"),
])
def test_bad_keyframe_files_are_user_errors_naming_the_file(tmp_path, content, words):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError) as e:
        KeyframeRecorder.load(path)
    assert str(path) in str(e.value) and words in str(e.value)


def test_progressive_reference_converges_and_resets():
    torch.manual_seed(0)
    clean = torch.rand(16, 16, 3) + 0.1
    ref = ProgressiveReference()
    assert ref.measure(clean, clean) == (None, None)  # nothing accumulated yet
    for _ in range(200):
        ref.add(clean * torch.distributions.Exponential(1.0).sample(clean.shape), spp=8)
    assert ref.images == 200 and ref.spp == 1600
    assert psnr_hdr(ref.mean, clean) > 30.0
    noisy = clean * torch.distributions.Exponential(1.0).sample(clean.shape)
    p_in, p_clean = ref.measure(noisy, clean)
    assert p_clean > p_in
    ref.reset()  # the camera moved (StillStreams.follow, tested below): starts over
    assert ref.mean is None and ref.spp == 0 and ref.images == 0


def test_modes_and_split_parsing():
    assert len(MODES) == 7 and MODES[0] == "denoised" and MODES[-1] == "split"
    assert parse_split("noisy,denoised") == ("noisy", "denoised")
    assert parse_split("denoised, oidn") == ("denoised", "oidn")
    with pytest.raises(ValueError):
        parse_split("noisy")
    with pytest.raises(ValueError):
        parse_split("noisy,banana")
    assert set(SOURCES) >= {"denoised", "noisy", "albedo", "normal", "reference", "error", "oidn"}


def test_viewer_oidn_sources_this_frame_and_same_samples_on_demand(monkeypatch):
    """The split/display sources "OIDN (this frame)" and "OIDN (same samples)": OIDN on the raw pair's average and on
    the two histories' average (the pair's albedo/normal), each computed once per frame; with temporal reuse off the
    same-samples source is this frame's OIDN (no second call). Mutants caught: oidn_same handed the raw pair; its
    cache keyed to the this-frame cache."""
    import types

    from n2n_live.live import oidn
    from n2n_live.viewer.images import FrameImages

    calls = []

    def fake_denoise(colour, albedo=None, normal=None, quality="high"):
        calls.append((colour.clone(), albedo))
        return colour * 2.0

    monkeypatch.setattr(oidn, "available", lambda: True)
    monkeypatch.setattr(oidn, "denoise", fake_denoise)

    def pair(value):
        return types.SimpleNamespace(noisy_a=torch.full((4, 4, 3), value), noisy_b=torch.full((4, 4, 3), value + 1.0),
                                     albedo=torch.full((4, 4, 3), 0.5), normal=torch.zeros(4, 4, 3))

    raw, hist = pair(1.0), pair(3.0)  # averages 1.5 and 3.5
    r = types.SimpleNamespace(pair=raw, history=hist, denoised=torch.zeros(4, 4, 3), oidn=None, oidn_same=None)
    v = types.SimpleNamespace(result=r, result_id=1)
    images = FrameImages(display=None, attempt=lambda label, fn, *a: fn(*a))
    for _ in range(2):  # the second time from the caches
        assert torch.equal(images.source(v, "oidn"), torch.full((4, 4, 3), 3.0))
        assert torch.equal(images.source(v, "oidn_same"), torch.full((4, 4, 3), 7.0))
    assert len(calls) == 2 and calls[1][1] is hist.albedo
    v.result, v.result_id, calls[:] = types.SimpleNamespace(**{**vars(r), "history": None}), 2, []
    assert torch.equal(images.source(v, "oidn_same"), images.source(v, "oidn")) and len(calls) == 1
    assert parse_split("oidn,oidn_same") == ("oidn", "oidn_same") and "same samples" in SOURCES["oidn_same"].label


def test_viewer_arguments():
    p = add_arguments(argparse.ArgumentParser())
    a = p.parse_args(["--exit-after-frames", "30", "--screenshot", "x.png", "--render-scale", "0.5",
                      "--mode", "split", "--split", "denoised,oidn", "--window-size", "800x600"])
    assert (a.exit_after_frames, a.screenshot, a.render_scale, a.mode) == (30, "x.png", 0.5, "split")
    assert a.window_size == (800, 600) and a.split == "denoised,oidn"
    for bad in (["--render-scale", "0"], ["--exit-after-frames", "0"], ["--split", "a,b"], ["--mode", "x"],
                ["--window-size", "10x10"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)


def test_history_series_summary_and_jsonl(tmp_path):
    log = tmp_path / "stats.jsonl"
    h = FrameHistory(log)
    for i in range(12):
        h.add({"frame": i, "frame_ms": 100.0 + i, "render_ms": 50.0, "psnr_input_ref": None if i < 2 else 20.0 + i,
               "loss": float("nan")}, rendered=True)
    h.close()
    xs, ys = h.series("psnr_input_ref")
    assert len(xs) == 10 and xs.dtype == np.float64 and ys[0] == 22.0
    s = h.summary(skip=2)
    assert s["frames"] == 12 and math.isclose(s["median_ms"], 106.5) and s["render_ms"] == 50.0
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 12 and rows[0]["loss"] is None  # NaN is written as null: valid JSON


def test_without_a_display_n2n_live_says_so_in_one_line_and_runs_headless(monkeypatch, capsys):
    import n2n_live.commands.cli as cli
    import n2n_live.commands.headless as headless

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    ran = []
    monkeypatch.setattr(headless, "run_headless", lambda cfg, progress=True: ran.append(cfg))
    cli.main(["--scene", "cornell-box", "--frames", "2", "--size", "32"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no display" in err[0] and "headless" in err[0], err
    assert len(ran) == 1 and ran[0].frames == 2 and (ran[0].width, ran[0].height) == (32, 32)


# ---------------------------------------------------------------------------------------------- presets, render size
def test_viewer_starts_from_the_preset_that_fits_the_machine_and_flags_override(monkeypatch):
    import n2n_live.commands.cli as cli
    import n2n_live.live.config as config

    for cuda, name in ((False, "cpu"), (True, "gpu")):
        monkeypatch.setattr(config.torch.cuda, "is_available", lambda cuda=cuda: cuda)
        cfg = cli.build_config(cli.build_parser().parse_args([]), headless=False)
        p = config.PRESETS[name]
        assert (cfg.width, cfg.height, cfg.crop, cfg.lr) == (p.width, p.height, p.crop, p.lr)
        assert cfg.reference_spp == 0 and cfg.compare == ()  # the viewer measures against its progressive reference
        assert not cfg.pace  # the display never waits for training
        headless = cli.build_config(cli.build_parser().parse_args([]), headless=True)
        assert headless.reference_spp == p.reference_spp  # the headless run keeps the preset's reference
    monkeypatch.setattr(config.torch.cuda, "is_available", lambda: False)
    cfg = cli.build_config(cli.build_parser().parse_args(
        ["--size", "96x64", "--reference-spp", "32", "--lr", "2e-3"]), headless=False)
    assert (cfg.width, cfg.height, cfg.reference_spp, cfg.lr) == (96, 64, 32, 2e-3)


def test_autosize_settles_on_the_size_that_holds_the_target_and_compiles_few_sizes():
    from n2n_live.viewer.autosize import LADDER, AutoSize

    def machine(us_per_pixel: float, fixed_ms: float = 40.0):
        """Frame time of a size: a fixed UI cost plus a cost per pixel, +-10 % noise."""
        rng = np.random.default_rng(0)
        return lambda size: (fixed_ms + us_per_pixel * size[0] * size[1] / 1000.0) * rng.uniform(0.9, 1.1)

    # 3 fps wanted; this machine needs 10 us per pixel: 160x120 (~232 ms) holds it, 192x144 (~316 ms) is too close
    a = AutoSize(3.0, 64, 256, (128, 96))
    frame = machine(10.0)
    size, sizes, compile_frames = a.size, [a.size], 0
    for i in range(300):
        ms = frame(size)
        if compile_frames:  # the first frame at a new size compiles kernels: seconds, must not count
            ms, compile_frames = ms + 1500.0, compile_frames - 1
        new = a.update(ms)
        if new is not None:
            assert max(new) in LADDER and abs(new[1] - 0.75 * new[0]) <= 4 and new[1] % 8 == 0  # ladder, aspect
            size, compile_frames = new, 1
            sizes.append(new)
    assert size == (160, 120), sizes
    assert len(set(sizes)) <= 3 and len(sizes) <= 4, sizes  # it settles: few sizes, few compilations
    assert a.sizes_used <= set(sizes)
    # bounds: a slow machine stops at the smallest size, a fast one at the largest
    for us, want in ((500.0, (64, 48)), (0.01, (256, 192))):
        a, frame = AutoSize(3.0, 64, 256, (128, 96)), machine(us)
        size = a.size
        for _ in range(100):
            size = a.update(frame(size)) or size
        assert size == want
    # a frame time within the hysteresis band moves nothing; None (no live frame) is ignored
    a = AutoSize(3.0, 64, 256, (128, 128))
    assert all(a.update(v) is None for v in [None] + [350.0] * 50)


def test_still_streams_accumulate_each_stream_alone_and_measure_against_disjoint_samples():
    from types import SimpleNamespace

    from n2n_live.viewer.reference import StillStreams, window_frames

    assert [window_frames(n, 64) for n in (1, 2, 4, 5, 9, 10, 25, 26)] == [1, 2, 2, 3, 3, 4, 5, 6]
    assert window_frames(10_000, 64) == 64
    torch.manual_seed(0)
    clean = torch.rand(16, 16, 3) + 0.2
    noisy = lambda: clean * torch.distributions.Exponential(1.0).sample(clean.shape)  # noqa: E731
    s = StillStreams()
    frames = []
    for n in range(1, 41):
        assert s.follow("still camera") == (n == 1)
        a, b = noisy(), noisy()
        frames.append((a, b))
        pair = SimpleNamespace(noisy_a=a, noisy_b=b, albedo=None, normal=None, frame=n)
        out = s.add(pair, spp=8)
        w = window_frames(n, 64)
        assert s.window == w and s.stream_spp == 8 * w and s.still_frames == n
        # each stream is the mean of its own newest w images: A never sees B's samples, nor B A's
        assert torch.allclose(out.noisy_a, torch.stack([f[0] for f in frames[-w:]]).mean(0), atol=1e-5)
        assert torch.allclose(out.noisy_b, torch.stack([f[1] for f in frames[-w:]]).mean(0), atol=1e-5)
        assert pair.noisy_a is a  # the fresh pair itself is left alone
        # the reference holds exactly the older frames, both images
        old = [img for f in frames[:-w] for img in f]
        assert s.images == len(old) and s.spp == 8 * len(old)
        if old:
            assert torch.allclose(s.mean, torch.stack(old).mean(0), atol=1e-5)
        avg = 0.5 * (out.noisy_a + out.noisy_b)
        p_in, p_den = s.measure(avg, clean)
        ready = len(old) >= 4 * 2 * w  # the reference has at least 4x the samples of the pair average
        assert (p_in is not None) == ready, (n, len(old), w)
        if ready:
            assert p_den > p_in  # the clean image is closer to the reference than the noisy input
    assert p_in is not None  # reached within 40 still frames (from frame 25)
    assert psnr_hdr(out.noisy_a, clean) > psnr_hdr(frames[-1][0], clean) + 3  # the stream converges
    assert s.follow("moved") and s.window == 0 and s.mean is None and s.still_frames == 0  # a move starts over


def test_rate_meter_and_trainer_threads():
    from n2n_live.live.config import LiveConfig
    from n2n_live.models.unet import UNet
    from n2n_live.live.trainer import OnlineTrainer
    from n2n_live.viewer.history import RateMeter

    m = RateMeter(span_s=5.0)
    assert m.rate() is None
    for i in range(11):
        m.add(float(i), 4 * i)  # 4 steps per second
    assert m.rate() == pytest.approx(4.0)
    m.add(11.0, 0)  # the network was reset: the counter starts over, so does the rate
    assert m.rate() is None

    # torch's thread count is per thread: the viewer gives the trainer thread all cores but one, the display
    # (this thread) keeps its own
    from types import SimpleNamespace

    from n2n_live.viewer.budget import cores, share_cores

    main = torch.get_num_threads()
    tr = OnlineTrainer(UNet(), LiveConfig(width=32, height=32, crop=32), "cpu").start()
    try:
        seen = []
        assert share_cores(SimpleNamespace(device=torch.device("cpu"), trainer=tr, trainers=[tr]))
        tr._request(lambda: seen.append(torch.get_num_threads()))
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [max(1, cores() - 1)]
        assert torch.get_num_threads() == main
    finally:
        tr.stop(5.0)
        torch.set_num_threads(main)
