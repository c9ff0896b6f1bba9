"""Building blocks for the bundled scenes: sensor, primitives with transforms, materials, looping paths.

Everything returns plain Mitsuba 3 dicts. Functions that create Mitsuba objects (transforms, bitmaps) need a
variant to be set; `renderer.scene.load_scene` sets one before it calls a scene's `build`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from renderer.camera import Camera, CameraPath

SPP = 8


@dataclass(frozen=True)
class SceneSpec:
    """A bundled scene: `build(width, height)` gives a Mitsuba scene dict whose sensor shows `start`;
    `path(start)` gives the default looping fly-through beginning at `start`."""

    name: str
    description: str
    build: Callable[[int, int], dict]
    path: Callable[[Camera], CameraPath]
    start: Camera


def T():
    import mitsuba as mi

    return mi.ScalarTransform4f()


def sensor(cam: Camera, width: int, height: int, near: float = 0.01, far: float = 1000.0) -> dict:
    """Pinhole sensor with a box-filtered float32 RGB film (`renderer.scene` enforces the film again)."""
    import mitsuba as mi

    return {
        "type": "perspective",
        "fov_axis": "x",
        "fov": cam.fov_deg,
        "near_clip": near,
        "far_clip": far,
        "to_world": mi.ScalarTransform4f(cam.to_world().tolist()),
        "sampler": {"type": "independent", "sample_count": SPP},
        "film": {
            "type": "hdrfilm",
            "width": int(width),
            "height": int(height),
            "rfilter": {"type": "box"},
            "pixel_format": "rgb",
            "component_format": "float32",
        },
    }


def rgb(value) -> dict:
    return {"type": "rgb", "value": [float(v) for v in np.broadcast_to(value, 3)]}


def diffuse(value, twosided: bool = False) -> dict:
    bsdf = {"type": "diffuse", "reflectance": value if isinstance(value, dict) else rgb(value)}
    return {"type": "twosided", "material": bsdf} if twosided else bsdf


def box(center, size, bsdf: dict, yaw_deg: float = 0.0) -> dict:
    """Axis-aligned box of full extents `size` (Mitsuba's cube spans [-1, 1]^3), turned `yaw_deg` about y."""
    to_world = T().translate(list(map(float, center))).rotate([0, 1, 0], float(yaw_deg))
    return {"type": "cube", "to_world": to_world.scale([0.5 * float(s) for s in size]), "bsdf": bsdf}


def sphere(center, radius: float, bsdf: dict, emitter: dict | None = None) -> dict:
    d = {"type": "sphere", "center": list(map(float, center)), "radius": float(radius), "bsdf": bsdf}
    if emitter is not None:
        d["emitter"] = emitter
    return d


def cylinder(p0, p1, radius: float, bsdf: dict) -> dict:
    """Open tube from p0 to p1 (Mitsuba cylinders have no caps: add a disk where one is seen)."""
    return {"type": "cylinder", "p0": list(map(float, p0)), "p1": list(map(float, p1)), "radius": float(radius),
            "bsdf": bsdf}


def disk(center, radius: float, bsdf: dict, normal=(0.0, 1.0, 0.0)) -> dict:
    """Disk facing `normal` (only +y and -y needed here)."""
    angle = -90.0 if normal[1] > 0 else 90.0
    to_world = T().translate(list(map(float, center))).rotate([1, 0, 0], angle).scale([radius, radius, 1.0])
    return {"type": "disk", "to_world": to_world, "bsdf": bsdf}


def rectangle(center, size, bsdf: dict, normal: str = "+y", uv_scale=None) -> dict:
    """Rectangle of full extents `size` (two numbers, in the plane's own axes) facing an axis direction.

    normal: '+y' (floors), '-y' (ceilings), '+x', '-x', '+z', '-z' (walls). Mitsuba's rectangle spans
    [-1, 1]^2 in its local xy plane and faces local +z.
    """
    rotations = {
        "+y": ([1, 0, 0], -90.0), "-y": ([1, 0, 0], 90.0),
        "+x": ([0, 1, 0], 90.0), "-x": ([0, 1, 0], -90.0),
        "+z": ([0, 1, 0], 0.0), "-z": ([0, 1, 0], 180.0),
    }
    axis, angle = rotations[normal]
    to_world = T().translate(list(map(float, center))).rotate(axis, angle)
    return {"type": "rectangle", "to_world": to_world.scale([0.5 * size[0], 0.5 * size[1], 1.0]), "bsdf": bsdf}


def bitmap_texture(array: np.ndarray, repeat=(1.0, 1.0), raw: bool = False) -> dict:
    """A texture from a float (H, W, 3) numpy array in [0, 1] (linear values), repeated `repeat` times."""
    import mitsuba as mi

    bmp = mi.Bitmap(np.ascontiguousarray(array, dtype=np.float32))
    return {
        "type": "bitmap",
        "bitmap": bmp,
        "raw": raw,
        "filter_type": "bilinear",
        "wrap_mode": "repeat",
        "to_uv": T().scale([float(repeat[0]), float(repeat[1]), 1.0]),
    }


def checkerboard(color0, color1, tiles: float) -> dict:
    return {"type": "checkerboard", "color0": rgb(color0), "color1": rgb(color1),
            "to_uv": T().scale([float(tiles), float(tiles), 1.0])}


def looping_path(start: Camera, rest: Sequence[Camera], frames_per_loop: int) -> CameraPath:
    """The default fly-through: `start` then the scene's other keyframes, closing the loop back to `start`."""
    return CameraPath([start, *rest], frames_per_loop)


def cam(origin, target, fov_deg: float) -> Camera:
    return Camera(origin, target, (0.0, 1.0, 0.0), fov_deg)
