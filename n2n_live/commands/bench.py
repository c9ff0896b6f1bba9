"""n2n-bench: where the time of one live frame goes, for the plain fp32 loop and the optimised one.

One frame of the paper's loop = render a pair (two 8-spp images + albedo/normal), 8 training iterations on
crops, inference of both images, averaged. Each part is timed separately (median of repeats, after warm-up,
with device synchronisation), then summed as the sequential end-to-end time. The floor compares the FLOPs of
one training iteration and one inference with the machine's measured matrix rate and memory bandwidth.

Every model the live loop offers is timed (n2n_live.models when present, else the paper's U-Net). The optimised
loop has what the live loop has (channels_last, both images in one inference batch, on CUDA training on a stream
of its own as OnlineTrainer does) plus, on CUDA, bf16 autocast, which the live trainer and denoiser do not use
yet; `--compile` adds that loop through torch.compile (its "reduce-overhead" mode replays CUDA graphs), with the
compile time reported apart. The render pair's tensors stay on the renderer's device (DLPack, no host copy):
`render_device` says where they were.

`--live` times the live loop itself instead of its parts: the wall time of LiveLoop.step() with the GPU preset
at --size, paced as the headless run is (rendering overlaps the previous frame's training), with no reference,
over --frames frames after --warmup; the figure a per-frame goal is about.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..errors import UserError, exit_on_user_error
from .. import models
from ..losses import l_hdr
from ..models.unet import run_padded
from ..numbers import finite, fmt
from ..timing import sync as _sync
from ..train_step import TrainStep
from ..validate import (MAX_SIDE, MAX_SPP, ArgumentParser, check_live, check_output_file, integer, nonempty,
                       resolve_device, size)

ITERS_PER_FRAME = 8
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")
LIVE_WARMUP = 5  # frames before timing: the first compiles the render kernels, the next ones warm the trainer


def model_names() -> tuple[str, ...]:
    """The models the live loop offers (the registry's names)."""
    return models.MODEL_CHOICES


def _median_ms(fn, device, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def flops(fn) -> int:
    """FLOPs counted by torch's flop counter (convolutions and matrix products; forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def machine_ceilings(device: torch.device) -> dict:
    """Measured matrix rate (fp32 and, on CUDA, bf16) and memory bandwidth (copy: bytes read + written)."""
    n = 4096 if device.type == "cuda" else 1024
    out = {}
    for name, dtype in [("fp32", torch.float32)] + ([("bf16", torch.bfloat16)] if device.type == "cuda" else []):
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        ms = _median_ms(lambda: a @ b, device, repeats=10)
        out[f"matmul_{name}_tflops"] = 2 * n**3 / (ms * 1e-3) / 1e12
    x = torch.randn(64 * 2**20 // 4, device=device)
    y = torch.empty_like(x)
    ms = _median_ms(lambda: y.copy_(x), device, repeats=10)
    out["copy_gbps"] = 2 * x.numel() * 4 / (ms * 1e-3) / 1e9
    return out


def bench_network(device, width, height, crop, optimised: bool, repeats: int, model: str = "paper",
                  compile_mode: str | None = None) -> dict:
    """Training-iteration and inference times of `model` on random data of the live loop's shapes.

    `compile_mode` (CUDA only): run the optimised loop through torch.compile in that mode; the first (compiling)
    call of each part is timed apart as `compile_s`."""
    torch.manual_seed(0)
    eager = models.build(model).to(device)
    cuda = device.type == "cuda"
    amp = optimised and cuda  # bf16 autocast pays on tensor cores, not on CPUs
    if optimised:
        eager = eager.to(memory_format=torch.channels_last)
    net = torch.compile(eager, mode=compile_mode) if compile_mode else eager
    step = TrainStep(net, l_hdr, amp=amp)
    fmt = torch.channels_last if optimised else torch.contiguous_format
    crop_h, crop_w = min(crop, height), min(crop, width)
    n_in = models.input_channels(eager)
    x = (torch.rand(2, n_in, crop_h, crop_w, device=device) - 0.5).contiguous(memory_format=fmt)
    y = torch.rand(2, 3, crop_h, crop_w, device=device)
    frame = (torch.rand(2, n_in, height, width, device=device) - 0.5).contiguous(memory_format=fmt)
    # The live trainer steps on a CUDA stream of its own (OnlineTrainer._run): time the optimised loop there too.
    stream = torch.cuda.Stream(device) if optimised and cuda else None
    if stream is not None:
        stream.wait_stream(torch.cuda.current_stream(device))

    def train():
        with torch.cuda.stream(stream) if stream is not None else nullcontext():
            return step.step(x, y)

    def infer_separately(module=net):
        with torch.inference_mode():
            return [run_padded(module, frame[i : i + 1]) for i in range(2)]

    def infer_batched(module=net):
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=amp):
            return run_padded(module, frame).mean(0)

    infer = infer_batched if optimised else infer_separately
    compile_s = None
    if compile_mode:  # the first calls compile (and record CUDA graphs): minutes, not milliseconds
        t0 = time.perf_counter()
        train()
        infer()
        _sync(device)
        compile_s = time.perf_counter() - t0
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    eager_step = step if not compile_mode else TrainStep(eager, l_hdr, amp=amp)  # the flop counter needs eager
    eager_infer = lambda: (infer_batched if optimised else infer_separately)(eager)  # noqa: E731
    result = {
        "model": model,
        "train_iter_ms": _median_ms(train, device, repeats),
        "infer_ms": _median_ms(infer, device, repeats),
        "train_iter_gflop": flops(lambda: eager_step.step(x, y)) / 1e9,
        "infer_gflop": flops(eager_infer) / 1e9,
    }
    if compile_mode:
        result.update(compile_mode=compile_mode, compile_s=compile_s)
    if cuda:
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def bench_render(scene: str, width: int, height: int, spp: int, frames: int, variant: str | None) -> dict:
    """Median ms of one render_pair along the scene's path (after the first, compiling, frame), the variant used
    and the torch device the pair's tensors are on (cuda: handed over through DLPack, no host copy)."""
    from renderer.scene import load_scene
    from renderer.tracer import PathTracer
    from renderer.variant import choose_variant

    used = choose_variant(variant)
    loaded = load_scene(scene, width, height)
    tracer = PathTracer(loaded, spp=spp)
    times = []
    for f in range(frames + 1):
        pair = tracer.render_pair(loaded.path.at(f), f)
        if f:
            times.append(pair.render_ms)
    return {"render_pair_ms": statistics.median(times), "variant": used, "render_device": str(pair.noisy_a.device)}


def _median(values) -> float | None:
    """Median of the finite values (a frame the trainer had not finished yet has no train time); None if none."""
    vals = [v for v in values if finite(v)]
    return statistics.median(vals) if vals else None


def bench_live(width: int, height: int, spp: int, crop: int, frames: int, warmup: int, device: str,
               variant: str | None) -> dict:
    """Wall time of LiveLoop.step() per frame over `frames` frames after `warmup`, paced, with no reference; the
    parts (render, train, infer) are the loop's own per-frame timings."""
    from ..live.config import preset
    from ..live.loop import LiveLoop

    cfg = preset("gpu", width=width, height=height, spp=spp, crop=crop, frames=frames, reference_spp=0, compare=(),
                 device=device, variant=variant, pace=True).validate()
    wall, parts = [], {"render_ms": [], "train_ms": [], "infer_ms": []}
    with LiveLoop(cfg) as loop:
        for i in range(warmup + frames):
            t0 = time.perf_counter()
            r = loop.step()
            if i >= warmup:
                wall.append((time.perf_counter() - t0) * 1e3)
                for k in parts:
                    parts[k].append(getattr(r, k))
        result = {"size": f"{width}x{height}", "frames": frames, "warmup": warmup, "variant": loop.variant,
                  "device": str(loop.device), "train_steps": loop.trainer.stats["steps"]}
    result.update(frame_ms_median=statistics.median(wall), frame_ms_mean=statistics.fmean(wall),
                  **{f"{k}_median": _median(v) for k, v in parts.items()})
    result["fps"] = 1e3 / result["frame_ms_median"]
    return result


def format_live(r: dict) -> str:
    return (f"live loop {r['size']} ({r['variant']}, network on {r['device']}): median {fmt(r['frame_ms_median'], 1)} "
            f"ms per frame ({fmt(r['fps'], 1)} fps) over {r['frames']} frames; render "
            f"{fmt(r['render_ms_median'], 1)}, train {fmt(r['train_ms_median'], 1)}, infer "
            f"{fmt(r['infer_ms_median'], 1)} ms")


def run(args) -> dict:
    device = torch.device(args.device)  # resolved by parse_args
    if args.live:
        if device.index not in (None, 0):
            raise UserError(f"--live: the live loop runs on cpu or cuda (its first GPU), not {args.device}")
        return bench_live(*args.size, args.spp, args.crop, args.frames, args.warmup, device.type, args.variant)
    width, height = args.size
    names = model_names()
    if args.models:
        names = tuple(dict.fromkeys(m.strip() for m in args.models.split(",") if m.strip()))
    unknown = [m for m in names if m not in model_names()]
    if unknown or not names:
        raise UserError(f"--models: choose from {', '.join(model_names())}; unknown: {', '.join(unknown) or '(none)'}")
    loops = [("fp32", False, None), ("optimised", True, None)]
    compile_note = None
    if args.compile and device.type == "cuda":
        loops.append(("compiled", True, args.compile))
    elif args.compile:
        compile_note = "torch.compile is timed on CUDA only"
        print(f"n2n-bench: --compile skipped: {compile_note}", file=sys.stderr)
    render = bench_render(args.scene, width, height, args.spp, args.frames, args.variant)
    render_ms = render["render_pair_ms"]
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)",
              "torch": torch.__version__, "size": f"{width}x{height}", "crop": args.crop, "scene": args.scene,
              "spp": args.spp, **render, "models": list(names), "ceilings": machine_ceilings(device), "loops": {}}
    if compile_note:
        report["compile_skipped"] = compile_note
    for model in names:
        for name, optimised, mode in loops:
            r = bench_network(device, width, height, args.crop, optimised, args.repeats, model, mode)
            r["frame_ms"] = render_ms + ITERS_PER_FRAME * r["train_iter_ms"] + r["infer_ms"]
            r["fps"] = 1e3 / r["frame_ms"]
            report["loops"][name if model == names[0] else f"{model} {name}"] = r
    return report


def format_table(report: dict) -> str:
    c = report["ceilings"]
    rate = c.get("matmul_bf16_tflops", c["matmul_fp32_tflops"])
    keys = list(report["loops"])
    lines = [f"device: {report['device']}  size {report['size']}  crop {report['crop']}  scene {report['scene']}  "
             f"{report['spp']} spp  Mitsuba {report['variant']} (pair on {report['render_device']})",
             f"{'':22s}" + "".join(f"{k:>12s}" for k in keys),
             f"{'render pair ms':22s}" + "".join(f"{report['render_pair_ms']:12.1f}" for _ in keys)]
    rows = [("train iteration ms", "train_iter_ms", "{:12.1f}"), ("inference ms (both)", "infer_ms", "{:12.1f}"),
            ("frame ms (1 pair,8 it)", "frame_ms", "{:12.1f}"), ("fps", "fps", "{:12.2f}"),
            ("peak GPU MiB", "peak_gpu_mib", "{:12.0f}"), ("GFLOP / train iter", "train_iter_gflop", "{:12.1f}"),
            ("GFLOP / inference", "infer_gflop", "{:12.1f}"), ("compile s", "compile_s", "{:12.1f}")]
    for label, key, pattern in rows:
        vals = [report["loops"][k].get(key) for k in keys]
        if all(v is None for v in vals):
            continue
        lines.append(f"{label:22s}" + "".join(pattern.format(v) if v is not None else f"{'-':>12s}" for v in vals))
    floor_train = report["loops"][keys[0]]["train_iter_gflop"] / rate  # GFLOP / (TFLOP/s) = ms
    lines.append(f"measured ceilings: matmul {rate:.2f} TFLOP/s, copy {c['copy_gbps']:.0f} GB/s; "
                 f"compute floor of one train iteration ({keys[0]}) {floor_train:.2f} ms")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(prog="n2n-bench", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=size(), default=(512, 512), help="S or WxH (default 512)")
    p.add_argument("--crop", type=integer(1, MAX_SIDE), default=256)
    p.add_argument("--spp", type=integer(1, MAX_SPP), default=8)
    p.add_argument("--frames", type=integer(1, 10**5), default=5, help="rendered frames to time (after one warm-up; "
                   "--live: after --warmup)")
    p.add_argument("--repeats", type=integer(1, 10**5), default=5, help="timed repeats of each network part")
    p.add_argument("--scene", type=nonempty, default="cornell-box")
    p.add_argument("--variant", type=nonempty, default=None)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--models", default=None, help="comma-separated models to time (default: every one the live "
                   "loop offers)")
    p.add_argument("--compile", nargs="?", const="reduce-overhead", choices=COMPILE_MODES, default=None,
                   help="also time the optimised loop through torch.compile (CUDA only; default mode "
                   "reduce-overhead: CUDA graphs)")
    p.add_argument("--live", action="store_true", help="time the live loop end to end instead of its parts "
                   "(LiveLoop.step with the GPU preset, paced, no reference)")
    p.add_argument("--warmup", type=integer(0, 10**5), default=LIVE_WARMUP,
                   help=f"--live: frames run before timing (default {LIVE_WARMUP})")
    p.add_argument("--json", default=None, type=nonempty, help="also write the full report as JSON")
    args = p.parse_args(argv)
    w, h = args.size
    check_live(w, h, args.spp, args.crop, f"--size {w}x{h} --spp {args.spp}")
    args.device = str(resolve_device(args.device))
    if args.json:
        check_output_file(args.json, "--json")
    return args


def main(argv=None) -> int:
    with exit_on_user_error("n2n-bench", at_once=True):  # Mitsuba's threads: no slow, crash-prone teardown
        args = parse_args(argv)
        report = run(args)
        print(format_live(report) if args.live else format_table(report))
        if args.json:
            from ..io_utils import write_json

            write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
