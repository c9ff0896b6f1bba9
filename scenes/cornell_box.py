"""The Cornell box (Mitsuba's own `mi.cornell_box()` dict), with a gentle fly-through into the box."""

from __future__ import annotations

from renderer.camera import Camera, CameraPath

from ._common import SceneSpec, cam, looping_path, sensor

FRAMES_PER_LOOP = 360
FOV = 39.3077  # Mitsuba's Cornell box camera (square image: horizontal = vertical fov)

START = cam((0.0, 0.0, 3.9), (0.0, 0.0, 0.0), FOV)

# The box spans [-1, 1]^3 with its open side towards +z; the boxes stand on the floor (y = -1) and the tall
# one reaches y = 0.21. The path enters the box, looks at the boxes from both sides and backs out again.
KEYFRAMES = [
    cam((0.45, 0.25, 2.8), (-0.15, -0.25, -0.4), 42.0),
    cam((0.40, -0.05, 1.9), (-0.35, -0.45, -0.9), 48.0),
    cam((0.00, 0.30, 1.6), (0.10, -0.55, -0.6), 52.0),
    cam((-0.45, 0.05, 1.9), (0.35, -0.40, -0.8), 48.0),
    cam((-0.40, 0.20, 2.9), (0.10, -0.15, -0.3), 42.0),
]


def build(width: int, height: int) -> dict:
    import mitsuba as mi

    scene = mi.cornell_box()
    scene["sensor"] = sensor(START, width, height)
    scene["integrator"] = {"type": "path", "max_depth": 8}
    return scene


def path(start: Camera) -> CameraPath:
    return looping_path(start, KEYFRAMES, FRAMES_PER_LOOP)


SPEC = SceneSpec(
    name="cornell-box",
    description="Mitsuba's Cornell box: one area light, diffuse walls and boxes; camera flies into the box",
    build=build,
    path=path,
    start=START,
)
