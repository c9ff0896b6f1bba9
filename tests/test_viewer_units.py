"""Viewer pieces that need no window: fly camera, keyframe files, progressive reference, options, history."""
from __future__ import annotations

import argparse
import json
import math

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
    assert ref.follow("cam-a")
    assert ref.measure(clean, clean) == (None, None)  # nothing accumulated yet
    for _ in range(200):
        ref.add(clean * torch.distributions.Exponential(1.0).sample(clean.shape), spp=8)
    assert ref.images == 200 and ref.spp == 1600
    assert psnr_hdr(ref.mean, clean) > 30.0
    noisy = clean * torch.distributions.Exponential(1.0).sample(clean.shape)
    p_in, p_clean = ref.measure(noisy, clean)
    assert p_clean > p_in
    assert not ref.follow("cam-a")  # same camera: keeps accumulating
    assert ref.follow("cam-b") and ref.mean is None and ref.spp == 0  # moved: starts over


def test_modes_and_split_parsing():
    assert len(MODES) == 7 and MODES[0] == "denoised" and MODES[-1] == "split"
    assert parse_split("noisy,denoised") == ("noisy", "denoised")
    assert parse_split("denoised, oidn") == ("denoised", "oidn")
    with pytest.raises(ValueError):
        parse_split("noisy")
    with pytest.raises(ValueError):
        parse_split("noisy,banana")
    assert set(SOURCES) >= {"denoised", "noisy", "albedo", "normal", "reference", "error", "oidn"}


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
    import n2n_live.cli as cli
    import n2n_live.headless as headless

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    ran = []
    monkeypatch.setattr(headless, "run_headless", lambda cfg, progress=True: ran.append(cfg))
    cli.main(["--scene", "cornell-box", "--frames", "2", "--size", "32"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no display" in err[0] and "headless" in err[0], err
    assert len(ran) == 1 and ran[0].frames == 2 and (ran[0].width, ran[0].height) == (32, 32)
