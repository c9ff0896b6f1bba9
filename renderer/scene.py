"""Load a bundled scene or a Mitsuba 3 XML file, set up the way the denoiser needs it.

Whatever the source asks for, the loaded scene has
- a float32 RGB `hdrfilm` of exactly (width, height) with a `box` reconstruction filter: tent and gaussian
  filters spread one sample over neighbouring pixels, so pixel noise would be correlated and a Noise2Noise
  pair or a denoiser's input would no longer have independent per-pixel noise;
- an `independent` sampler (every pixel and every seed gives statistically independent samples);
- its own integrator (default `path`, max_depth 8; an `aov` integrator is unwrapped to the one inside)
  wrapped in an `aov` integrator that adds albedo, shading normal and position: RGB|albedo|normal|position.
The start camera is the scene's sensor; for XML files the default path is a gentle orbit/dolly around the
point the sensor looks at (found by tracing the sensor's central ray).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .camera import Camera, CameraPath, orbit_path
from .errors import SceneError

AOVS = "albedo:albedo,nn:sh_normal,pos:position"  # position: for temporal reprojection (n2n_live.live.temporal)
DEFAULT_INTEGRATOR = {"type": "path", "max_depth": 8}
SPP = 8  # the sampler's sample count; every render call passes its own spp anyway
ORBIT_FRAMES = 480
_MAX_INCLUDE_DEPTH = 16
_WARNED_DARK: set[str] = set()  # scenes already reported without an emitter (once per process: the viewer reloads)


@dataclass
class LoadedScene:
    """A scene ready for `PathTracer`.

    `scene`'s integrator is aov(own integrator) and renders (H, W, 12): RGB, albedo, shading normal, position.
    `integrator` is the own integrator alone (RGB only); the tracer renders colour with it because the aov
    wrapper around a path tracer is about twice as slow as the path tracer plus a separate aov-only pass.
    `source` is the bundled name or the XML path, enough to load the scene again; `fingerprint()` identifies
    what it renders.
    """

    name: str
    scene: Any  # mi.Scene
    params: Any  # mi.SceneParameters of the whole scene (mi.traverse)
    path: CameraPath
    start: Camera
    width: int
    height: int
    integrator: Any = None  # mi.Integrator: the scene's own integrator, without the aov wrapper
    source: str = ""

    def fingerprint(self) -> str:
        """16 hex digits that change when the scene's content does: its source with the XML file's bytes, or with
        the bundled scenes' source code (caches of rendered images are keyed by it)."""
        source = self.source or self.name
        h = hashlib.sha256(str(source).encode())
        p = Path(str(source))
        if p.suffix.lower() == ".xml" and p.is_file():
            h.update(p.read_bytes())
        else:
            import scenes

            for f in sorted(Path(scenes.__file__).parent.glob("*.py")):
                h.update(f.read_bytes())
        return h.hexdigest()[:16]


def _ensure_variant() -> None:
    import mitsuba as mi

    if not mi.variant():
        from .variant import choose_variant

        choose_variant()


def load_scene(spec, width: int, height: int) -> LoadedScene:
    """Load `spec` (a bundled scene name, see `scenes.names()`, or a path to a Mitsuba 3 XML file) at
    width x height. Raises SceneError (one line, naming the file) for anything the user can fix."""
    if int(width) < 1 or int(height) < 1:
        raise SceneError(f"image size must be positive, got {width}x{height}")
    width, height = int(width), int(height)
    _ensure_variant()
    import scenes

    text = str(spec)
    if text in scenes.names():
        return _warn_if_dark(_load_bundled(scenes.get(text), width, height))
    looks_like_file = (isinstance(spec, Path) or text.lower().endswith(".xml") or "/" in text or "\\" in text
                       or Path(text).exists())
    if not looks_like_file:
        raise SceneError(f"unknown scene '{text}': not a bundled scene ({', '.join(scenes.names())}) "
                         "nor a path to a Mitsuba XML file")
    return _warn_if_dark(_load_xml(Path(text), width, height))


def _warn_if_dark(loaded: LoadedScene) -> LoadedScene:
    """One stderr line, once per scene and process, when the scene has no emitter (no light source, no
    environment): every frame is black and a network would train on black. Rendering goes on (it is not wrong)."""
    if not loaded.scene.emitters() and loaded.source not in _WARNED_DARK:
        _WARNED_DARK.add(loaded.source)
        print(f"warning: scene {loaded.source}: no emitter (no light, no environment): every frame renders black",
              file=sys.stderr, flush=True)
    return loaded


# ---------------------------------------------------------------------------------------------- bundled


def _film_dict(width: int, height: int) -> dict:
    return {"type": "hdrfilm", "width": width, "height": height, "rfilter": {"type": "box"},
            "pixel_format": "rgb", "component_format": "float32"}


def _unwrap_aov_dict(integrator: dict) -> dict:
    if integrator.get("type") != "aov":
        return integrator
    inner = [v for v in integrator.values() if isinstance(v, dict) and "type" in v]
    return inner[0] if inner else dict(DEFAULT_INTEGRATOR)


def _load_bundled(spec, width: int, height: int) -> LoadedScene:
    import mitsuba as mi

    d = spec.build(width, height)
    own = _unwrap_aov_dict(d.pop("integrator", None) or dict(DEFAULT_INTEGRATOR))
    sensor = d["sensor"]
    sensor["film"] = _film_dict(width, height)
    sensor["sampler"] = {"type": "independent", "sample_count": SPP}
    own_integrator = mi.load_dict(own)
    d["integrator"] = {"type": "aov", "aovs": AOVS, "img": own_integrator}
    scene = mi.load_dict(d)
    return LoadedScene(spec.name, scene, mi.traverse(scene), spec.path(spec.start), spec.start, width, height,
                       own_integrator, spec.name)


# ---------------------------------------------------------------------------------------------- XML


def _parse(path: Path, referenced_by: Path | None = None) -> ET.Element:
    where = f"{referenced_by}: included file {path}" if referenced_by else str(path)
    if not path.is_file():
        raise SceneError(f"scene file not found: {where}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise SceneError(f"{where}: invalid XML: {exc}") from None
    except OSError as exc:
        raise SceneError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if root.tag != "scene":
        raise SceneError(f"{where}: not a Mitsuba scene (root element <{root.tag}>, expected <scene>)")
    return root


def _inline_includes(root: ET.Element, base_dir: Path, file: Path, depth: int = 0) -> None:
    """Replace each <include filename=.../> by the children of the included scene (as Mitsuba does), so that
    a sensor or film defined in an included fragment can be found and overridden too."""
    if depth > _MAX_INCLUDE_DEPTH:
        raise SceneError(f"{file}: includes nested more than {_MAX_INCLUDE_DEPTH} deep (a cycle?)")
    for i, child in reversed(list(enumerate(root))):
        if child.tag != "include":
            continue
        inc_path = base_dir / child.get("filename", "")
        inc_root = _parse(inc_path, referenced_by=file)
        _inline_includes(inc_root, base_dir, inc_path, depth + 1)
        root.remove(child)
        for j, grandchild in enumerate(list(inc_root)):
            root.insert(i + j, grandchild)


def check_spec(spec) -> str:
    """Check a scene spec cheaply, without Mitsuba or rendering: a bundled name, or an XML file that exists, parses
    (includes too) as a Mitsuba <scene> and has a <sensor>. Returns the scene's name; a SceneError names the file.
    Commands check every scene they are given with it before rendering any (load_scene may still refuse what only
    Mitsuba can judge: a broken plugin, a missing mesh)."""
    import scenes

    text = str(spec)
    if text in scenes.names():
        return text
    path = Path(text)
    if not (isinstance(spec, Path) or text.lower().endswith(".xml") or "/" in text or "\\" in text or path.exists()):
        raise SceneError(f"unknown scene '{text}': not a bundled scene ({', '.join(scenes.names())}) "
                         "nor a path to a Mitsuba XML file")
    root = _parse(path)
    _inline_includes(root, path.parent, path)
    if not any(e.tag == "sensor" for e in root):
        raise SceneError(f"{path}: the scene has no <sensor> (a camera is needed to render it)")
    return path.stem


def _force_film_and_sampler(sensor: ET.Element, width: int, height: int) -> None:
    for child in list(sensor):
        if child.tag in ("film", "sampler"):
            sensor.remove(child)
    film = ET.SubElement(sensor, "film", type="hdrfilm")
    ET.SubElement(film, "integer", name="width", value=str(width))
    ET.SubElement(film, "integer", name="height", value=str(height))
    ET.SubElement(film, "string", name="pixel_format", value="rgb")
    ET.SubElement(film, "string", name="component_format", value="float32")
    ET.SubElement(film, "rfilter", type="box")
    sampler = ET.SubElement(sensor, "sampler", type="independent")
    ET.SubElement(sampler, "integer", name="sample_count", value=str(SPP))


def _substitute_defaults(element: ET.Element, defaults: dict[str, str]) -> ET.Element:
    """Copy of `element` with `$name` parameters replaced by the file's <default> values, so the integrator
    can be loaded on its own."""
    element = copy.deepcopy(element)
    names = sorted(defaults, key=len, reverse=True)  # $max_depth before $max
    for node in element.iter():
        for key, value in node.attrib.items():
            for name in names:
                value = value.replace(f"${name}", defaults[name])
            node.set(key, value)
    return element


def _default_integrator_element() -> ET.Element:
    el = ET.Element("integrator", type=DEFAULT_INTEGRATOR["type"])
    ET.SubElement(el, "integer", name="max_depth", value=str(DEFAULT_INTEGRATOR["max_depth"]))
    return el


def _own_integrator(root: ET.Element) -> tuple[ET.Element, int]:
    """Remove the scene's integrator(s) from `root`; return the one to use (aov unwrapped) and the index
    where it stood (after the <default>s where there was none, so `$name` parameters resolve)."""
    found = [(i, e) for i, e in enumerate(root) if e.tag == "integrator"]
    for _, e in found:
        root.remove(e)
    if not found:
        defaults = [i for i, e in enumerate(root) if e.tag == "default"]
        return _default_integrator_element(), (defaults[-1] + 1 if defaults else 0)
    index, own = found[0]
    while own.get("type") == "aov":  # ours adds the AOVs; a file's own aov wrapper would add more channels
        inner = [e for e in own if e.tag == "integrator"]
        own = inner[0] if inner else _default_integrator_element()
    return own, index


@contextlib.contextmanager
def _resolving_relative_to(folder: Path):
    """Let Mitsuba find meshes/textures named relative to the XML file while loading it from a string."""
    import mitsuba as mi

    resolver = mi.file_resolver()
    saved = [str(resolver[i]) for i in range(len(resolver))]
    resolver.prepend(str(folder.resolve()))
    try:
        yield
    finally:
        resolver.clear()
        for p in saved:
            resolver.append(p)


def _mitsuba_message(exc: Exception) -> str:
    msg = re.sub(r"\[[\w.]+:\d+\]\s*", "", " ".join(str(exc).split()))  # drop "[parser.cpp:1718]" tags
    return msg if len(msg) <= 400 else msg[:397] + "..."


def _load_xml(path: Path, width: int, height: int) -> LoadedScene:
    import mitsuba as mi

    root = _parse(path)
    _inline_includes(root, path.parent, path)
    sensors = [e for e in root if e.tag == "sensor"]
    if not sensors:
        raise SceneError(f"{path}: the scene has no <sensor> (a camera is needed to render it)")
    for extra in sensors[1:]:
        root.remove(extra)
    sensor_el = sensors[0]
    _force_film_and_sampler(sensor_el, width, height)

    own_el, index = _own_integrator(root)
    wrapper = ET.Element("integrator", type="aov")
    ET.SubElement(wrapper, "string", name="aovs", value=AOVS)
    wrapper.append(copy.deepcopy(own_el))
    root.insert(index, wrapper)
    root.set("version", root.get("version", "3.0.0"))
    defaults = {e.get("name"): e.get("value") for e in root.iter("default") if e.get("name")}

    with _resolving_relative_to(path.parent):
        try:
            scene = mi.load_string(ET.tostring(root, encoding="unicode"))
        except Exception as exc:  # noqa: BLE001 - Mitsuba raises RuntimeError/ValueError/...
            raise SceneError(f"{path}: Mitsuba cannot load the scene: {_original_error(path, exc)}") from None
        standalone = _substitute_defaults(own_el, defaults)
        standalone.set("version", root.get("version"))
        try:
            own_integrator = mi.load_string(ET.tostring(standalone, encoding="unicode"))
        except Exception as exc:  # noqa: BLE001
            raise SceneError(f"{path}: Mitsuba cannot load its integrator: {_mitsuba_message(exc)}") from None

    sensor_type = sensor_el.get("type", "")
    start = _sensor_camera(scene, path, sensor_type)
    return LoadedScene(path.stem, scene, mi.traverse(scene), orbit_path(start, start.target, ORBIT_FRAMES), start,
                       width, height, own_integrator, str(path))


def _original_error(path: Path, exc: Exception) -> str:
    """Mitsuba's error for the file as written (its line numbers), if loading the file as-is fails too."""
    import mitsuba as mi

    try:
        mi.load_file(str(path))
    except Exception as original:  # noqa: BLE001
        return _mitsuba_message(original)
    return _mitsuba_message(exc)


def _sensor_camera(scene, path: Path, sensor_type: str) -> Camera:
    """The camera of the scene's sensor; its target is where the central ray first hits the scene."""
    import drjit as dr
    import mitsuba as mi

    sensor = scene.sensors()[0]
    sp = mi.traverse(sensor)
    if "x_fov" not in sp.keys():
        raise SceneError(f"{path}: sensor type '{sensor_type}' is not supported (use perspective or thinlens)")
    fov = float(np.asarray(sp["x_fov"]).reshape(-1)[0])
    matrix = np.asarray(sensor.world_transform().matrix, dtype=np.float64).reshape(4, 4)
    probe = Camera.from_to_world(matrix, fov, 1.0)
    ray = mi.Ray3f(mi.Point3f(*probe.origin.tolist()), mi.Vector3f(*probe.direction.tolist()))
    t = scene.ray_intersect(ray).t
    dr.eval(t)
    t = float(np.asarray(t).reshape(-1)[0])
    if not np.isfinite(t) or t <= 0:  # looking into the void: use the distance to the scene's centre
        bbox = scene.bbox()
        centre = 0.5 * (np.asarray(bbox.min, dtype=np.float64) + np.asarray(bbox.max, dtype=np.float64))
        t = max(float(np.dot(centre - probe.origin, probe.direction)), 1e-3)
    return Camera.from_to_world(matrix, fov, t)
