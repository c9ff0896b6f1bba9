"""Evaluation: the reference's noise floor, its disk cache, the evaluation schedule, the pair-average input."""
from __future__ import annotations

import math
import types

import pytest
import torch

from n2n_live.evaluation.references import HALVES_TO_FULL_DB, ReferenceStore, score_frame, should_evaluate
from n2n_live.metrics import psnr_hdr

pytestmark = pytest.mark.numeric  # make test reruns these under ATEN_CPU_CAPABILITY=default


class FakeTracer:
    """A 'renderer' whose reference of `spp` samples is truth + Gaussian noise of std sigma/sqrt(spp), the noise
    drawn from `first_seed`: independent seeds give independent noise, equal seeds the same noise."""

    def __init__(self, size=64, sigma=0.2):
        g = torch.Generator().manual_seed(123)
        self.truth = 0.2 + torch.rand(size, size, 3, generator=g)
        self.width = self.height = size
        self.sigma = sigma
        self.device = torch.device("cpu")
        self.variant = "fake"
        self.loaded = types.SimpleNamespace(name="cornell-box", fingerprint=lambda: "cornell-box-content")
        self.calls = []

    def render_reference(self, cam, spp, first_seed=None):
        self.calls.append((spp, first_seed))
        g = torch.Generator().manual_seed(int(first_seed))
        noise = torch.randn(self.truth.shape, generator=g) * self.sigma / math.sqrt(spp)
        return (self.truth + noise).clamp_min(0)


class Cam:
    def key(self):
        return (1.0, 2.0, 3.0)


def test_noise_floor_predicts_the_references_own_psnr():
    tracer = FakeTracer()
    ref = ReferenceStore(tracer, spp=64, cache_dir=None).get(Cam())
    true_psnr = psnr_hdr(ref.image, tracer.truth)
    # the estimate from the two halves lands on the measured PSNR against the truth (a +3 dB estimate would not)
    assert abs(ref.noise_floor - true_psnr) < 0.5, (ref.noise_floor, true_psnr)
    assert abs(ref.noise_floor - ref.halves_psnr - HALVES_TO_FULL_DB) < 1e-9
    # the two halves were rendered with different seeds (equal seeds would make them identical: infinite PSNR)
    (spp1, s1), (spp2, s2) = tracer.calls
    assert spp1 + spp2 == 64 and s1 != s2 and math.isfinite(ref.halves_psnr)


def test_disk_cache_renders_each_reference_once(tmp_path):
    tracer = FakeTracer()
    first = ReferenceStore(tracer, spp=32, cache_dir=tmp_path).get(Cam())
    assert not first.cached and len(tracer.calls) == 2
    again = ReferenceStore(tracer, spp=32, cache_dir=tmp_path).get(Cam())
    assert again.cached and again.ms == 0.0 and len(tracer.calls) == 2
    assert torch.equal(again.image, first.image) and again.noise_floor == first.noise_floor
    # another spp is another reference
    ReferenceStore(tracer, spp=16, cache_dir=tmp_path).get(Cam())
    assert len(tracer.calls) == 4
    # a damaged cache file is rendered again, never trusted
    for f in tmp_path.glob("*.npz"):
        f.write_bytes(b"not a zip")
    fresh = ReferenceStore(tracer, spp=32, cache_dir=tmp_path).get(Cam())
    assert not fresh.cached and torch.equal(fresh.image, first.image)


def test_scene_fingerprint_follows_the_content_and_keeps_old_cache_keys(tmp_path):
    """LoadedScene.fingerprint (what references are cached under) changes with an XML file's bytes, and keeps the
    values the caches were written with: sha256 of the source, then the XML bytes or the bundled scenes' code."""
    import hashlib
    from pathlib import Path

    import scenes
    from renderer.scene import LoadedScene

    def loaded(source):
        return LoadedScene(name="x", scene=None, params=None, path=None, start=None, width=8, height=8, source=source)

    xml = tmp_path / "a.xml"
    xml.write_text("<scene version='3.0.0'/>")
    first = loaded(str(xml)).fingerprint()
    assert first == hashlib.sha256(str(xml).encode() + xml.read_bytes()).hexdigest()[:16]
    xml.write_text("<scene version='3.0.0'><!-- changed --></scene>")
    assert loaded(str(xml)).fingerprint() != first
    code = b"".join(f.read_bytes() for f in sorted(Path(scenes.__file__).parent.glob("*.py")))
    assert loaded("cornell-box").fingerprint() == hashlib.sha256(b"cornell-box" + code).hexdigest()[:16]


def test_schedule_is_every_nth_frame_one_based():
    assert [f for f in range(30) if should_evaluate(f, 10)] == [9, 19, 29]
    assert all(should_evaluate(f, 1) for f in range(5))
    assert not any(should_evaluate(f, 0) for f in range(5))


def test_input_is_the_pair_average():
    tracer = FakeTracer(size=32)
    ref = tracer.truth
    a = tracer.render_reference(None, 8, first_seed=1)
    b = tracer.render_reference(None, 8, first_seed=2)
    pair = types.SimpleNamespace(noisy_a=a, noisy_b=b)
    s = score_frame(pair, ref, 1.0, denoised=ref, oidn=None)
    assert s.input == pytest.approx(psnr_hdr(0.5 * (a + b), ref)) and s.input_a == pytest.approx(psnr_hdr(a, ref))
    assert s.input > s.input_a + 2.0  # twice the samples: ~3 dB better
    assert s.denoised == math.inf and s.oidn is None


def test_live_loop_measures_only_scheduled_frames(tmp_path):
    from n2n_live.live.config import LiveConfig
    from n2n_live.live.loop import LiveLoop

    cfg = LiveConfig(scene="cornell-box", width=16, height=16, crop=16, spp=2, iters_per_frame=1, sync=True,
                     device="cpu", reference_spp=8, eval_every=2, reference_cache=str(tmp_path))
    with LiveLoop(cfg) as loop:
        results = [loop.step() for _ in range(4)] + [loop.step(evaluate=True)]
    measured = [r.frame for r in results if r.psnr_input is not None]
    assert measured == [1, 3, 4]
    for r in results:
        assert (r.reference is not None) == (r.frame in measured)
        if r.frame in measured:
            assert math.isfinite(r.reference_floor) and r.psnr_input > r.psnr_input_a
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_flicker_follows_the_surface_under_a_moving_camera():
    """A camera panning over a static, textured wall: a clean, consistent sequence (each frame the texture at its
    pixels' world points) gives nearly zero flicker, though its pixels change a lot from frame to frame; the same
    sequence with fresh noise every frame flickers by about the noise. Mutant caught: flicker computed pixel to
    pixel, without reprojection."""
    from n2n_live.evaluation.stability import FlickerMeter
    from n2n_live.tonemap import T
    from tests.test_temporal import cam_at, footprint, wall

    step = 1.5 * footprint(cam_at())  # a pixel and a half per frame: every frame is resampled
    period = 12 * footprint(cam_at())

    def texture(pos):
        u, v = pos[..., 0] * 2 * math.pi / period, pos[..., 1] * 2 * math.pi / period
        lum = 0.6 + 0.4 * torch.sin(u) * torch.cos(0.7 * v)
        return torch.stack([lum, 0.8 * lum, 0.5 * lum], dim=-1)

    g = torch.Generator().manual_seed(0)
    meter, clean, noisy, unmoved, prev = FlickerMeter(), [], [], [], None
    for f in range(5):
        cam = cam_at(f * step)
        geom = wall(cam)
        img = texture(geom.position)
        noise = img + 0.1 * torch.randn(img.shape, generator=g)
        fl = meter.update(cam, geom.position, geom.normal, {"clean": img, "noisy": noise})
        if f == 0:
            assert math.isnan(fl["clean"]) and math.isnan(fl["noisy"])
        else:
            clean.append(fl["clean"])
            noisy.append(fl["noisy"])
            unmoved.append(float((T(img) - T(prev)).pow(2).mean().sqrt()))  # what pixel-to-pixel would give
        prev = img
    assert min(unmoved) > 0.03, unmoved  # the pixels themselves change a lot
    assert max(clean) < 0.2 * min(unmoved), (clean, unmoved)
    assert min(noisy) > 3 * max(clean), (noisy, clean)


def test_psnr_plot_draws_oidn_this_frame_oidn_same_samples_and_the_history(tmp_path, monkeypatch):
    """psnr.png: one curve per OIDN input (this frame, same samples) and the histories, each from its own column,
    the missing frames skipped. Mutant caught: the psnr_oidn_same curve left out of plots.CURVES."""
    from n2n_live.evaluation import plots
    from n2n_live.evaluation.metrics_log import MetricsLog

    cols = ["frame", "loss", "psnr_input", "psnr_denoised", "psnr_oidn", "psnr_oidn_same", "psnr_history"]
    with MetricsLog(tmp_path / "m.csv", cols) as log:
        for f in range(4):
            ev = f % 2 == 1  # frames 2 and 4 evaluated
            psnr = {"psnr_input": 20.0 + f, "psnr_denoised": 30.0 + f, "psnr_oidn": 31.0 + f,
                    "psnr_oidn_same": 32.0 + f, "psnr_history": 25.0 + f}
            log.log({"frame": f, "loss": 0.1, **(psnr if ev else {})})
    figures = []
    real_close = plots.plt.close
    monkeypatch.setattr(plots.plt, "close", lambda fig=None: figures.append(fig) or real_close(fig))
    plots.plot_psnr(tmp_path / "m.csv", tmp_path / "psnr.png")
    assert (tmp_path / "psnr.png").stat().st_size > 0 and len(figures) == 1
    curves = {line.get_label(): list(line.get_ydata()) for line in figures[0].axes[0].get_lines()}
    assert curves["OIDN, this frame (raw pair)"] == [32.0, 34.0]
    assert curves["OIDN, same samples (temporal histories)"] == [33.0, 35.0]
    assert curves["temporal histories (pair average)"] == [26.0, 28.0]


def test_long_runs_plot_thinned_curves_from_the_columns_they_need(tmp_path):
    """A 10,000-frame run is replotted every minute: the plot reads only its columns and draws at most MAX_POINTS
    per curve (the last frame kept), so its memory does not grow with the run."""
    from n2n_live.evaluation import plots
    from n2n_live.evaluation.metrics_log import MetricsLog, read_metrics

    n = 3 * plots.MAX_POINTS + 7
    with MetricsLog(tmp_path / "m.csv", ["frame", "loss", "psnr_denoised", "render_ms"]) as log:
        for i in range(n):
            log.log({"frame": i, "loss": 1.0 / (i + 1), "psnr_denoised": 30.0 if i % 10 == 9 else float("nan"),
                     "render_ms": 5.0})
    m = read_metrics(tmp_path / "m.csv", {"frame", "loss", "psnr_denoised"})
    assert set(m) == {"frame", "loss", "psnr_denoised"} and len(m["loss"]) == n
    xs, ys = plots._finite_points(m["frame"], m["loss"])
    assert len(xs) <= plots.MAX_POINTS + 1 and xs[0] == 0 and xs[-1] == n - 1 and abs(ys[-1] - 1.0 / n) < 1e-4
    xs, _ = plots._finite_points(m["frame"], m["psnr_denoised"])
    assert xs == [float(i) for i in range(9, n, 10)]  # sparse curves are not thinned
    plots.plot_psnr(tmp_path / "m.csv", tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
