"""n2n-export: tiny views of a bundled scene, OIDN's naming, read-back, resume, shards, bad input."""
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mitsuba")

from n2n_live.commands import export  # noqa: E402
from n2n_live.exr import read_rgb  # noqa: E402
from offline_experiments import mc_dataset  # noqa: E402

TINY = ["--scene", "cornell-box", "--views", "3", "--size", "16x12", "--spp", "1,2", "--ref-spp", "4", "--quiet"]


def run_export(argv) -> int:
    try:
        export.main([str(a) for a in argv])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def oidn_sample_groups(folder: Path) -> dict[str, tuple[list[str], str | None]]:
    """What Intel OIDN's training/dataset.py (get_image_sample_groups) makes of a folder, restated:
    names without the two extensions, grouped by the prefix before a last `_<digits>spp`/`_ref` field;
    sorted, the last name of a group is the target and the others are its inputs."""
    groups = defaultdict(set)
    for p in folder.glob("*.*.exr"):
        name = p.name.rsplit(".", 2)[0]
        group = name
        if "_" in name:
            prefix, suffix = name.rsplit("_", 1)
            suffix = suffix.lower()
            if suffix.isdecimal() or (suffix.endswith("spp") and suffix[:-3].isdecimal()) or suffix in (
                    "ref", "reference", "gt", "target"):
                group = prefix
        groups[group].add(name)
    result = {}
    for g, names in groups.items():
        names = sorted(names)
        result[g] = (names[:-1], names[-1]) if len(names) > 1 else (names, None)
    return result


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "data"
    assert run_export([*TINY, "--out", out]) == 0
    return out


def test_export_names_match_oidn_and_read_back(dataset):
    groups = oidn_sample_groups(dataset)
    assert len(groups) == 3 * 2  # a group per view and realisation
    for group, (inputs, target) in groups.items():
        assert inputs == [f"{group}_0001spp", f"{group}_0002spp"] and target == f"{group}_ref"
        for name in inputs:  # OIDN needs the features of every input
            assert all((dataset / f"{name}.{f}.exr").is_file() for f in ("hdr", "alb", "nrm"))
    # The realisations of a pair share albedo, normal and reference as hard links (no copies).
    a, b = dataset / "cornell-box_view0001_a_ref.hdr.exr", dataset / "cornell-box_view0001_b_ref.hdr.exr"
    assert os.path.samefile(a, b)
    # The reference's own albedo and normal (OIDN's --clean_aux targets), shared by the realisations too.
    for f in ("alb", "nrm"):
        ref_a, ref_b = (dataset / f"cornell-box_view0001_{t}_ref.{f}.exr" for t in "ab")
        assert ref_a.is_file() and os.path.samefile(ref_a, ref_b)

    manifest = json.loads((dataset / "manifest.json").read_text())
    views = manifest["views"]
    assert [v["name"] for v in views] == [f"cornell-box_view{i:04d}" for i in range(3)]
    assert {v["kind"] for v in views} == {"path", "random"}
    seeds = [s for v in views for r in v["renders"] for s in (*r["seeds"].values(), r["feature_seed"])]
    # a reference renders at most `spp` chunks with seeds first_seed + k: each view owns that whole range
    seeds += [s for v in views for s in range(v["reference"]["first_seed"], v["reference"]["first_seed"] + v["reference"]["spp"])]
    n_ref_seeds = sum(v["reference"]["spp"] for v in views)
    assert len(seeds) == len(set(seeds)) == 3 * 2 * 3 + n_ref_seeds  # every render has its own seeds
    aux = [s for v in views for s in range(v["reference"]["features_first_seed"],
                                           v["reference"]["features_first_seed"] + v["reference"]["spp"])]
    assert len(set(aux)) == n_ref_seeds and not set(aux) & set(seeds)  # the reference's features: seeds of their own
    assert all(r["render_ms"] > 0 for v in views for r in v["renders"]) and views[0]["camera"]["fov_deg"] > 0

    loaded = mc_dataset.load(mc_dataset.scan(dataset), need_reference=True, min_realisations=2)
    assert len(loaded) == 3
    for v in loaded:
        assert v.reference.shape == (12, 16, 3) and sorted(v.noisy) == [1, 2]
        colour, albedo, normal, emission = v.noisy[2][0]
        assert colour.shape == albedo.shape == normal.shape == (12, 16, 3)
        assert not np.array_equal(v.noisy[2][0][0], v.noisy[2][1][0])  # independent realisations
        assert np.isfinite(colour).all() and colour.mean() > 0 and 0 <= albedo.min() and albedo.max() <= 1
        # each realisation's directly seen emission, a part of its own colour (the live network filters it apart)
        assert emission.shape == colour.shape and 0 <= emission.min() and (emission <= colour + 1e-4).all()
    lights = [v.noisy[2][k][3] for v in loaded for k in (0, 1)]
    assert max(float(e.max()) for e in lights) > 1.0  # the Cornell box's light is in view
    ref_albedo = read_rgb(dataset / "cornell-box_view0001_a_ref.alb.exr")
    ref_normal = read_rgb(dataset / "cornell-box_view0001_a_ref.nrm.exr")
    assert ref_albedo.shape == ref_normal.shape == (12, 16, 3) and 0 <= ref_albedo.min() and ref_albedo.max() <= 1
    assert ref_albedo.mean() > 0 and np.abs(ref_normal).max() > 0.5


def test_resume_skips_complete_views_and_redoes_a_broken_one(dataset, capsys):
    mtimes = {p.name: p.stat().st_mtime_ns for p in dataset.glob("*.exr")}
    capsys.readouterr()
    assert run_export([*TINY, "--out", dataset]) == 0
    assert "0 views rendered, 3 already complete" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in dataset.glob("*.exr")} == mtimes

    # A view killed half-way: its sidecar (written last) is missing, a file is gone, a temporary is left.
    (dataset / "views" / "cornell-box_view0002.json").unlink()
    (dataset / "cornell-box_view0002_b_0002spp.hdr.exr").unlink()
    (dataset / ".cornell-box_view0002_a_ref.hdr.x1y2.tmp.exr").write_bytes(b"half")
    assert run_export([*TINY, "--out", dataset]) == 0
    assert "1 views rendered, 2 already complete" in capsys.readouterr().err
    assert (dataset / "cornell-box_view0002_b_0002spp.hdr.exr").is_file()
    assert not list(dataset.glob(".*"))
    changed = {p.name for p in dataset.glob("*.exr") if p.stat().st_mtime_ns != mtimes.get(p.name)}
    assert changed and all(n.startswith("cornell-box_view0002_") for n in changed)
    assert len(json.loads((dataset / "manifest.json").read_text())["views"]) == 3


def test_shards_split_the_views(tmp_path):
    out = tmp_path / "data"
    args = ["--scene", "cornell-box", "--views", "3", "--size", "8", "--spp", "1", "--ref-spp", "1",
            "--realisations", "3", "--quiet", "--out", out]
    assert run_export([*args, "--shard", "1/2"]) == 0
    assert sorted(p.stem for p in (out / "views").glob("*.json")) == ["cornell-box_view0001"]
    assert run_export([*args, "--shard", "0/2"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [v["name"] for v in manifest["views"]] == [f"cornell-box_view{i:04d}" for i in range(3)]
    assert {r for v in manifest["views"] for rec in v["renders"] for r in rec["seeds"]} == {"a", "b", "c"}
    assert len(mc_dataset.scan(out)[0].noisy[1]) == 3


def test_bad_input_one_line_exit_2(tmp_path, dataset, capsys):
    def fails(argv, *words):
        capsys.readouterr()
        assert run_export(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and all(w in lines[-1] for w in words), lines

    fails(["--scene", "no-such-scene", "--out", tmp_path / "x", "--quiet"], "no-such-scene")
    fails(["--scene", str(tmp_path / "missing.xml"), "--out", tmp_path / "x", "--quiet"], "missing.xml")
    fails([*TINY[:-1], "--out", dataset, "--size", "32"], "size")  # other settings into an existing dataset
    capsys.readouterr()
    assert run_export([*TINY, "--out", tmp_path / "x", "--shard", "2/2"]) == 2  # argparse: usage + one error line
    assert "--shard" in capsys.readouterr().err.strip().splitlines()[-1]


def test_every_scene_is_checked_before_the_first_is_rendered(tmp_path, capsys):
    """A bad second scene used to be found after the first one's views were written: a partial dataset. The check
    (renderer.scene.check_spec) needs no renderer and follows includes like Mitsuba."""
    from renderer.errors import SceneError
    from renderer.scene import check_spec

    (tmp_path / "cam.xml").write_text("<scene version='3.0.0'><sensor type='perspective'/></scene>")
    (tmp_path / "inc.xml").write_text("<scene version='3.0.0'><include filename='cam.xml'/><shape type='sphere'/></scene>")
    (tmp_path / "gone.xml").write_text("<scene version='3.0.0'><include filename='nothere.xml'/></scene>")
    assert check_spec(tmp_path / "inc.xml") == "inc" and check_spec("cornell-box") == "cornell-box"
    with pytest.raises(SceneError, match="gone.xml: included file .*nothere.xml"):
        check_spec(tmp_path / "gone.xml")
    for bad in ("no-such-scene", tmp_path / "gone.xml", tmp_path / "cam.xml.missing.xml"):
        capsys.readouterr()
        assert run_export([TINY[0], f"cornell-box,{bad}", *TINY[2:], "--out", tmp_path / "x"]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def dataset_seeds(out: Path) -> set[int]:
    """Every seed an export's records say it rendered with (a reference owns `spp` seeds from its first)."""
    found = set()
    for v in json.loads((out / "manifest.json").read_text())["views"]:
        found |= {s for r in v["renders"] for s in (*r["seeds"].values(), r["feature_seed"])}
        ref = v["reference"]
        for first in (ref["first_seed"], ref.get("features_first_seed")):
            if first is not None:
                found |= set(range(first, first + ref["spp"]))
    return found


def test_training_and_validation_exports_share_no_seed_and_no_first_camera(tmp_path):
    common = ["--scene", "cornell-box", "--size", "8", "--spp", "1", "--ref-spp", "4", "--quiet"]
    assert run_export([*common, "--views", "6", "--out", tmp_path / "train"]) == 0
    assert run_export([*common, "--views", "2", "--seed", "1", "--out", tmp_path / "val"]) == 0
    train, val = dataset_seeds(tmp_path / "train"), dataset_seeds(tmp_path / "val")
    assert not train & val, sorted(train & val)[:8]
    assert len(train) == 6 * 3 + 6 * 8 and len(val) == 2 * 3 + 2 * 8
    first = [json.loads((tmp_path / d / "views" / "cornell-box_view0000.json").read_text())["camera"]
             for d in ("train", "val")]
    assert first[0]["origin"] != first[1]["origin"] or first[0]["target"] != first[1]["target"]


def test_an_export_of_the_older_seed_map_is_refused(dataset, tmp_path, capsys):
    old = tmp_path / "old"
    (old / "views").mkdir(parents=True)
    record = json.loads((dataset / "views" / "cornell-box_view0000.json").read_text())
    del record["settings"]["seed_map"]  # what the older n2n-export recorded
    (old / "views" / "cornell-box_view0000.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert run_export([*TINY, "--out", old]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "older n2n-export" in lines[0], lines
