"""Cameras and looping fly-through paths (pure numpy: no Mitsuba needed).

A `Camera` is a look-at pinhole: origin, target, up and the horizontal field of view in degrees (Mitsuba's
`x_fov`). A `CameraPath` loops through keyframes with a periodic uniform Catmull-Rom spline, which passes
through every keyframe and is C1 continuous everywhere, including the seam where the loop closes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


def _vec3(v) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.shape != (3,):
        raise ValueError(f"expected a 3-vector, got shape {a.shape}")
    return a


def _normalize(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


@dataclass(eq=False)
class Camera:
    """A look-at camera. `fov_deg` is the horizontal field of view (Mitsuba's `x_fov`)."""

    origin: np.ndarray
    target: np.ndarray
    up: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0, 0.0]))
    fov_deg: float = 45.0

    def __post_init__(self):
        self.origin = _vec3(self.origin)
        self.target = _vec3(self.target)
        self.up = _vec3(self.up)
        self.fov_deg = float(self.fov_deg)
        if np.allclose(self.origin, self.target):
            raise ValueError("camera origin and target coincide")

    @property
    def direction(self) -> np.ndarray:
        """Unit view direction."""
        return _normalize(self.target - self.origin)

    def to_world(self) -> np.ndarray:
        """4x4 camera-to-world matrix, the same as Mitsuba's `Transform4f().look_at(origin, target, up)`.

        Columns: left, up, view direction, origin (Mitsuba cameras look down their local +z). An `up` parallel
        to the view direction is replaced by another axis rather than producing NaNs.
        """
        d = self.direction
        left = np.cross(_normalize(self.up), d)
        if np.linalg.norm(left) < 1e-6:  # up parallel to the view: any perpendicular axis will do
            helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
            left = np.cross(helper, d)
        left = _normalize(left)
        new_up = np.cross(d, left)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = left, new_up, d, self.origin
        return m

    @classmethod
    def from_to_world(cls, matrix, fov_deg: float, distance: float = 1.0) -> "Camera":
        """The camera of a Mitsuba sensor `to_world` matrix, its target `distance` along the view."""
        m = np.asarray(matrix, dtype=np.float64).reshape(4, 4)
        origin = m[:3, 3]
        direction = _normalize(m[:3, 2])
        up = _normalize(m[:3, 1])
        return cls(origin, origin + float(distance) * direction, up, fov_deg)

    def key(self, decimals: int = 6) -> tuple:
        """A hashable key (rounded values), e.g. for caching renders per camera."""
        vals = np.concatenate([self.origin, self.target, _normalize(self.up), [self.fov_deg]])
        return tuple(np.round(vals, decimals).tolist())

    def __eq__(self, other) -> bool:
        return isinstance(other, Camera) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        f = lambda v: "(" + ", ".join(f"{x:.4g}" for x in v) + ")"  # noqa: E731
        return f"Camera(origin={f(self.origin)}, target={f(self.target)}, up={f(self.up)}, fov_deg={self.fov_deg:.4g})"


def _catmull_rom(p0, p1, p2, p3, u: float):
    """Uniform Catmull-Rom between p1 (u=0) and p2 (u=1); tangents (p2-p0)/2 and (p3-p1)/2 give C1 joins."""
    u2, u3 = u * u, u * u * u
    return 0.5 * (
        2.0 * p1 + (p2 - p0) * u + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * u2 + (3.0 * p1 - p0 - 3.0 * p2 + p3) * u3
    )


class CameraPath:
    """A looping fly-through: `at(frame)` for any real frame number; frame and frame + frames_per_loop agree.

    Keyframes are spaced evenly in time. Origin, target, up and fov are each interpolated with a periodic
    Catmull-Rom spline (up is renormalised), so the camera passes through every keyframe and its velocity is
    continuous, also across the loop seam.
    """

    def __init__(self, keyframes: Sequence[Camera], frames_per_loop: int = 480):
        if len(keyframes) == 0:
            raise ValueError("a camera path needs at least one keyframe")
        if frames_per_loop < 1:
            raise ValueError("frames_per_loop must be >= 1")
        self.keyframes = list(keyframes)
        self.frames_per_loop = int(frames_per_loop)
        self._origin = np.stack([k.origin for k in self.keyframes])
        self._target = np.stack([k.target for k in self.keyframes])
        self._up = np.stack([_normalize(k.up) for k in self.keyframes])
        self._fov = np.array([k.fov_deg for k in self.keyframes])

    def __len__(self) -> int:
        return self.frames_per_loop

    def at(self, frame: float) -> Camera:
        n = len(self.keyframes)
        if n == 1:
            return self.keyframes[0]
        s = (float(frame) % self.frames_per_loop) / self.frames_per_loop * n  # keyframe units in [0, n)
        i = int(math.floor(s))
        u = s - i
        idx = [(i - 1) % n, i % n, (i + 1) % n, (i + 2) % n]

        def interp(a):
            return _catmull_rom(a[idx[0]], a[idx[1]], a[idx[2]], a[idx[3]], u)

        origin, target = interp(self._origin), interp(self._target)
        if np.allclose(origin, target):  # only possible with pathological keyframes
            target = origin + self.keyframes[i % n].direction
        return Camera(origin, target, _normalize(interp(self._up)), float(interp(self._fov)))

    def sample(self, count: int | None = None) -> list[Camera]:
        """`count` cameras evenly spread over one loop (default: one per frame)."""
        count = self.frames_per_loop if count is None else int(count)
        return [self.at(i * self.frames_per_loop / count) for i in range(count)]


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix about a unit axis."""
    x, y, z = _normalize(axis)
    c, s = math.cos(angle), math.sin(angle)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) * c + s * k + (1 - c) * np.outer([x, y, z], [x, y, z])


def orbit_path(
    camera: Camera,
    center,
    frames: int = 480,
    yaw_deg: float = 10.0,
    pitch_deg: float = 4.0,
    dolly: float = 0.2,
    keyframes: int = 8,
) -> CameraPath:
    """A gentle looping orbit/dolly of `camera` around the point `center` it looks at.

    The whole rig (origin and target) swings about `center`: yaw about the camera's up axis (+-yaw_deg over a
    loop), pitch about its left axis (+-pitch_deg, twice per loop: a figure of eight), and the origin dollies
    towards `center` by up to `dolly` of its distance. Frame 0 is exactly `camera`. Small angles keep the view
    on what the scene's author framed (an open Cornell box seen from outside stays seen from the front).
    """
    c = _vec3(center)
    m = camera.to_world()
    up_axis, left_axis = m[:3, 1], m[:3, 0]
    keys = []
    for k in range(keyframes):
        phi = 2.0 * math.pi * k / keyframes
        yaw = math.radians(yaw_deg) * math.sin(phi)
        pitch = math.radians(pitch_deg) * math.sin(2.0 * phi)
        scale = 1.0 - dolly * 0.5 * (1.0 - math.cos(phi))
        rot = _rotation(up_axis, yaw) @ _rotation(left_axis, pitch)
        origin = c + scale * (rot @ (camera.origin - c))
        target = c + rot @ (camera.target - c)
        if np.allclose(origin, target):
            target = origin + rot @ camera.direction
        keys.append(Camera(origin, target, rot @ camera.up, camera.fov_deg))
    return CameraPath(keys, frames)
