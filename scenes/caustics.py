"""The hard case: caustics from a small light through glass and off metal, on a diffuse floor.

A unidirectional path tracer finds a caustic only when a path leaving the floor, refracted by the glass
sphere or reflected by the gold ring, happens to hit the tiny spherical light: rare, very bright samples
(fireflies) at 8 spp. Two walls and a dim sky keep the rest of the picture readable.
"""

from __future__ import annotations

import math

from renderer.camera import Camera, CameraPath

from . import _common as c

FRAMES_PER_LOOP = 360
FOV = 50.0
LIGHT_POS = (-1.6, 1.5, 0.8)
LIGHT_RADIUS = 0.04

START = c.cam((1.2, 1.6, 3.6), (0.0, 0.3, 0.0), FOV)


def _keyframes() -> list[Camera]:
    """A slow swing in front of the objects (azimuth -10..60 degrees) with the camera bobbing up and down."""
    keys = []
    base = math.atan2(1.2, 3.6)
    for k in range(1, 6):
        a = base + math.radians(35.0) * math.sin(2 * math.pi * k / 6)
        r = 3.8 - 0.8 * math.sin(math.pi * k / 6) ** 2
        y = 1.6 + 0.6 * math.sin(4 * math.pi * k / 6)
        keys.append(c.cam((r * math.sin(a), y, r * math.cos(a)), (0.1 * math.sin(2 * math.pi * k / 6), 0.3, 0.0),
                          FOV))
    return keys


KEYFRAMES = _keyframes()


def build(width: int, height: int) -> dict:
    d = {"type": "scene", "sensor": c.sensor(START, width, height),
         "integrator": {"type": "path", "max_depth": 12}}  # caustics need a few more bounces through glass
    d["light"] = c.sphere(LIGHT_POS, LIGHT_RADIUS, c.diffuse(0.0),
                          emitter={"type": "area", "radiance": c.rgb((1500.0, 1300.0, 1000.0))})
    d["sky"] = {"type": "constant", "radiance": c.rgb((0.02, 0.025, 0.035))}
    d["floor"] = c.rectangle((0, 0, 0), (12.0, 12.0), c.diffuse(c.checkerboard(0.7, 0.55, 12)), "+y")
    d["wall_back"] = c.rectangle((0, 2.0, -2.0), (12.0, 4.0), c.diffuse((0.6, 0.6, 0.65)), "+z")
    d["wall_left"] = c.rectangle((-3.0, 2.0, 0), (12.0, 4.0), c.diffuse((0.55, 0.4, 0.35)), "+x")
    d["glass_sphere"] = c.sphere((-0.3, 0.5, 0.3), 0.5, {"type": "dielectric", "int_ior": 1.5, "ext_ior": 1.0})
    gold = {"type": "conductor", "material": "Au"}
    # A gold ring (open tube, seen from both sides) whose inner wall focuses the light into a cardioid.
    d["ring"] = c.cylinder((0.9, 0.0, -0.6), (0.9, 0.25, -0.6), 0.45, {"type": "twosided", "material": gold})
    d["silver_cube"] = c.box((-1.1, 0.3, -1.1), (0.6, 0.6, 0.6), {"type": "conductor", "material": "Ag"}, yaw_deg=30)
    return d


def path(start: Camera) -> CameraPath:
    return c.looping_path(start, KEYFRAMES, FRAMES_PER_LOOP)


SPEC = c.SceneSpec(
    name="caustics",
    description="hard case: tiny bright light, glass sphere and gold ring casting caustics on a diffuse floor",
    build=build,
    path=path,
    start=START,
)
