"""The Python half of scripts/gpu_check.sh: what the machine is (probe) and one JSON + table of every figure (collect).

    python scripts/gpu_check.py probe PROBE_JSON        GPU, driver, torch, OptiX, each Mitsuba variant's verdict
    python scripts/gpu_check.py variant PROBE_JSON      the variant to use: the probed one, "auto" when the probe
                                                        did not finish, "" when no variant works
    python scripts/gpu_check.py collect WORK OUT_JSON   stages, tests, n2n-bench, live, headless -> OUT_JSON; table

(The live loop's end-to-end time per frame is `n2n-bench --live`.) Each Mitsuba variant is tried in a process of
its own: a Dr.Jit backend that finds a bad libLLVM aborts the whole process, which must not take the probe with it.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

from n2n_live.evaluation.metrics_log import read_metrics
from n2n_live.numbers import finite, fmt, json_safe

PREFERENCE = ("cuda_ad_rgb", "llvm_ad_rgb", "scalar_rgb")  # renderer/variant.py's order
GOAL_FRAME_MS = 33.0  # the project's goal: 15x the paper's 500 ms per 512x512 frame on a Titan V
VARIANT_TIMEOUT_S = 20  # a cold OptiX start compiles Mitsuba's kernels: seconds, not minutes
_TRY_VARIANT = """
import json, sys
from renderer.variant import choose_variant
from renderer.errors import SceneError
try:
    choose_variant(sys.argv[1])
    import drjit as dr
    print(json.dumps({"ok": True, "threads": dr.thread_count()}))
except SceneError as e:
    print(json.dumps({"ok": False, "reason": str(e)}))
"""


def _run(cmd: list[str], timeout: float = 20) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _try_variant(variant: str) -> dict:
    """{'ok': True, 'threads': n} or {'ok': False, 'reason': ...}, from a process of its own."""
    try:
        p = subprocess.run([sys.executable, "-c", _TRY_VARIANT, variant], capture_output=True, text=True,
                           timeout=VARIANT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"ok": False, "reason": f"no answer within {VARIANT_TIMEOUT_S} s"}
    lines = p.stdout.strip().splitlines()
    if p.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    tail = " ".join(" ".join(p.stderr.split()[-60:]).split())[-400:]
    return {"ok": False, "reason": f"exit code {p.returncode}: {tail}"}


def _optix() -> dict:
    """Whether the driver's OptiX library (cuda_ad_rgb's ray tracing) loads."""
    try:
        ctypes.CDLL("libnvoptix.so.1")
        return {"loads": True}
    except OSError as e:
        return {"loads": False, "error": str(e)}


def probe(path: Path) -> dict:
    info: dict = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    smi = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"])
    if smi:
        name, driver, memory, cap = (s.strip() for s in smi.splitlines()[0].split(","))
        info["gpu"] = {"name": name, "driver": driver, "memory": memory, "compute_capability": cap}
    try:
        import torch

        info["torch"] = {"version": torch.__version__, "cuda": torch.version.cuda,
                         "cuda_available": torch.cuda.is_available()}
        if torch.cuda.is_available():
            info["torch"]["device"] = torch.cuda.get_device_name(0)
    except ImportError as e:
        info["torch"] = {"error": str(e)}
    info["optix"] = _optix()
    info["drjit_libllvm_path"] = os.environ.get("DRJIT_LIBLLVM_PATH")
    try:
        import drjit
        import mitsuba

        info["mitsuba"], info["drjit"] = mitsuba.__version__, drjit.__version__
        info["mitsuba_path"] = str(Path(mitsuba.__file__).parent)
    except Exception as e:  # noqa: BLE001 - a broken carried package (missing library) is reported, not raised
        info["mitsuba_error"] = f"{type(e).__name__}: {e}"
    only = os.environ.get("N2N_CHECK_PROBE_VARIANTS")
    candidates = tuple(only.split()) if only else PREFERENCE
    # in the product's order, stopping at the first that works (the one renderer/variant.py would pick)
    info["variants"], info["variant"] = {}, None
    for v in candidates if "mitsuba" in info else ():
        info["variants"][v] = _try_variant(v)
        path.write_text(json.dumps(info, indent=1))  # kept if the stage's time limit cuts the probe short
        if info["variants"][v].get("ok"):
            info["variant"] = v
            break
    info["complete"] = True
    path.write_text(json.dumps(info, indent=1))
    _print_probe(info)
    return info


def _print_probe(info: dict) -> None:
    gpu, t = info.get("gpu") or {}, info.get("torch") or {}
    print(f"GPU: {gpu.get('name', 'none (nvidia-smi)')}, driver {gpu.get('driver', '-')}, "
          f"{gpu.get('memory', '-')}; {info['cpus']} CPUs; Python {info['python']}")
    print(f"torch {t.get('version', t.get('error'))} (CUDA {t.get('cuda')}, available: {t.get('cuda_available')})")
    print(f"OptiX (libnvoptix.so.1): {'loads' if info['optix']['loads'] else info['optix']['error']}")
    print(f"Mitsuba {info.get('mitsuba', info.get('mitsuba_error'))}, Dr.Jit {info.get('drjit', '-')}, "
          f"libLLVM: {info['drjit_libllvm_path'] or 'Dr.Jit default search'}")
    for v, r in info["variants"].items():
        print(f"  {v}: " + (f"works ({r.get('threads')} Dr.Jit threads)" if r.get("ok") else f"refused: {r['reason']}"))
    v = info["variant"]
    if v and v != "cuda_ad_rgb" and t.get("cuda_available"):
        print(f"cuda_ad_rgb refused: rendering with {v} on the CPUs while torch trains on the GPU "
              "(render and network times are reported separately)")
    print(f"variant used: {v}")


# ---------------------------------------------------------------------------------------------------- collect
def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _stages(work: Path) -> dict:
    out = {}
    f = work / "stages.tsv"
    for line in f.read_text().splitlines() if f.exists() else []:
        name, rc, secs, limit = line.split("\t")
        out[name] = {"exit": int(rc), "seconds": float(secs), "limit_s": int(limit),
                     "timed_out": int(rc) in (124, 137) or (name == "headless" and int(rc) == 130)}
    return out


def _tests(log: Path) -> dict | None:
    """Counts from pytest's last summary line ('3 passed, 2 skipped, 150 deselected in 9.1s')."""
    if not log.exists():
        return None
    counts = {}
    for line in log.read_text().splitlines():
        found = re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed|xpassed)", line)
        if found and re.search(r" in [\d.]+s", line):
            counts = {k.rstrip("s") if k.startswith("error") else k: int(n) for n, k in found}
    return counts


def _median(values) -> float | None:
    vals = [v for v in values if finite(v)]
    return statistics.median(vals) if vals else None


def _headless(folder: Path) -> dict | None:
    summary = _load(folder / "summary.json")
    if summary is None:
        return None
    cols = read_metrics(folder / "metrics.csv") if (folder / "metrics.csv").exists() else {}
    n = max((len(v) for v in cols.values()), default=0)
    rows = [{k: v[i] for k, v in cols.items()} for i in range(n)]
    steady = rows[1:] or rows  # the first frame compiles the render kernels
    h = {"summary": summary, "config": _load(folder / "config.json"), "frames": len(rows),
         "median_ms": {k: _median(r.get(k) for r in steady)
                       for k in ("render_ms", "train_ms", "infer_ms", "reference_ms", "oidn_ms")}}
    evaluated = [r for r in rows if finite(r.get("psnr_denoised"))]
    # empty cells (a method not run on that frame) are NaN in read_metrics, null in the JSON
    h["psnr"] = json_safe([{k: r.get(k) for k in ("frame", "psnr_input", "psnr_denoised", "psnr_oidn")}
                           for r in evaluated])
    return h


def collect(work: Path, out_json: Path) -> dict:
    report = {"goal_frame_ms": GOAL_FRAME_MS, "probe": _load(work / "probe.json"), "stages": _stages(work),
              "tests": _tests(work / "tests.log"), "bench": _load(work / "bench.json"),
              "bench_compiled": _load(work / "bench_compiled.json"), "live": _load(work / "live.json"),
              "headless": _headless(work / "headless")}
    h = report["headless"]
    if h and report["stages"].get("headless") and h["frames"]:
        # wall time of the whole command over its frames: start-up, evaluation frames and compiles included
        report["headless"]["wall_ms_per_frame"] = 1e3 * report["stages"]["headless"]["seconds"] / h["frames"]
    tmp = out_json.with_name(out_json.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str))
    os.replace(tmp, out_json)
    print(table(report))
    return report


def _f(v, digits: int = 1) -> str:
    """A table cell: `digits` decimals (integers too), "-" when missing."""
    return fmt(float(v) if finite(v) else None, digits)


def table(r: dict) -> str:
    p = r.get("probe") or {}
    gpu, t = p.get("gpu") or {}, p.get("torch") or {}
    lines = ["", "=== GPU check " + "=" * 60,
             f"{gpu.get('name', 'no GPU')} (driver {gpu.get('driver', '-')}), torch {t.get('version', '-')}, "
             f"Mitsuba {p.get('mitsuba', '-')} {p.get('variant') or 'no variant'}; "
             f"OptiX {'loads' if (p.get('optix') or {}).get('loads') else 'missing'}"]
    lines.append("stage           exit  seconds  limit")
    for name, s in r["stages"].items():
        lines.append(f"{name:15s} {s['exit']:4d} {s['seconds']:8.1f} {s['limit_s']:6d}" +
                     ("  (time limit)" if s["timed_out"] else ""))
    tests = r.get("tests")
    if tests is not None:
        lines.append("tests -m gpu: " + (", ".join(f"{n} {k}" for k, n in tests.items()) or "no summary line"))
    for key in ("bench", "bench_compiled"):
        b = r.get(key)
        if not b:
            continue
        lines.append(f"n2n-bench {b['size']} ({b['variant']}, pair on {b['render_device']}): "
                     f"render pair {_f(b['render_pair_ms'])} ms")
        lines.append(f"  {'loop':22s}{'train it ms':>12s}{'infer ms':>10s}{'frame ms':>10s}{'compile s':>10s}")
        for name, loop in b["loops"].items():
            lines.append(f"  {name:22s}{_f(loop['train_iter_ms']):>12s}{_f(loop['infer_ms']):>10s}"
                         f"{_f(loop['frame_ms']):>10s}{_f(loop.get('compile_s')):>10s}")
    lv = r.get("live")
    if lv:
        lines.append(f"live loop {lv['size']}, paced, no evaluation ({lv['variant']}, network on {lv['device']}): "
                     f"median {_f(lv['frame_ms_median'])} ms per frame ({_f(lv['fps'])} fps) over {lv['frames']} "
                     f"frames; render {_f(lv['render_ms_median'])}, train {_f(lv['train_ms_median'])}, "
                     f"infer {_f(lv['infer_ms_median'])}")
    h = r.get("headless")
    if h:
        m, s = h["median_ms"], h["summary"]
        lines.append(f"headless: {h['frames']} frames, median ms per frame: render {_f(m['render_ms'])}, "
                     f"train {_f(m['train_ms'])}, infer {_f(m['infer_ms'])}; wall {_f(h.get('wall_ms_per_frame'))} "
                     "ms/frame (all included)")
        if h["psnr"]:
            last = h["psnr"][-1]
            lines.append(f"  PSNR at frame {int(last['frame'])}: input {_f(last['psnr_input'], 2)} dB, "
                         f"denoised {_f(last['psnr_denoised'], 2)} dB, "
                         f"OIDN {_f(last.get('psnr_oidn'), 2)} dB")
        if s.get("interrupted"):
            lines.append("  (stopped at its time limit: the figures cover the frames run)")
    lines.append(f"goal: <= {GOAL_FRAME_MS:.0f} ms per 512x512 frame end to end")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "probe":
        probe(Path(argv[1]))
        return 0
    if len(argv) == 2 and argv[0] == "variant":
        info = _load(Path(argv[1])) or {}
        print(info.get("variant") or ("" if info.get("complete") else "auto"))
        return 0
    if len(argv) == 3 and argv[0] == "collect":
        collect(Path(argv[1]), Path(argv[2]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
