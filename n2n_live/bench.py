"""n2n-bench: where the time of one live frame goes, for the plain fp32 loop and the optimised one.

One frame of the paper's loop = render a pair (two 8-spp images + albedo/normal), 8 training iterations on
crops, inference of both images, averaged. Each part is timed separately (median of repeats, after warm-up,
with device synchronisation), then summed as the sequential end-to-end time. The floor compares the FLOPs of
one training iteration and one inference with the machine's measured matrix rate and memory bandwidth.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .cli import parse_size
from .errors import exit_on_user_error
from .losses import l_hdr
from .network import UNet, run_padded
from .timing import sync as _sync
from .train_step import TrainStep

ITERS_PER_FRAME = 8


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


def bench_network(device, width, height, crop, optimised: bool, repeats: int) -> dict:
    """Training-iteration and inference times of the U-Net on random data of the live loop's shapes."""
    torch.manual_seed(0)
    net = UNet(9, 3).to(device)
    amp = optimised and device.type == "cuda"  # bf16 autocast pays on tensor cores, not on CPUs
    if optimised:
        net = net.to(memory_format=torch.channels_last)
    step = TrainStep(net, l_hdr, amp=amp)
    fmt = torch.channels_last if optimised else torch.contiguous_format
    crop_h, crop_w = min(crop, height), min(crop, width)
    x = (torch.rand(2, 9, crop_h, crop_w, device=device) - 0.5).contiguous(memory_format=fmt)
    y = torch.rand(2, 3, crop_h, crop_w, device=device)
    frame = (torch.rand(2, 9, height, width, device=device) - 0.5).contiguous(memory_format=fmt)

    def infer_separately():
        with torch.inference_mode():
            return [run_padded(net, frame[i : i + 1]) for i in range(2)]

    def infer_batched():
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=amp):
            return run_padded(net, frame).mean(0)

    infer = infer_batched if optimised else infer_separately
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = {
        "train_iter_ms": _median_ms(lambda: step.step(x, y), device, repeats),
        "infer_ms": _median_ms(infer, device, repeats),
        "train_iter_gflop": flops(lambda: step.step(x, y)) / 1e9,
        "infer_gflop": flops(infer) / 1e9,
    }
    if device.type == "cuda":
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def bench_render(scene: str, width: int, height: int, spp: int, frames: int, variant: str | None) -> float:
    """Median ms of one render_pair along the scene's path (after the first, compiling, frame)."""
    from renderer.scene import load_scene
    from renderer.tracer import PathTracer
    from renderer.variant import choose_variant

    choose_variant(variant)
    loaded = load_scene(scene, width, height)
    tracer = PathTracer(loaded, spp=spp)
    times = []
    for f in range(frames + 1):
        pair = tracer.render_pair(loaded.path.at(f), f)
        if f:
            times.append(pair.render_ms)
    return statistics.median(times)


def run(args) -> dict:
    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) or args.device == "cuda" else "cpu")
    width, height = args.size
    render_ms = bench_render(args.scene, width, height, args.spp, args.frames, args.variant)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)",
              "size": f"{width}x{height}", "crop": args.crop, "scene": args.scene, "spp": args.spp,
              "render_pair_ms": render_ms, "ceilings": machine_ceilings(device), "loops": {}}
    for name, optimised in (("fp32", False), ("optimised", True)):
        r = bench_network(device, width, height, args.crop, optimised, args.repeats)
        r["frame_ms"] = render_ms + ITERS_PER_FRAME * r["train_iter_ms"] + r["infer_ms"]
        r["fps"] = 1e3 / r["frame_ms"]
        report["loops"][name] = r
    return report


def format_table(report: dict) -> str:
    c = report["ceilings"]
    rate = c.get("matmul_bf16_tflops", c["matmul_fp32_tflops"])
    lines = [f"device: {report['device']}  size {report['size']}  crop {report['crop']}  scene {report['scene']}  {report['spp']} spp",
             f"{'':22s}{'fp32':>12s}{'optimised':>12s}",
             f"{'render pair ms':22s}{report['render_pair_ms']:12.1f}{report['render_pair_ms']:12.1f}"]
    rows = [("train iteration ms", "train_iter_ms", "{:12.1f}"), ("inference ms (both)", "infer_ms", "{:12.1f}"),
            ("frame ms (1 pair,8 it)", "frame_ms", "{:12.1f}"), ("fps", "fps", "{:12.2f}"),
            ("peak GPU MiB", "peak_gpu_mib", "{:12.0f}"), ("GFLOP / train iter", "train_iter_gflop", "{:12.1f}"),
            ("GFLOP / inference", "infer_gflop", "{:12.1f}")]
    for label, key, fmt in rows:
        vals = [report["loops"][k].get(key) for k in ("fp32", "optimised")]
        if all(v is None for v in vals):
            continue
        lines.append(f"{label:22s}" + "".join(fmt.format(v) if v is not None else f"{'-':>12s}" for v in vals))
    floor_train = report["loops"]["fp32"]["train_iter_gflop"] / rate  # GFLOP / (TFLOP/s) = ms
    lines.append(f"measured ceilings: matmul {rate:.2f} TFLOP/s, copy {c['copy_gbps']:.0f} GB/s; "
                 f"compute floor of one train iteration {floor_train:.2f} ms")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="n2n-bench", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=parse_size, default=(512, 512), help="S or WxH (default 512)")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--spp", type=int, default=8)
    p.add_argument("--frames", type=int, default=5, help="rendered frames to time (after one warm-up)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats of each network part")
    p.add_argument("--scene", default="cornell-box")
    p.add_argument("--variant", default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", default=None, help="also write the full report as JSON")
    args = p.parse_args(argv)
    with exit_on_user_error("n2n-bench"):
        report = run(args)
        print(format_table(report))
        if args.json:
            from .io_utils import write_json

            write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
