"""Soak: does resident memory grow over long runs? (`make soak`; not part of the test suite: it takes long.)

    python scripts/soak.py [--headless-frames 10000] [--viewer-frames 2000] [--switches 200] [--every 500]

Three phases, each sampling the resident set size (VmRSS) of the process under test:
  headless  `n2n-live --headless --sync` at 32x32, no reference, as a subprocess; RSS every --every frames
            (frames counted from metrics.csv, which the command flushes per frame)
  viewer    `n2n-live` (the GLFW viewer) at 64x64 under a private Xvfb; frames counted from --stats-jsonl
  switches  in-process: LiveLoop.set_scene alternating two bundled scenes, one frame after each switch (the
            viewer's scene switch), RSS every --switch-every switches; Mitsuba has reported memory growth over
            repeated scene loads (mitsuba3 issues #954, #1890)
Growth is measured from the first sample after the warm-up (--warmup frames: allocator pools, Dr.Jit kernels,
the loss history) to the last; it must stay <= 5 %. Prints one table per phase and a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 0.05


def rss_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def watch(cmd: list[str], count_frames, total: int, every: int, env=None) -> list[tuple[int, float]]:
    """Run `cmd`; whenever count_frames() passes a multiple of `every`, sample the child's RSS."""
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples, next_at = [], every
    try:
        while proc.poll() is None:
            n = count_frames()
            if n >= next_at:
                samples.append((n, rss_mib(proc.pid)))
                print(f"  frame {n:6d}: {samples[-1][1]:8.1f} MiB", flush=True)
                next_at = (n // every + 1) * every
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"soak: {cmd[2:]} failed ({proc.returncode}):\n{err[-2000:]}")
    return samples


def growth(samples: list[tuple[int, float]], warmup: int) -> dict:
    after = [s for s in samples if s[0] >= warmup] or samples[-1:]
    if not after:
        return {"samples": samples, "growth": None}
    first, last = after[0][1], after[-1][1]
    return {"samples": samples, "from_frame": after[0][0], "to_frame": after[-1][0], "rss_first_mib": first,
            "rss_last_mib": last, "rss_max_mib": max(s[1] for s in after), "growth": (last - first) / first}


def python_cmd() -> list[str]:
    return [sys.executable, "-m", "n2n_live"]


def headless(frames: int, every: int, tmp: Path, iters: int) -> list:
    out = tmp / "headless"
    cmd = python_cmd() + ["--headless", "--sync", "--size", "32", "--crop", "32", "--frames", str(frames),
                          "--iters-per-frame", str(iters),
                          "--reference-spp", "0", "--compare", "", "--no-progress", "--out", str(out)]
    print("headless:", " ".join(cmd[2:]), flush=True)
    return watch(cmd, lambda: _count_lines(out / "metrics.csv") - 1, frames, every)


def start_xvfb():
    from n2n_live.viewer.xvfb import start_xvfb as start

    try:
        return start()
    except RuntimeError as e:
        raise SystemExit(f"soak: the viewer phase needs a display: {e}") from None


def viewer(frames: int, every: int, tmp: Path) -> list:
    xvfb, display = start_xvfb()
    try:
        stats = tmp / "viewer.jsonl"
        cmd = python_cmd() + ["--size", "64", "--window-size", "640x480", "--exit-after-frames", str(frames),
                              "--stats-jsonl", str(stats), "--screenshot-dir", str(tmp / "shots")]
        print(f"viewer (DISPLAY={display}):", " ".join(cmd[2:]), flush=True)
        return watch(cmd, lambda: _count_lines(stats), frames, every, env={**os.environ, "DISPLAY": display})
    finally:
        xvfb.terminate()
        xvfb.wait(10)


def switches(count: int, every: int) -> list:
    """The viewer's scene switch (LiveLoop.set_scene), in this process, without a window."""
    sys.path.insert(0, str(ROOT))
    from n2n_live.live.config import LiveConfig
    from n2n_live.live.loop import LiveLoop

    scenes = ("cornell-box", "caustics")
    loop = LiveLoop(LiveConfig(width=32, height=32, crop=32, iters_per_frame=1, sync=True))
    samples = []
    print(f"switches: LiveLoop.set_scene alternating {', '.join(scenes)}, one frame after each", flush=True)
    try:
        for i in range(1, count + 1):
            loop.set_scene(scenes[i % 2])
            loop.step()
            if i % every == 0:
                samples.append((i, rss_mib()))
                print(f"  switch {i:5d}: {samples[-1][1]:8.1f} MiB", flush=True)
    finally:
        loop.close()
    return samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--headless-frames", type=int, default=10000)
    ap.add_argument("--viewer-frames", type=int, default=2000)
    ap.add_argument("--switches", type=int, default=200)
    ap.add_argument("--iters-per-frame", type=int, default=8, help="headless: training iterations per frame")
    ap.add_argument("--every", type=int, default=500, help="sample RSS every N frames")
    ap.add_argument("--switch-every", type=int, default=20, help="sample RSS every N scene switches")
    ap.add_argument("--warmup", type=int, default=1000, help="frames before the growth baseline")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    # `kill` ends the soak like Ctrl-C: the finally blocks stop the process under test and Xvfb.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = {"command": " ".join(sys.argv), "load_before": os.getloadavg()}
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="n2n-soak-") as tmp:
        tmp = Path(tmp)
        # Short phases first: a run cut short still has them.
        if args.switches:
            results["switches"] = growth(switches(args.switches, args.switch_every),
                                         min(args.switches // 4, 50))
        if args.viewer_frames:
            results["viewer"] = growth(viewer(args.viewer_frames, args.every, tmp), min(args.warmup,
                                                                                    args.viewer_frames // 4))
        if args.headless_frames:
            results["headless"] = growth(headless(args.headless_frames, args.every, tmp, args.iters_per_frame),
                                         args.warmup)
    results["seconds"] = round(time.time() - t0, 1)
    results["load_after"] = os.getloadavg()
    ok = True
    for phase in ("headless", "viewer", "switches"):
        g = results.get(phase, {}).get("growth")
        if g is not None:
            print(f"{phase}: RSS {results[phase]['rss_first_mib']:.1f} -> {results[phase]['rss_last_mib']:.1f} MiB "
                  f"(frames/switches {results[phase]['from_frame']} -> {results[phase]['to_frame']}): {100 * g:+.2f} %")
            ok &= g <= LIMIT
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k not in ("headless", "viewer", "switches")}))
    print("soak:", "PASS" if ok else f"FAIL (growth above {100 * LIMIT:.0f} %)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
