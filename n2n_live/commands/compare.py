"""`n2n-compare`: the denoisers side by side on the same fly-through frames, with OIDN beside each.

    n2n-compare --scenes cornell-box,interior --variants paper,kernel,kernel+temporal --out runs/compare
    n2n-compare --size 64 --frames 40 --scenes cornell-box        # a quick design check

Each scene's noisy pairs (with albedo/normal/position) are rendered once, then every variant replays exactly those
frames through the live loop (LiveLoop in sync mode, its `render_pair` handing out the recorded frames:
temporal -> train -> denoise -> metrics), so differences between variants are the denoisers' alone. Frames
10, 40, 80 (1-based) and the last 10 are evaluated against converged references (evaluation/references.py:
rendered once, cached on disk, their noise floor reported).
Per scene and variant: PSNR at those frames and over the last 10, the flicker figure (stability.py) over the last
10 frames, and the network's time per frame (training + inference; on the CPU unless --device says otherwise);
OIDN on the same frames, twice for a +temporal variant: "OIDN this frame" on the raw pair, "OIDN same samples" on
the two histories the network reads (their own PSNR: "history"); '-' without temporal reuse, where the two are one.
Each variant's network starts from the warm start where it fits (live/warm_start.py; `--init none`: every
variant from scratch). Writes OUT/results.json, OUT/table.md and one metrics CSV per run. Every option and
scene is checked before the first frame is rendered.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see cli.py: spinning OpenMP threads on shared cores

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from renderer import seeds  # noqa: E402

from ..live.config import LiveConfig, preset  # noqa: E402
from ..live.warm_start import INIT_CHOICES  # noqa: E402
from ..models import MODEL_CHOICES  # noqa: E402
from ..errors import UserError, exit_on_user_error  # noqa: E402
from ..io_utils import write_json, write_text  # noqa: E402
from ..evaluation.metrics_log import MetricsLog  # noqa: E402
from ..numbers import finite_mean, fmt, json_safe  # noqa: E402
from ..validate import (MAX_SIDE, MAX_SPP, ArgumentParser, check_output_dir, integer, nonempty, path_arg,  # noqa: E402
                        real, size)

PROG = "n2n-compare"
DEFAULT_SCENES = ("cornell-box", "interior", "caustics", "../shared/data/scenes/mitsuba-matpreview/matpreview.xml")
DEFAULT_VARIANTS = ("paper", "kernel", "kernel+temporal")
COLUMNS = ["frame", "reference_floor", "psnr_input", "psnr_denoised", "psnr_oidn", "psnr_oidn_same", "psnr_history",
           "flicker_input", "flicker_denoised", "flicker_oidn", "flicker_oidn_same", "flicker_reference", "train_ms",
           "infer_ms", "oidn_ms", "loss"]
LAST_N = 10


# A variant's optional settings, for ablations (LiveConfig fields; live/config.py says what each does)
SETTINGS = {"target": ("temporal_target", ("raw", "history", "mix")), "blend": ("blend", ("on", "off")),
            "demodulate": ("demodulate", ("on", "off")), "emission": ("emission", ("on", "off")),
            "despeckle": ("despeckle", ("on", "off")),
            "resample": ("resample", ("bilinear", "catmull-rom")),
            "clamp": ("clamp", ("on", "off")), "clip": ("spike_clip", ("on", "off")),
            "average": ("weight_average", ("on", "off"))}


def parse_variant(text: str) -> tuple[str, dict]:
    """'kernel' -> ('kernel', {'temporal': False}); 'kernel+temporal+target=history+blend=off' -> ('kernel',
    {'temporal': True, 'temporal_target': 'history', 'blend': False}): MODEL[+temporal][+SETTING=VALUE...]."""
    parts = [p.strip() for p in text.strip().split("+")]
    model, overrides = parts[0], {"temporal": False}
    usage = (f"--variants: {text!r} is not MODEL[+temporal][+SETTING=VALUE...] with MODEL in "
             f"{', '.join(MODEL_CHOICES)} and SETTING in {', '.join(SETTINGS)}")
    if model not in MODEL_CHOICES:
        raise UserError(usage)
    for part in parts[1:]:
        if part == "temporal":
            overrides["temporal"] = True
            continue
        key, _, value = part.partition("=")
        if key not in SETTINGS or value not in SETTINGS[key][1]:
            raise UserError(usage + (f" ({key}: {' or '.join(SETTINGS[key][1])})" if key in SETTINGS else ""))
        field = SETTINGS[key][0]
        overrides[field] = value == "on" if SETTINGS[key][1] == ("on", "off") else value
    return model, overrides


def eval_frames(frames: int, last_n: int = LAST_N) -> list[int]:
    """0-based frames that get a reference: 10, 40, 80 (1-based, when inside the run) and, of the last `last_n`,
    every 4th counted back from the last plus the one before the last (80: frames 72, 76, 79, 80). Converged
    references are the expensive part of a benchmark; two in a row give the reference's own flicker floor."""
    last = set(range(frames - 1, max(-1, frames - 1 - last_n), -4)) | ({frames - 2} if frames >= 2 else set())
    return sorted({f - 1 for f in (10, 40, 80) if f <= frames} | last)


def record(cfg) -> tuple[list, float]:
    """Render the noisy pairs of `cfg`'s fly-through once: (pairs, seconds)."""
    from renderer.scene import load_scene
    from renderer.tracer import PathTracer
    from renderer.variant import choose_variant

    choose_variant(cfg.variant)
    t0 = time.monotonic()
    loaded = load_scene(cfg.scene, cfg.width, cfg.height)
    tracer = PathTracer(loaded, spp=cfg.spp, seed=cfg.seed)
    pairs = [tracer.render_pair(loaded.path.at(f), f) for f in range(cfg.frames)]
    return pairs, time.monotonic() - t0


def run_variant(cfg, pairs, csv_path: Path) -> list[dict]:
    """Replay the recorded frames through LiveLoop with `cfg`; one metrics row per frame."""
    from ..live.loop import LiveLoop

    rows = []
    evaluate = set(eval_frames(cfg.frames))
    with LiveLoop(cfg, render_pair=lambda cam, frame: pairs[frame]) as loop, MetricsLog(csv_path, COLUMNS) as log:
        for f in range(cfg.frames):
            r = loop.step(evaluate=f in evaluate)
            row = {k: getattr(r, k, None) for k in COLUMNS}
            log.log(row)
            rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict:
    n = len(rows)
    at = {f"psnr_{f}": rows[f - 1]["psnr_denoised"] for f in (10, 40, 80) if f <= n}
    at.update({f"oidn_{f}": rows[f - 1]["psnr_oidn"] for f in (10, 40, 80) if f <= n})
    at.update({f"input_{f}": rows[f - 1]["psnr_input"] for f in (10, 40, 80) if f <= n})
    at.update({f"oidn_same_{f}": rows[f - 1]["psnr_oidn_same"] for f in (10, 40, 80) if f <= n})
    at.update({f"history_{f}": rows[f - 1]["psnr_history"] for f in (10, 40, 80) if f <= n})
    last = rows[-LAST_N:]
    s = {k: finite_mean(r[k] for r in last) for k in COLUMNS if k != "frame"}
    s["ms_per_frame"] = finite_mean((r["train_ms"] or 0.0) + (r["infer_ms"] or 0.0) for r in rows[1:])
    s.update(at)
    return s


def table(results: dict, frames: int) -> str:
    at = [f for f in (10, 40, 80) if f <= frames]
    head = (["scene", "variant"] + [f"PSNR @{f}" for f in at] + [f"last {LAST_N}", "OIDN last", "OIDN same last",
            "history last", "input last", "flicker", "OIDN flicker", "input flicker", "ref flicker", "ms/frame",
            "ref floor"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for scene, variants in results.items():
        for name, s in variants.items():
            cells = [scene, name] + [f"{fmt(s.get(f'psnr_{f}'))} (OIDN {fmt(s.get(f'oidn_{f}'))}, same "
                                     f"{fmt(s.get(f'oidn_same_{f}'))}, hist {fmt(s.get(f'history_{f}'))}, in "
                                     f"{fmt(s.get(f'input_{f}'))})" for f in at]
            cells += [fmt(s["psnr_denoised"]), fmt(s["psnr_oidn"]), fmt(s["psnr_oidn_same"]), fmt(s["psnr_history"]),
                      fmt(s["psnr_input"]),
                      fmt(s["flicker_denoised"], 4), fmt(s["flicker_oidn"], 4), fmt(s["flicker_input"], 4),
                      fmt(s["flicker_reference"], 4), fmt(s["ms_per_frame"], 0), fmt(s["reference_floor"])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    ap = ArgumentParser(prog=PROG, description="Compare the online denoisers (and OIDN) on the same frames.")
    ap.add_argument("--scenes", type=nonempty, default=",".join(DEFAULT_SCENES),
                    help="comma-separated scene names or XML files")
    settings = ", ".join(f"{key}={'|'.join(values)}" for key, (_, values) in SETTINGS.items())
    ap.add_argument("--variants", type=nonempty, default=",".join(DEFAULT_VARIANTS),
                    help=f"comma-separated MODEL[+temporal][+SETTING=VALUE...]; settings (ablations): {settings}")
    ap.add_argument("--size", type=size(), default=(128, 128), metavar="S|WxH",
                    help="frame size S or WxH (default 128, the CPU preset)")
    ap.add_argument("--frames", type=integer(1, 10**8), default=80, help="frames per fly-through (default 80)")
    ap.add_argument("--reference-spp", type=integer(2, MAX_SPP), default=2048, help="spp of the references (default 2048)")
    ap.add_argument("--iters-per-frame", type=integer(0, 10**4), default=None, help="default: the CPU preset's 8")
    ap.add_argument("--crop", type=integer(1, MAX_SIDE), default=None, help="training crop (default: the frame)")
    ap.add_argument("--lr", type=real(0, 1, lo_open=True), default=None, help="default: the CPU preset's")
    ap.add_argument("--seed", type=integer(0, seeds.MAX_LIVE_SEED), default=0)
    ap.add_argument("--device", type=nonempty, default="cpu", help="where the networks run: auto, cpu, cuda or cuda:N "
                    "(default cpu: ms/frame are CPU figures, as OIDN's)")
    ap.add_argument("--reference-cache", type=nonempty, default=None, help="folder of cached references (default "
                    "$N2N_REFERENCE_CACHE or ~/.cache/n2n-live/references)")
    ap.add_argument("--init", choices=INIT_CHOICES, default="warm", help="how each variant's network starts: warm "
                    "(default: the bundled weights pre-trained on noisy pairs only, where they fit the variant; the "
                    "others start fresh) or none (every variant freshly initialised: the paper's from-scratch run)")
    ap.add_argument("--out", type=path_arg, default=Path("out") / "compare")
    args = ap.parse_args(argv)
    args.width, args.height = args.size
    args.labels = [v.strip() for v in args.variants.split(",") if v.strip()]
    args.variant_list = [parse_variant(v) for v in args.labels]
    args.scene_list = [s.strip() for s in args.scenes.split(",") if s.strip()]
    if not args.variant_list or not args.scene_list:
        raise UserError(f"--{'variants' if not args.variant_list else 'scenes'}: names nothing")
    return args


def configs(args) -> dict[str, LiveConfig]:
    """{scene name: its validated base configuration}, every scene checked before the first is rendered."""
    from renderer.scene import check_spec

    out = {}
    for scene in args.scene_list:
        base = dataclasses.replace(
            preset("cpu"), scene=scene, width=args.width, height=args.height, frames=args.frames,
            reference_spp=args.reference_spp, crop=args.crop or max(args.width, args.height), seed=args.seed,
            sync=True, compare=("oidn",), device=args.device, reference_cache=args.reference_cache, init=args.init)
        if args.iters_per_frame is not None:
            base.iters_per_frame = args.iters_per_frame
        if args.lr is not None:
            base.lr = args.lr
        name = check_spec(scene)
        if name in out:
            raise UserError(f"--scenes: two scenes named {name!r} would write the same files")
        out[name] = base.validate()
    return out


def main(argv=None) -> None:
    with exit_on_user_error(PROG, at_once=True):  # Mitsuba's threads: no slow, crash-prone teardown
        args = parse_args(argv)
        bases = configs(args)
        check_output_dir(args.out, "--out")
        from ..live import oidn

        if not oidn.available():
            raise UserError("n2n-compare puts OIDN beside every figure: install pyoidn (pip install 'n2n-live[oidn]')")
        results: dict = {}
        for name, base in bases.items():
            pairs, secs = record(base)
            print(f"{PROG}: {name}: rendered {args.frames} noisy pairs in {secs:.0f} s",
                  file=sys.stderr, flush=True)
            results[name] = {}
            for (model, overrides), label in zip(args.variant_list, args.labels):
                cfg = dataclasses.replace(base, model=model, **overrides)
                t0 = time.monotonic()
                rows = run_variant(cfg, pairs, args.out / f"{name}_{label}.csv")
                s = summarise(rows)
                results[name][label] = s
                print(f"{PROG}: {name} {label}: last {LAST_N} {fmt(s['psnr_denoised'])} dB "
                      f"(OIDN this frame {fmt(s['psnr_oidn'])}, OIDN same samples {fmt(s['psnr_oidn_same'])}, "
                      f"history {fmt(s['psnr_history'])}, input {fmt(s['psnr_input'])}), "
                      f"flicker {fmt(s['flicker_denoised'], 4)} (OIDN {fmt(s['flicker_oidn'], 4)}), "
                      f"{fmt(s['ms_per_frame'], 0)} ms/frame, {time.monotonic() - t0:.0f} s",
                      file=sys.stderr, flush=True)
                write_json(args.out / "results.json", {"args": {k: str(v) for k, v in vars(args).items()},
                                                       "results": json_safe(results)})
                write_text(args.out / "table.md", table(results, args.frames))
        print(table(results, args.frames))


if __name__ == "__main__":
    main()
