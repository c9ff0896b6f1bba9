"""An outdoor plaza under a procedural sky: environment light plus a sun, ground plane and objects.

The sky is an `envmap` computed in numpy (zenith blue fading to a hazy horizon, a glow around the sun);
the sun itself is a `directional` emitter for crisp shadows. Objects: stone columns, stacked crates, a metal
and a plastic sphere, an arch of boxes. The camera circles the plaza once per loop, rising and falling.
"""

from __future__ import annotations

import math

import numpy as np

from renderer.camera import Camera, CameraPath

from . import _common as c

FRAMES_PER_LOOP = 480
FOV = 60.0
SUN_TOWARDS = np.array([0.45, 0.55, 0.35])  # direction from the ground towards the sun (y up)

START = c.cam((0.0, 2.2, 9.0), (0.0, 0.8, 0.0), FOV)


def _keyframes() -> list[Camera]:
    """Seven more points of one circle around the plaza (the start closes it), radius and height varying."""
    keys = []
    for k in range(1, 8):
        a = 2 * math.pi * k / 8
        r = 9.0 - 2.0 * math.sin(a) ** 2
        y = 2.2 + 1.2 * math.sin(2 * a)
        keys.append(c.cam((r * math.sin(a), y, r * math.cos(a)), (0.6 * math.sin(3 * a), 0.8, 0.0), FOV))
    return keys


KEYFRAMES = _keyframes()


def sky(width: int = 256, height: int = 128) -> np.ndarray:
    """Equirectangular sky radiance in Mitsuba's envmap layout: row 0 is the zenith (+y), the last row the
    nadir; column u looks along (sin(2 pi u), ., -cos(2 pi u))."""
    theta = (np.arange(height) + 0.5) / height * math.pi
    phi = (np.arange(width) + 0.5) / width * 2 * math.pi
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    d = np.stack([np.sin(th) * np.sin(ph), np.cos(th), -np.sin(th) * np.cos(ph)], axis=-1)
    elevation = np.clip(d[..., 1], -1.0, 1.0)
    zenith, horizon = np.array([0.18, 0.35, 0.85]), np.array([0.85, 0.9, 1.0])
    t = np.clip(elevation, 0.0, 1.0) ** 0.45
    img = horizon * (1 - t[..., None]) + zenith * t[..., None]
    below = elevation < 0  # below the horizon: dim warm ground colour (the ground plane hides most of it)
    img[below] = np.array([0.3, 0.27, 0.22])
    sun = SUN_TOWARDS / np.linalg.norm(SUN_TOWARDS)
    cos_sun = np.clip(d @ sun, -1, 1)
    img += np.array([1.0, 0.85, 0.6])[None, None] * (2.0 * np.exp((cos_sun - 1) * 40.0))[..., None]
    return img.astype(np.float32)


def build(width: int, height: int) -> dict:
    d = {"type": "scene", "sensor": c.sensor(START, width, height),
         "integrator": {"type": "path", "max_depth": 8}}
    d["sky"] = {"type": "envmap", "bitmap": c.bitmap_texture(sky())["bitmap"], "scale": 1.0}
    d["sun"] = {"type": "directional", "direction": (-SUN_TOWARDS).tolist(), "irradiance": c.rgb((6.0, 5.3, 4.3))}
    d["ground"] = c.rectangle((0, 0, 0), (300.0, 300.0),
                              c.diffuse(c.checkerboard((0.32, 0.3, 0.27), (0.22, 0.21, 0.19), 300)), "+y")
    stone = c.diffuse((0.6, 0.55, 0.48))
    for i in range(6):  # a ring of columns with caps
        a = 2 * math.pi * (i + 0.5) / 6
        x, z = 4.2 * math.cos(a), 4.2 * math.sin(a)
        d[f"column{i}"] = c.cylinder((x, 0, z), (x, 3.0, z), 0.28, stone)
        d[f"capital{i}"] = c.box((x, 3.1, z), (0.8, 0.2, 0.8), stone, yaw_deg=math.degrees(a))
    crate = c.diffuse((0.45, 0.3, 0.15))
    d["crate0"] = c.box((-1.2, 0.5, -0.8), (1.0, 1.0, 1.0), crate, yaw_deg=20)
    d["crate1"] = c.box((-0.2, 0.4, -1.3), (0.8, 0.8, 0.8), crate, yaw_deg=-10)
    d["crate2"] = c.box((-0.9, 1.35, -0.9), (0.7, 0.7, 0.7), crate, yaw_deg=45)
    d["chrome"] = c.sphere((1.1, 0.7, 0.2), 0.7, {"type": "roughconductor", "material": "Cr", "alpha": 0.03})
    d["red_ball"] = c.sphere((-0.3, 0.45, 1.4), 0.45, {"type": "plastic", "diffuse_reflectance": c.rgb((0.6, 0.04,
                                                                                                         0.03))})
    d["teal_box"] = c.box((1.8, 0.3, -1.6), (1.2, 0.6, 0.6), c.diffuse((0.05, 0.35, 0.35)), yaw_deg=30)
    return d


def path(start: Camera) -> CameraPath:
    return c.looping_path(start, KEYFRAMES, FRAMES_PER_LOOP)


SPEC = c.SceneSpec(
    name="outdoor",
    description="plaza under a procedural sky envmap and a sun: columns, crates, chrome and plastic spheres",
    build=build,
    path=path,
    start=START,
)
