"""Scenes written by this project, and their default fly-throughs.

`names()` lists them; `get(name)` returns a `SceneSpec(name, description, build, path, start)`:
`build(width, height)` gives a Mitsuba 3 scene dict (primitives only, no files), `path(start)` the default
looping camera path from the start camera `start`. `renderer.scene.load_scene` turns either into a scene.
"""

from __future__ import annotations

from renderer.errors import SceneError

from . import caustics, cornell_box, interior, outdoor
from ._common import SceneSpec

_REGISTRY: dict[str, SceneSpec] = {s.name: s for s in (cornell_box.SPEC, interior.SPEC, outdoor.SPEC, caustics.SPEC)}

__all__ = ["SceneSpec", "names", "get"]


def names() -> list[str]:
    """Names of the bundled scenes."""
    return list(_REGISTRY)


def get(name: str) -> SceneSpec:
    """The bundled scene called `name`; SceneError listing the known names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise SceneError(f"unknown scene '{name}' (bundled scenes: {', '.join(_REGISTRY)})") from None
