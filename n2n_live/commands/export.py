"""`n2n-export`: render an EXR training dataset (noisy pairs, albedo, normal, references) from scenes.
With `--ref-spp 0` no reference is rendered or written: a dataset for noisy targets only (the warm start's).

    n2n-export --scene cornell-box --views 64 --size 256 --spp 8,64 --ref-spp 4096 --out data/cbox [--shard 0/4]

File names follow Intel Open Image Denoise's training toolkit (`training/dataset.py`), so its `preprocess.py` and
`train.py` read our datasets. OIDN strips the two extensions (`name.hdr.exr` -> `name`), splits the last `_`
field off and, when that field is `<digits>spp`, digits, `ref`, `reference`, `gt` or `target`, groups the file
under the prefix; in each group the sorted-last name is the target and the others are inputs, each input needing
its own `.alb.exr` and `.nrm.exr`. One group therefore holds one noisy image per spp level and one reference: a
second independent realisation cannot sit in the same group (its last field would have to be the same
`0008spp`). So every realisation r (a, b, ...) of a view is its own OIDN group, `<view>_<r>`:

    cornell-box_view0007_a_0008spp.hdr.exr  .alb.exr  .nrm.exr     realisation a at 8 spp
    cornell-box_view0007_b_0008spp.hdr.exr  .alb.exr  .nrm.exr     realisation b (independent seeds)
    cornell-box_view0007_a_ref.hdr.exr  .alb.exr  .nrm.exr         the reference of group a ...
    cornell-box_view0007_b_ref.hdr.exr  .alb.exr  .nrm.exr         ... and of group b: hard links, no copies

OIDN pairs each realisation with the reference (clean targets, its own way of training); our batch trainer reads
the same names, puts the realisations of a view back together (Noise2Noise pairs) and reads each reference once.
Each realisation also gets `.emi.exr`, the part of its colour seen straight from a light (its own samples': the live
network filters it apart, and the warm start learns the same way; OIDN's toolkit ignores the file).
A pair's albedo and normal are the same image for both realisations (hard links too). The reference's albedo and
normal, rendered at the reference's spp, are the clean features OIDN's `train.py --clean_aux` trains with.

Every seed comes from `renderer.seeds`: each --seed owns blocks of seeds of its own, and a view's seeds derive
from (--seed, view), so datasets exported with different seeds (a training and a validation set) share no seed
whatever their view counts, and none with a live run's streams. The path views of each seed start at their own
point of the fly-through, so two such sets do not share their first camera either.

Per view, `views/<view>.json` records the camera, the seed of every render and the render times; it is written
last, so a view is complete exactly when it exists with all its files, and a re-run skips complete views. Every
file is written under a temporary name and renamed (`io_utils.atomic_path`): a killed export leaves no
half-written image under a dataset name. `manifest.json` gathers the views' records; each process rewrites it
when it finishes (with `--shard i/n`, the last one to finish writes the complete manifest; `--manifest-only`
rebuilds it).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from renderer import seeds

from ..dataset_names import REALISATION_TAGS, noisy_name, reference_name
from ..errors import UserError, exit_on_user_error
from ..io_utils import atomic_path, write_json
from ..validate import (MAX_SPP, ArgumentParser, check_output_dir, check_render, integer, nonempty, path_arg, real,
                       size, spp_list)

PROG = "n2n-export"
FORMAT = "n2n-live-dataset/1"
RANDOM_CONE_DEG = 40.0
# Recorded in the settings: views exported by code with another seed map (or without reference features) cannot
# be resumed into one dataset.
SEED_MAP = 2
REFERENCE_CHUNK_SPP = 64
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # path phase per seed: frac(seed * GOLDEN) never repeats


def view_name(scene: str, index: int) -> str:
    return f"{re.sub(r'[^A-Za-z0-9-]+', '-', scene)}_view{index:04d}"


# --- views: along the fly-through and random ones inside the scene ---

def _unit(v):
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def view_cameras(path, count: int, path_fraction: float, seed: int, scene: int = 0) -> list[tuple[str, float, Any]]:
    """`count` (kind, frame, Camera): the first part evenly along the path, the rest random near it.

    The path views of seed s start frac(s * GOLDEN) of a spacing along the path: another seed, another first
    camera (seed 0 starts at frame 0). A random view takes a random point of the path, moves the eye by about
    15 % of its look distance, and looks in a random direction within RANDOM_CONE_DEG of the path's (so that it
    sees the scene, not the void behind an open side or the inside of a wall). Deterministic in (seed, scene, index): shards and re-runs agree.
    """
    from renderer.camera import Camera

    n_path = min(count, max(0, round(count * path_fraction)))
    phase = (seed * GOLDEN) % 1.0
    views = []
    for i in range(count):
        if i < n_path:
            frame = (i + phase) * path.frames_per_loop / n_path
            views.append(("path", frame, path.at(frame)))
            continue
        rng = np.random.default_rng([seed * 1000 + scene, 7919, i])  # the older export's views (seed 0)
        frame = float(rng.uniform(0, path.frames_per_loop))
        cam = path.at(frame)
        dist = float(np.linalg.norm(cam.target - cam.origin))
        origin = cam.origin + rng.normal(size=3) * 0.15 * dist / math.sqrt(3)
        d = cam.direction
        while True:  # uniform direction in the cone around d (rejection sampling)
            r = _unit(rng.normal(size=3))
            if np.dot(r, d) >= math.cos(math.radians(RANDOM_CONE_DEG)):
                break
        views.append(("random", frame, Camera(origin, origin + dist * r, cam.up, cam.fov_deg)))
    return views


# --- files ---

def _link(src: Path, dst: Path) -> None:
    """dst becomes the same file as src (a hard link; a copy where the file system has none), atomically."""
    with atomic_path(dst) as tmp:
        try:
            os.unlink(tmp)
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def _is_complete(out: Path, view: str) -> bool:
    sidecar = out / "views" / f"{view}.json"
    if not sidecar.is_file():
        return False
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return False
    return all((out / f).is_file() for f in record.get("files", []))


def _remove_temporaries(out: Path, view: str) -> None:
    """Temporaries a killed run left for this view (atomic_path names them `.<stem>.<random>.tmp<suffix>`)."""
    for p in out.glob(f".{view}_*.tmp*"):
        try:
            p.unlink()
        except OSError:
            pass
    for p in (out / "views").glob(f".{view}.*.tmp*"):
        try:
            p.unlink()
        except OSError:
            pass


def write_manifest(out: Path) -> dict:
    """Gather views/*.json into manifest.json (atomic). Returns the manifest."""
    records = []
    for p in sorted((out / "views").glob("*.json")):
        try:
            records.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    settings = records[0]["settings"] if records else {}
    manifest = {"format": FORMAT, "naming": "OIDN training toolkit: <view>_<r>_<NNNN>spp.{hdr,alb,nrm}.exr, "
                "<view>_<r>_ref.{hdr,alb,nrm}.exr; r = independent realisation",
                "settings": settings, "scenes": sorted({r["scene"] for r in records}),
                "views": records}
    write_json(out / "manifest.json", manifest)
    return manifest


def _render_view(out: Path, tracers: dict, v: dict, settings: dict) -> dict:
    """Render and write one view's files; return its record (the sidecar is written by the caller)."""
    name, cam, g, seed = v["name"], v["camera"], v["global_index"], settings["seed"]
    tags = REALISATION_TAGS[:settings["realisations"]]
    n_pairs, per_view = (len(tags) + 1) // 2, _pairs_per_view(settings)
    renders, files = [], []
    for k, spp in enumerate(settings["spp"]):
        tracer = tracers[spp]
        for p in range(n_pairs):
            index = k * n_pairs + p  # (spp level, pair): its own seeds among the view's
            pair_seeds = seeds.export_pair(seed, g, index, per_view)
            pair = tracer.render_pair(cam, index, pair_seeds)
            pair_tags = tags[2 * p:2 * p + 2]
            alb, nrm = (out / noisy_name(name, pair_tags[0], spp, f) for f in ("alb", "nrm"))
            _write(alb, pair.albedo)
            _write(nrm, pair.normal)
            render = {"spp": spp, "pair": index, "files": {}, "seeds": {}, "feature_seed": pair_seeds[2],
                      "render_ms": round(float(pair.render_ms), 3)}  # both noisy images and the feature pass
            for t, image, render_seed in zip(pair_tags, (pair.noisy_a, pair.noisy_b), pair.seeds):
                hdr = out / noisy_name(name, t, spp, "hdr")
                _write(hdr, image)
                if t != pair_tags[0]:  # the same albedo and normal for both realisations of a pair
                    _link(alb, out / noisy_name(name, t, spp, "alb"))
                    _link(nrm, out / noisy_name(name, t, spp, "nrm"))
                files += [noisy_name(name, t, spp, f) for f in ("hdr", "alb", "nrm")]
                render["files"][t], render["seeds"][t] = hdr.name, int(render_seed)
            if pair.emission is not None:  # each realisation's own: the live network filters a light's apart
                for t, emitted in zip(pair_tags, pair.emission):
                    _write(out / noisy_name(name, t, spp, "emi"), emitted)
                    files.append(noisy_name(name, t, spp, "emi"))
            renders.append(render)
    record = {"name": name, "scene": v["scene"], "kind": v["kind"], "frame": v["frame"], "index": v["index"],
              "camera": {"origin": cam.origin.tolist(), "target": cam.target.tolist(), "up": cam.up.tolist(),
                         "fov_deg": cam.fov_deg},
              "renders": renders, "reference": None, "settings": settings, "files": files}
    if not settings["ref_spp"]:
        return record  # --ref-spp 0: noisy pairs only, nothing clean is rendered
    ref_seeds = seeds.export_reference(seed, g, settings["ref_spp"])
    aux_seeds = seeds.export_reference_features(seed, g, settings["ref_spp"])
    tracer = tracers[settings["spp"][0]]
    t0 = time.perf_counter()
    ref = tracer.render_reference(cam, len(ref_seeds), REFERENCE_CHUNK_SPP, first_seed=ref_seeds.start)
    ref_ms = (time.perf_counter() - t0) * 1000.0
    albedo, normal = tracer.render_reference_features(cam, len(aux_seeds), REFERENCE_CHUNK_SPP, aux_seeds.start)
    for f, image in (("hdr", ref), ("alb", albedo), ("nrm", normal)):
        first = out / reference_name(name, tags[0], f)
        _write(first, image)
        for t in tags[1:]:
            _link(first, out / reference_name(name, t, f))
        files += [reference_name(name, t, f) for t in tags]
    record["reference"] = {"file": reference_name(name, tags[0]), "spp": settings["ref_spp"],
                           "chunk_spp": REFERENCE_CHUNK_SPP, "first_seed": ref_seeds.start,
                           "features_first_seed": aux_seeds.start, "render_ms": round(ref_ms, 3)}
    return record


def _pairs_per_view(settings: dict) -> int:
    """Noisy pairs of one view: a pair per two realisations (an odd last one uses half a pair), per spp level."""
    return len(settings["spp"]) * ((settings["realisations"] + 1) // 2)


def _write(path: Path, image) -> None:
    from ..exr import write_exr

    write_exr(path, {"": image})


# --- command line ---

def _shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m or int(m[2]) < 1 or int(m[1]) >= int(m[2]):
        raise argparse.ArgumentTypeError(f"expected i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return int(m[1]), int(m[2])


def parse_args(argv=None) -> argparse.Namespace:
    ap = ArgumentParser(prog=PROG, description="Render an EXR denoising dataset (OIDN training-toolkit names).")
    ap.add_argument("--scene", action="append", type=nonempty, required=False, metavar="NAME|XML",
                    help="bundled scene name or Mitsuba 3 XML file; repeat (or comma-separate) for several")
    ap.add_argument("--views", type=integer(1, 10**6), default=16, help="views per scene (default 16)")
    ap.add_argument("--path-fraction", type=real(0.0, 1.0), default=0.5,
                    help="fraction of the views evenly along the fly-through; the rest are random (default 0.5)")
    ap.add_argument("--size", type=size(), default=(256, 256), metavar="S|WxH", help="image size (default 256)")
    ap.add_argument("--spp", type=spp_list, default=[8], metavar="8[,64,...]", help="noisy spp levels (default 8)")
    ap.add_argument("--ref-spp", type=integer(0, MAX_SPP), default=1024, metavar="R",
                    help="reference spp (default 1024; 0: no references, a dataset for noisy targets only)")
    ap.add_argument("--realisations", type=integer(1, len(REALISATION_TAGS)), default=2,
                    help="independent noisy renders per view and spp (default 2)")
    ap.add_argument("--seed", type=integer(0, seeds.EXPORT_SEEDS - 1), default=0,
                    help="dataset seed: views and render seeds derive from it; datasets with different seeds share "
                    "no render seed (e.g. 0 for training, 1 for validation)")
    ap.add_argument("--variant", default=None, type=nonempty,
                    help="Mitsuba variant (default: cuda_ad_rgb, else llvm_ad_rgb, else scalar_rgb)")
    ap.add_argument("--out", required=True, type=path_arg, metavar="DIR", help="dataset folder")
    ap.add_argument("--shard", type=_shard, default=(0, 1), metavar="i/n", help="render only views with index %% n == i")
    ap.add_argument("--manifest-only", action="store_true", help="only rebuild DIR/manifest.json from views/*.json")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if not args.manifest_only and not args.scene:
        ap.error("--scene is required")
    args.scene = [s.strip() for spec in (args.scene or []) for s in spec.split(",") if s.strip()]
    if not args.manifest_only and not args.scene:
        ap.error("argument --scene: names no scene")
    check_output_dir(args.out, "--out")
    if not args.manifest_only:
        w, h = args.size
        check_render(w, h, max(args.spp), f"--size {w}x{h} --spp {max(args.spp)}")
        from renderer.scene import check_spec

        for spec in args.scene:  # every scene before the first is rendered: no partial dataset of the ones before
            check_spec(spec)
    return args


def export(args: argparse.Namespace) -> dict:
    out: Path = args.out
    if args.manifest_only:
        if not (out / "views").is_dir():
            raise UserError(f"{out}: no exported views (views/*.json) to gather")
        return write_manifest(out)
    width, height = args.size
    settings = {"size": [width, height], "spp": args.spp, "ref_spp": args.ref_spp, "realisations": args.realisations,
                "views_per_scene": args.views, "path_fraction": args.path_fraction, "seed": args.seed,
                "total_views": args.views * len(args.scene), "seed_map": SEED_MAP}
    _check_settings(out, settings)
    try:
        seeds.check_export(args.seed, settings["total_views"], _pairs_per_view(settings), args.ref_spp)
    except ValueError as e:
        raise UserError(f"--seed {args.seed}: {e}") from None

    from renderer.variant import choose_variant

    variant = choose_variant(args.variant)
    from renderer.scene import load_scene
    from renderer.tracer import PathTracer
    from tqdm import tqdm

    shard_i, shard_n = args.shard
    todo = []  # (scene index, spec, view indices of this shard)
    for s, spec in enumerate(args.scene):
        mine = [i for i in range(args.views) if (s * args.views + i) % shard_n == shard_i]
        todo.append((s, spec, mine))
    total = sum(len(m) for _, _, m in todo)
    done = skipped = 0
    # closed before an error leaves the loop, so that the error's one line is not followed by the bar again
    with tqdm(total=total, desc=PROG, unit="view", disable=args.quiet, file=sys.stderr) as bar:
        for s, spec, mine in todo:
            loaded = None
            for i in mine:
                # Cheap check first: a complete view needs neither the scene nor the renderer.
                scene_name = Path(spec).stem if spec.lower().endswith(".xml") else spec
                name = view_name(scene_name, i)
                if _is_complete(out, name):
                    skipped += 1
                    bar.update(1)
                    continue
                if loaded is None:
                    loaded = load_scene(spec, width, height)
                    cams = view_cameras(loaded.path, args.views, args.path_fraction, seed=args.seed, scene=s)
                    tracers = {spp: PathTracer(loaded, spp=spp) for spp in args.spp}
                kind, frame, cam = cams[i]
                _remove_temporaries(out, name)
                v = {"name": name, "scene": loaded.name, "kind": kind, "frame": float(frame), "camera": cam, "index": i,
                     "global_index": s * args.views + i}
                record = _render_view(out, tracers, v, settings)
                record["variant"] = variant
                write_json(out / "views" / f"{name}.json", record)
                done += 1
                bar.update(1)
    manifest = write_manifest(out)
    print(f"{PROG}: {done} views rendered, {skipped} already complete, {len(manifest['views'])} in {out}",
          file=sys.stderr)
    return manifest


def _check_settings(out: Path, settings: dict) -> None:
    """Refuse to mix datasets: a folder holds views exported with one set of settings."""
    for p in sorted((out / "views").glob("*.json"))[:1]:
        try:
            old = json.loads(p.read_text()).get("settings", {})
        except (OSError, ValueError):
            return
        if old.get("seed_map") != SEED_MAP:
            raise UserError(f"{out}: holds views exported by an older n2n-export (other seeds and cameras, no reference "
                            f"albedo/normal); use another --out")
        keys = ("size", "spp", "ref_spp", "realisations", "views_per_scene", "path_fraction", "seed", "total_views")
        diff = [k for k in keys if k in old and old[k] != settings[k]]
        if diff:
            k = diff[0]
            raise UserError(f"{out}: holds a dataset exported with {k}={old[k]} (now {settings[k]}); "
                            f"use another --out or the same settings")


def main(argv=None) -> None:
    with exit_on_user_error(PROG, at_once=True):  # Mitsuba's threads: no slow, crash-prone teardown
        export(parse_args(argv))


if __name__ == "__main__":
    main()
