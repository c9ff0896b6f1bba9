"""A WASD/QE + mouse-look fly camera (pure numpy; no OpenGL, no Mitsuba).

The camera keeps the world's up axis (the scene camera's `up`), a yaw and pitch about it and a focus distance
(how far ahead the target sits, kept from the camera it started from). `camera()` gives the renderer's
look-at `Camera`.
"""
from __future__ import annotations

import math

import numpy as np

from renderer.camera import Camera


def _normalize(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


MAX_PITCH = math.radians(89.0)


class FlyCamera:
    """Position + yaw/pitch about a fixed world up. `speed` is in scene units per second."""

    def __init__(self, cam: Camera, speed: float | None = None):
        self.reset(cam, speed)

    def reset(self, cam: Camera, speed: float | None = None) -> None:
        self.up = _normalize(np.asarray(cam.up, dtype=np.float64))
        # Two fixed axes spanning the plane perpendicular to up: yaw is measured from e1 towards e2.
        helper = np.array([0.0, 0.0, 1.0]) if abs(self.up[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        self.e1 = _normalize(helper - self.up * float(helper @ self.up))
        self.e2 = np.cross(self.up, self.e1)
        self.position = np.array(cam.origin, dtype=np.float64)
        d = cam.direction
        self.pitch = float(np.clip(math.asin(float(np.clip(d @ self.up, -1.0, 1.0))), -MAX_PITCH, MAX_PITCH))
        self.yaw = math.atan2(float(d @ self.e2), float(d @ self.e1))
        self.focus = max(float(np.linalg.norm(cam.target - cam.origin)), 1e-3)
        self.fov_deg = float(cam.fov_deg)
        if speed is not None:
            self.speed = float(speed)
        elif not hasattr(self, "speed"):
            self.speed = 0.5 * self.focus  # half the focus distance per second: a calm default at any scale

    @property
    def forward(self) -> np.ndarray:
        cp = math.cos(self.pitch)
        return _normalize(cp * (math.cos(self.yaw) * self.e1 + math.sin(self.yaw) * self.e2) + math.sin(self.pitch) * self.up)

    @property
    def right(self) -> np.ndarray:
        return _normalize(np.cross(self.forward, self.up))

    def camera(self) -> Camera:
        return Camera(self.position.copy(), self.position + self.focus * self.forward, self.up.copy(), self.fov_deg)

    def move(self, forward: float, right: float, up: float, dt: float) -> bool:
        """Move along the view (W/S), sideways (D/A) and along world up (E/Q); each input in [-1, 1]."""
        if not (forward or right or up) or dt <= 0:
            return False
        step = self.speed * dt
        self.position = self.position + step * (forward * self.forward + right * self.right + up * self.up)
        return True

    def look(self, dx: float, dy: float, degrees_per_pixel: float = 0.15) -> bool:
        """Mouse-look: dx > 0 turns right, dy > 0 (mouse down, screen y grows downwards) looks down."""
        if not (dx or dy):
            return False
        k = math.radians(degrees_per_pixel)
        self.yaw -= dx * k  # increasing yaw turns from e1 towards e2, which is to the left
        self.pitch = float(np.clip(self.pitch - dy * k, -MAX_PITCH, MAX_PITCH))
        return True
