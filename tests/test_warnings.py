"""Quiet surprises said once: a scene without a light source, a cache folder that cannot be written."""
from __future__ import annotations

import errno

import numpy as np
import torch
from test_baseline_cache import Counting, _item
from test_evaluation import Cam, FakeTracer

from n2n_live.evaluation.references import ReferenceStore
from offline_experiments.baseline_cache import BaselineCache

SCENE = """<scene version="3.0.0">
    <sensor type="perspective">
        <float name="fov" value="40"/>
        <transform name="to_world"><lookat origin="0, 0, 4" target="0, 0, 0" up="0, 1, 0"/></transform>
    </sensor>
    <shape type="sphere"><bsdf type="diffuse"/></shape>
    {light}
</scene>"""


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_a_scene_without_emitter_is_named_once(tmp_path, capfd):
    from renderer.scene import load_scene

    dark = tmp_path / "dark.xml"
    dark.write_text(SCENE.format(light=""))
    lit = tmp_path / "sky.xml"
    lit.write_text(SCENE.format(light='<emitter type="constant"/>'))  # an environment is a light source
    for size in (8, 12):  # loaded again (the viewer reloads on a size change): said once
        load_scene(dark, size, size)
    load_scene(lit, 8, 8)
    load_scene("cornell-box", 8, 8)
    said = warnings_in(capfd.readouterr().err)
    assert len(said) == 1 and str(dark) in said[0] and "no emitter" in said[0], said


def _blocked(tmp_path):
    """A cache folder that cannot be created, even by root: it would live under a regular file."""
    (tmp_path / "a_file").write_text("not a folder")
    return tmp_path / "a_file" / "cache"


def test_an_unwritable_reference_cache_is_named_once_and_the_run_goes_on(tmp_path, capfd):
    folder = _blocked(tmp_path)
    tracer = FakeTracer(size=16)
    first = ReferenceStore(tracer, spp=8, cache_dir=folder).get(Cam())
    again = ReferenceStore(tracer, spp=8, cache_dir=folder).get(Cam())  # a second store, same process
    assert not first.cached and not again.cached and torch.equal(first.image, again.image)
    said = warnings_in(capfd.readouterr().err)
    assert len(said) == 1 and str(folder) in said[0] and "not a directory" in said[0], said


def test_an_unwritable_baseline_cache_is_named_once_and_the_experiment_goes_on(tmp_path, capfd):
    folder = _blocked(tmp_path)
    f = Counting()
    cache = BaselineCache(folder)
    cache.get("BM3D at 25", _item(), f)
    cache.get("BM3D at 25", _item(seed=1), f)
    BaselineCache(folder).get("BM3D at 25", _item(), f)
    assert f.calls == 3 and cache.misses == 2
    said = warnings_in(capfd.readouterr().err)
    assert len(said) == 1 and str(folder) in said[0] and "not a directory" in said[0], said


def test_a_full_disk_under_the_baseline_cache_is_a_warning_not_an_error(tmp_path, capfd, monkeypatch):
    """atomic_path turns ENOSPC into a one-line UserError for the command's outputs; for a cache it only costs time."""
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    f = Counting()
    BaselineCache(tmp_path / "cache").get("m", _item(), f)
    said = warnings_in(capfd.readouterr().err)
    assert f.calls == 1 and len(said) == 1 and "no space left" in said[0], said
    assert not list((tmp_path / "cache").glob("*"))  # no temporary left behind
