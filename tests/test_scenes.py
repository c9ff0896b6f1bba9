"""scenes/: the registry and every bundled scene (builds, renders finite images, has a real looping path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import renderer  # noqa: F401  (points Dr.Jit at libLLVM 19 before mitsuba is imported)
import scenes
from renderer.camera import Camera, CameraPath
from renderer.errors import SceneError


@pytest.fixture(scope="module")
def variant():
    from renderer.variant import choose_variant

    return choose_variant()


def test_registry():
    assert {"cornell-box", "interior", "outdoor", "caustics"} <= set(scenes.names())
    for name in scenes.names():
        spec = scenes.get(name)
        assert spec.name == name and spec.description and isinstance(spec.start, Camera)
    with pytest.raises(SceneError) as err:
        scenes.get("atlantis")
    assert "atlantis" in str(err.value) and "cornell-box" in str(err.value)


@pytest.mark.parametrize("name", scenes.names())
def test_default_path_is_a_smooth_nondegenerate_loop(name):
    spec = scenes.get(name)
    path = spec.path(spec.start)
    assert isinstance(path, CameraPath) and 240 <= path.frames_per_loop <= 600
    assert path.at(0) == spec.start
    f = path.frames_per_loop
    cams = [path.at(t) for t in range(0, f, 4)]
    origins = np.array([c.origin for c in cams])
    directions = np.array([c.direction for c in cams])
    extent = np.linalg.norm(origins.max(0) - origins.min(0))
    assert extent > 0.3  # the camera really travels
    assert np.min(directions @ spec.start.direction) < 0.99  # and looks around
    steps = np.linalg.norm(np.diff(np.vstack([origins, origins[:1]]), axis=0), axis=1)
    assert steps.max() < 4 * steps.mean()  # no jump, also at the loop seam
    assert np.linalg.norm(path.at(f - 1e-6).origin - path.at(0).origin) < 1e-4
    assert all(np.isfinite(c.to_world()).all() and 10 < c.fov_deg < 120 for c in cams)


@pytest.mark.parametrize("name", scenes.names())
def test_bundled_scene_builds_and_renders(variant, name):
    from renderer.scene import load_scene
    from renderer.tracer import PathTracer

    loaded = load_scene(name, 32, 24)
    assert loaded.name == name and (loaded.width, loaded.height) == (32, 24)
    tracer = PathTracer(loaded, spp=4)
    for frame in (0, loaded.path.frames_per_loop // 3):
        pair = tracer.render_pair(loaded.path.at(frame), frame)
        for t in (pair.noisy_a, pair.noisy_b, pair.albedo, pair.normal):
            assert t.shape == (24, 32, 3) and torch.isfinite(t).all()
        assert pair.noisy_a.mean() > 1e-3 and not torch.equal(pair.noisy_a, pair.noisy_b)
        assert pair.albedo.max() > 0.05  # something with a colour is in view
        assert (pair.normal.norm(dim=-1) > 0.5).float().mean() > 0.3  # and mostly geometry, not sky
