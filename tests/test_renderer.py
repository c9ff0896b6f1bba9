"""renderer/: variant, cameras and paths, scene loading (bundled, XML, errors), paired renders, references.

Tiny images (32x32 and smaller) keep the whole file fast on two CPU cores.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import renderer  # noqa: F401  (points Dr.Jit at libLLVM 19 before mitsuba is imported)
from renderer.camera import Camera, CameraPath, orbit_path
from renderer.errors import SceneError
from renderer.variant import choose_variant, torch_device_for_variant

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_SCENES = REPO_ROOT.parent / "shared" / "data" / "scenes"


@pytest.fixture(scope="module")
def variant():
    return choose_variant()


@pytest.fixture(scope="module")
def loaded(variant):
    from renderer.scene import load_scene

    return load_scene("cornell-box", 32, 32)


@pytest.fixture(scope="module")
def tracer(loaded):
    from renderer.tracer import PathTracer

    return PathTracer(loaded, spp=8)


# ------------------------------------------------------------------------------------------------ variant


def test_variant_choice(variant):
    import mitsuba as mi

    assert variant in ("cuda_ad_rgb", "llvm_ad_rgb", "scalar_rgb")
    assert mi.variant() == variant
    assert torch_device_for_variant("cuda_ad_rgb") == "cuda"
    assert torch_device_for_variant("llvm_ad_rgb") == "cpu"
    assert torch_device_for_variant("scalar_rgb") == "cpu"


def test_unknown_variant_is_a_one_line_scene_error(variant):
    with pytest.raises(SceneError) as err:
        choose_variant("no_such_variant")
    assert "no_such_variant" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SceneError):
        choose_variant("llvm_ad_mono")  # one colour channel: not what the rest of the program expects
    assert choose_variant() == variant  # and the automatic choice still works afterwards


# ------------------------------------------------------------------------------------------------ camera


def test_camera_matrix_matches_mitsuba_look_at(variant):
    import mitsuba as mi

    cam = Camera((1.0, 2.0, 3.0), (0.5, -1.0, 0.2), (0.1, 1.0, 0.0), 40.0)
    ours = cam.to_world()
    theirs = np.array(mi.ScalarTransform4f().look_at(origin=[1, 2, 3], target=[0.5, -1.0, 0.2],
                                                     up=[0.1, 1.0, 0.0]).matrix)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    back = Camera.from_to_world(ours, 40.0, distance=np.linalg.norm(cam.target - cam.origin))
    np.testing.assert_allclose(back.origin, cam.origin)
    np.testing.assert_allclose(back.target, cam.target, atol=1e-9)
    # An up vector parallel to the view still gives a valid rotation.
    m = Camera((0, 0, 0), (0, -1, 0), (0, 1, 0), 40.0).to_world()
    assert np.all(np.isfinite(m)) and abs(np.linalg.det(m[:3, :3]) - 1) < 1e-9


def _c1_seam_error(path: CameraPath) -> tuple[float, float]:
    """Position jump and velocity jump across the loop seam, relative to the typical speed."""
    f, h = path.frames_per_loop, 1e-3
    pos = lambda t: path.at(t).origin  # noqa: E731
    jump = np.linalg.norm(pos(f - 1e-9) - pos(0.0))
    v_before = (pos(f) - pos(f - h)) / h
    v_after = (pos(h) - pos(0.0)) / h
    speed = np.mean([np.linalg.norm(pos(t + h) - pos(t)) / h for t in np.linspace(0, f, 17)])
    return jump / max(speed, 1e-12), np.linalg.norm(v_before - v_after) / max(speed, 1e-12)


def test_camera_path_loops_smoothly_through_keyframes():
    keys = [Camera((math.cos(a), 0.3 * math.sin(2 * a), math.sin(a)), (0, 0, 0), (0, 1, 0), 40 + 5 * math.sin(a))
            for a in np.linspace(0, 2 * math.pi, 6, endpoint=False)]
    path = CameraPath(keys, frames_per_loop=300)
    for i, k in enumerate(keys):  # interpolating: passes through every keyframe at its time
        assert path.at(i * 50) == k
    assert path.at(17.5) == path.at(317.5) == path.at(-282.5)
    jump, dv = _c1_seam_error(path)
    assert jump < 1e-6 and dv < 1e-2
    # No jumps anywhere: consecutive frames stay close.
    steps = [np.linalg.norm(path.at(t + 1).origin - path.at(t).origin) for t in range(300)]
    assert max(steps) < 3 * np.mean(steps)


def test_orbit_path_starts_at_camera_and_moves_around_centre():
    cam = Camera((0, 1, 5), (0, 1, 0), (0, 1, 0), 30.0)
    path = orbit_path(cam, cam.target, frames=240)
    assert path.frames_per_loop == 240 and path.at(0) == cam
    cams = path.sample(48)
    assert max(np.linalg.norm(c.origin - cam.origin) for c in cams) > 0.3
    for c in cams:  # keeps looking at the centre, from no further than the start
        np.testing.assert_allclose(c.target, cam.target, atol=1e-6)
        assert np.linalg.norm(c.origin - cam.target) <= 5.0 + 1e-6
    jump, dv = _c1_seam_error(path)
    assert jump < 1e-6 and dv < 1e-2


# ------------------------------------------------------------------------------------------------ pairs


def test_pair_shapes_devices_and_independence(tracer, loaded):
    pair = tracer.render_pair(loaded.path.at(3), 3)
    for t in (pair.noisy_a, pair.noisy_b, pair.albedo, pair.normal):
        assert t.shape == (32, 32, 3) and t.dtype == torch.float32 and t.device == tracer.device
    assert pair.frame == 3 and pair.seeds == (6, 7) and pair.render_ms > 0
    a, b = pair.noisy_a.cpu().numpy(), pair.noisy_b.cpu().numpy()
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    assert not np.allclose(a, b)  # two seeds: two different noise realisations
    # each stream's emission seen straight on is a part of its colour (same samples): the light in view, its edge
    e, colour = pair.emission.cpu(), torch.stack([pair.noisy_a, pair.noisy_b]).cpu()
    assert e.shape == (2, 32, 32, 3) and (e <= colour + 1e-4).all() and e.amax(dim=(1, 2, 3)).min() > 1.0
    assert pair.shape.shape == (2, 32, 32) and not torch.equal(e[0], e[1])


def test_same_frame_renders_identically_and_seed_offset_shifts(tracer, loaded):
    from renderer.tracer import PathTracer

    cam = loaded.path.at(5)
    p1, p2 = tracer.render_pair(cam, 5), tracer.render_pair(cam, 5)
    assert torch.equal(p1.noisy_a, p2.noisy_a) and torch.equal(p1.albedo, p2.albedo)
    shifted = PathTracer(loaded, spp=8, seed=1000)
    p3 = shifted.render_pair(cam, 5)
    assert p3.seeds == (2010, 2011) and not torch.equal(p1.noisy_a, p3.noisy_a)
    # Frame 1005 of the unshifted tracer is the same render as frame 5 of the shifted one.
    assert torch.equal(tracer.render_pair(cam, 1005).noisy_b, p3.noisy_b)


def test_pair_is_unbiased_against_a_reference(tracer, loaded):
    cam = loaded.path.at(0)
    pair = tracer.render_pair(cam, 11)
    ref = tracer.render_reference(cam, spp=512, chunk_spp=128).cpu().numpy()
    a, b = pair.noisy_a.cpu().numpy(), pair.noisy_b.cpu().numpy()
    n = a.size
    # Standard error of an 8-spp image's mean, estimated from the pair: Var(a - b) = 2 Var(a).
    se = np.std(a - b) / math.sqrt(2 * n)
    se_total = se * math.sqrt(1 + 8 / 512)  # the reference's own noise
    for img in (a, b):
        assert abs(img.mean() - ref.mean()) < 5 * se_total + 1e-4
    # Per channel as well, and the pair's average is much closer to the reference than one image.
    for ch in range(3):
        assert abs(a[..., ch].mean() - ref[..., ch].mean()) < 5 * math.sqrt(3) * se_total + 1e-4
    assert np.mean((0.5 * (a + b) - ref) ** 2) < np.mean((a - ref) ** 2)
    # Independent noise: the two images' errors are uncorrelated (a shared seed would give exactly 1).
    assert abs(np.corrcoef((a - ref).ravel(), (b - ref).ravel())[0, 1]) < 0.2


def test_aov_albedo_and_normals(tracer, loaded):
    from renderer.tracer import PathTracer

    pair = tracer.render_pair(loaded.path.at(40), 40)
    albedo, normal = pair.albedo.cpu().numpy(), pair.normal.cpu().numpy()
    assert albedo.min() >= 0.0 and albedo.max() <= 1.0 and albedo.max() > 0.3
    length = np.linalg.norm(normal, axis=-1)
    assert length.max() <= 1.0 + 1e-4  # a mean of unit vectors
    hit = length > 0
    assert hit.mean() > 0.5 and np.median(length[hit]) > 0.999
    # At one sample per pixel the box-filtered normal is exactly one sample: unit length or no hit.
    one = PathTracer(loaded, spp=1).render_pair(loaded.path.at(40), 40)
    length1 = np.linalg.norm(one.normal.cpu().numpy(), axis=-1)
    assert np.all((np.abs(length1 - 1) < 1e-4) | (length1 == 0))
    # More samples average the pixel: the 8-spp normal and albedo are close to the 1-spp ones on average.
    assert np.mean(np.abs(one.albedo.cpu().numpy() - albedo)) < 0.1


def test_no_kernel_recompilation_after_the_first_camera_move(tracer, loaded):
    import drjit as dr

    tracer.render_pair(loaded.path.at(100), 100)
    tracer.render_pair(loaded.path.at(101), 101)  # the first move (may compile once)
    dr.set_flag(dr.JitFlag.KernelHistory, True)
    try:
        dr.kernel_history()  # drop anything recorded so far
        for f in (130, 170, 200, 260):  # camera position and field of view change every time
            tracer.render_pair(loaded.path.at(f), f)
        history = dr.kernel_history()
    finally:
        dr.set_flag(dr.JitFlag.KernelHistory, False)
    if not history:
        pytest.skip("no kernel history (scalar variant)")
    jit = [k for k in history if k["type"] == dr.KernelType.JIT]
    assert jit, "renders launched no JIT kernels?"
    compiled = [k for k in jit if not k.get("cache_hit", True)]
    assert not compiled, f"{len(compiled)} of {len(jit)} kernels were compiled again after a camera move"


def test_a_render_size_compiles_once(tracer, loaded):
    """The viewer's dynamic resolution moves between a few sizes: a size seen before must come from Dr.Jit's kernel
    cache (each new film size compiles the path tracer's kernels once, a second or more)."""
    import drjit as dr

    start = (tracer.width, tracer.height)
    sizes = [(40, 32), start, (40, 32), start, (40, 32)]
    compiled = []
    dr.set_flag(dr.JitFlag.KernelHistory, True)
    try:
        for i, size in enumerate(sizes):
            dr.kernel_history()
            tracer.resize(*size)
            pair = tracer.render_pair(loaded.path.at(300 + i), 300 + i)
            assert tuple(pair.noisy_a.shape[:2]) == (size[1], size[0])
            jit = [k for k in dr.kernel_history() if k["type"] == dr.KernelType.JIT]
            # compiled now, or loaded from Dr.Jit's disk cache (a size this machine rendered before): either way not
            # yet in this process's kernel cache
            compiled.append(sum(not k.get("cache_hit", True) or k.get("cache_disk", False) for k in jit))
    finally:
        dr.set_flag(dr.JitFlag.KernelHistory, False)
        tracer.resize(*start)
    if not any(compiled):
        pytest.skip("no kernel history (scalar variant)")
    assert compiled[0] > 0  # a new size needs new kernels (else this test would prove nothing)
    assert compiled[2:] == [0, 0, 0], compiled  # every size once seen: no compilation at all


def test_reference_is_chunked_and_cached(tracer, loaded):
    cam = loaded.path.at(77)
    t0 = time.perf_counter()
    r1 = tracer.render_reference(cam, spp=64, chunk_spp=16)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    r2 = tracer.render_reference(cam, spp=64, chunk_spp=16)
    t_second = time.perf_counter() - t0
    assert r1.shape == (32, 32, 3) and torch.equal(r1, r2) and t_second < t_first
    r2.zero_()  # callers get a copy: the cache is not changed through it
    assert torch.equal(tracer.render_reference(cam, spp=64, chunk_spp=16), r1)
    # Chunks use seeds distinct from every pair seed: the reference is not a sum of pair renders.
    pair = tracer.render_pair(cam, 0)
    assert not torch.equal(r1, pair.noisy_a)
    # Another seed base gives another (independent) estimate of the same image, cached on its own.
    r3 = tracer.render_reference(cam, spp=64, chunk_spp=16, first_seed=2**31 + 2**29)
    assert not torch.equal(r3, r1) and torch.equal(tracer.render_reference(cam, spp=64, chunk_spp=16), r1)
    assert abs(r3.mean().item() - r1.mean().item()) < 0.05 * r1.mean().item()
    with pytest.raises(ValueError, match="32-bit"):
        tracer.render_reference(cam, spp=64, first_seed=2**32 - 10)


def test_odd_sizes_and_resize(variant):
    from renderer.scene import load_scene
    from renderer.tracer import PathTracer

    loaded = load_scene("cornell-box", 37, 29)
    tracer = PathTracer(loaded, spp=2)
    pair = tracer.render_pair(loaded.start, 0)
    assert pair.noisy_a.shape == (29, 37, 3) and pair.normal.shape == (29, 37, 3)
    tracer.resize(24, 20)
    resized = tracer.render_pair(loaded.start, 0)
    fresh = PathTracer(load_scene("cornell-box", 24, 20), spp=2).render_pair(loaded.start, 0)
    assert resized.noisy_a.shape == (20, 24, 3)
    torch.testing.assert_close(resized.noisy_a, fresh.noisy_a)  # same seeds, same picture as a new load
    with pytest.raises(SceneError):
        load_scene("cornell-box", 0, 10)


# ------------------------------------------------------------------------------------------------ XML

MINI_XML = """<scene version="3.0.0">
    <default name="spp" value="16"/>
    {integrator}
    {sensor}
    <bsdf type="diffuse" id="grey"><rgb name="reflectance" value="0.5"/></bsdf>
    <shape type="rectangle"><ref id="grey"/></shape>
    <shape type="sphere"><point name="center" x="0" y="0" z="0.5"/><float name="radius" value="0.3"/>
        <bsdf type="diffuse"/></shape>
    <emitter type="constant"><rgb name="radiance" value="1.0"/></emitter>
</scene>
"""
SENSOR_XML = """<sensor type="perspective" id="cam">
        <float name="fov" value="45"/>
        <transform name="to_world"><lookat origin="0, -3, 2" target="0, 0, 0.5" up="0, 0, 1"/></transform>
        <sampler type="stratified"><integer name="sample_count" value="$spp"/></sampler>
        <film type="hdrfilm"><integer name="width" value="640"/><integer name="height" value="480"/>
            <rfilter type="gaussian"/></film>
    </sensor>"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_xml_scene_forces_film_filter_and_wraps_integrator(variant, tmp_path):
    import mitsuba as mi

    from renderer.scene import load_scene
    from renderer.tracer import PathTracer

    integrator = ('<integrator type="aov"><string name="aovs" value="dd:depth"/>'
                  '<integrator type="path"><integer name="max_depth" value="$spp"/></integrator></integrator>')
    path = _write(tmp_path, "mini.xml", MINI_XML.format(integrator=integrator, sensor=SENSOR_XML))
    loaded = load_scene(str(path), 20, 12)
    film = loaded.scene.sensors()[0].film()
    assert list(film.size()) == [20, 12]
    assert film.rfilter().radius() == pytest.approx(0.5)  # box, although the file asks for gaussian
    img = np.array(mi.render(loaded.scene, spp=2))
    assert img.shape == (12, 20, 12)  # aov(albedo, normal, position) around the file's own (unwrapped) integrator
    assert "max_depth = 16" in str(loaded.integrator)  # $spp substituted from the file's <default>
    # The start camera is the sensor's; the target is where its central ray hits the sphere.
    np.testing.assert_allclose(loaded.start.origin, [0, -3, 2], atol=1e-5)
    assert loaded.start.fov_deg == pytest.approx(45.0, abs=1e-3)
    hit = loaded.start.target
    assert abs(np.linalg.norm(hit - np.array([0, 0, 0.5])) - 0.3) < 1e-3
    assert loaded.path.at(0) == loaded.start and loaded.path.at(60) != loaded.start
    pair = PathTracer(loaded, spp=2).render_pair(loaded.path.at(60), 0)
    assert pair.noisy_a.shape == (12, 20, 3) and torch.isfinite(pair.noisy_a).all()


def test_xml_sensor_in_an_included_fragment(variant, tmp_path):
    from renderer.scene import load_scene

    (tmp_path / "parts").mkdir()
    _write(tmp_path / "parts", "camera.xml", f'<scene version="3.0.0">{SENSOR_XML}</scene>')
    main = MINI_XML.format(integrator="", sensor='<include filename="parts/camera.xml"/>')
    loaded = load_scene(_write(tmp_path, "main.xml", main), 16, 16)
    assert list(loaded.scene.sensors()[0].film().size()) == [16, 16]
    assert "PathIntegrator" in str(loaded.integrator)  # no integrator in the file: the default path tracer


@pytest.mark.parametrize(
    "case, content, fragment",
    [
        ("unknown scene name", None, "cornell-box"),
        ("missing file", None, "nope.xml"),
        ("invalid XML", "<scene version='3.0.0'><shape type='sphere'></scene>", "invalid XML"),
        ("no sensor", MINI_XML.format(integrator="", sensor=""), "no <sensor>"),
        ("Mitsuba rejects", MINI_XML.format(integrator='<integrator type="warp_drive"/>', sensor=SENSOR_XML),
         "warp_drive"),
        ("missing include", '<scene version="3.0.0"><include filename="gone.xml"/></scene>', "gone.xml"),
        ("orthographic", MINI_XML.format(integrator="", sensor=SENSOR_XML.replace("perspective", "orthographic")
                                         .replace('<float name="fov" value="45"/>', "")), "orthographic"),
        ("not a scene", "<shape type='sphere'/>", "not a Mitsuba scene"),
    ],
)
def test_bad_scenes_raise_one_line_scene_errors(variant, tmp_path, case, content, fragment):
    from renderer.scene import load_scene

    if case == "unknown scene name":
        spec = "no-such-scene"
    elif case == "missing file":
        spec = str(tmp_path / "nope.xml")
    else:
        spec = str(_write(tmp_path, "bad.xml", content))
    with pytest.raises(SceneError) as err:
        load_scene(spec, 16, 16)
    msg = str(err.value)
    assert "\n" not in msg and fragment in msg, msg
    if case != "unknown scene name":
        assert Path(spec).name in msg  # names the file
    assert isinstance(err.value, ValueError)


# ------------------------------------------------------------------------------------------------ shared

# (file, render it?) Bitterli's scene.xml asks for aov(direct) with 64 emitter and 64 BSDF samples per sample:
# Dr.Jit unrolls those into one huge kernel that is far too slow to compile for a test, so it is only loaded.
EXTERNAL = [("bitterli-cornell-box/scene_path.xml", True), ("bitterli-cornell-box/scene.xml", False),
            ("mitsuba-cbox/cbox.xml", True), ("mitsuba-matpreview/matpreview.xml", True)]


@pytest.mark.parametrize("rel, render", EXTERNAL)
def test_external_scenes_load_and_render(variant, rel, render):
    from renderer.scene import load_scene
    from renderer.tracer import PathTracer

    path = SHARED_SCENES / rel
    if not path.is_file():
        pytest.skip(f"{rel} not available beside the checkout")
    loaded = load_scene(str(path), 24, 16)
    film = loaded.scene.sensors()[0].film()
    assert list(film.size()) == [24, 16] and film.rfilter().radius() == pytest.approx(0.5)  # tent/gaussian -> box
    assert np.linalg.norm(loaded.path.at(120).origin - loaded.start.origin) > 0
    assert "AOVIntegrator" not in str(loaded.integrator)  # scene.xml's own aov wrapper is unwrapped
    if render:
        pair = PathTracer(loaded, spp=1).render_pair(loaded.path.at(100), 0)
        assert pair.noisy_a.shape == (16, 24, 3)
        assert torch.isfinite(pair.noisy_a).all() and pair.noisy_a.mean() > 0
