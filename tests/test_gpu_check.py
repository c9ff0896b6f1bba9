"""scripts/gpu_check.sh, the one command prepared for a GPU machine: a CPU dry run writes its JSON and table, and
the CUDA-marked checks of what it measures there (run with `pytest -m gpu`; skipped without CUDA)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import gpu_check  # noqa: E402

from n2n_live.commands.bench import main as bench_main  # noqa: E402
from n2n_live.commands.bench import model_names  # noqa: E402


# ~50 s of CPU time (five interpreters importing torch and Mitsuba), but the only run of the prepared GPU check
# before a GPU is there: it stays in `make test`.
def test_gpu_check_dry_run_on_cpu(tmp_path):
    """The whole script at a tiny size on the CPU, with the installed packages instead of the carried ones; the
    tests stage is left out (its summary parsing is tested below)."""
    out = tmp_path / "out"
    env = dict(os.environ, N2N_CHECK_PYTHON=sys.executable, N2N_CHECK_SITE="installed", N2N_CHECK_DEVICE="cpu",
               N2N_CHECK_SIZE="32", N2N_CHECK_FRAMES="3", N2N_CHECK_EVAL_EVERY="2", N2N_CHECK_REFERENCE_SPP="16",
               N2N_CHECK_LIVE_FRAMES="2", N2N_CHECK_LIVE_WARMUP="1",
               N2N_CHECK_BENCH_ARGS="--crop 32 --frames 1 --repeats 1", N2N_CHECK_COMPILE="0",
               N2N_CHECK_TESTS="none", N2N_CHECK_PROBE_VARIANTS="llvm_ad_rgb",
               # time limits for 2 shared cores: a safety net against a hang, not a speed requirement
               N2N_CHECK_T_SCALE="20", TMPDIR=str(tmp_path))
    res = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(out)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert set(report) >= {"goal_frame_ms", "probe", "stages", "tests", "bench", "bench_compiled", "live", "headless"}
    assert report["probe"]["variant"] == "llvm_ad_rgb" and report["probe"]["variants"]["llvm_ad_rgb"]["ok"]
    assert {s: v["exit"] for s, v in report["stages"].items()} == {"probe": 0, "bench": 0, "live": 0, "headless": 0}
    assert report["tests"] is None  # N2N_CHECK_TESTS=none
    bench = report["bench"]
    assert bench["size"] == "32x32" and bench["render_device"] == "cpu" and bench["models"] == list(model_names())
    assert {"fp32", "optimised"} <= set(bench["loops"]) and len(bench["loops"]) == 2 * len(model_names())
    assert report["bench_compiled"] is None  # N2N_CHECK_COMPILE=0
    live = report["live"]
    assert live["frames"] == 2 and live["frame_ms_median"] > 0 and live["train_steps"] > 0
    h = report["headless"]
    assert h["frames"] == 3 and h["median_ms"]["render_ms"] > 0 and h["median_ms"]["train_ms"] > 0
    assert h["psnr"] and h["psnr"][-1]["frame"] == 2 and h["psnr"][-1]["psnr_denoised"] > 0
    assert h["wall_ms_per_frame"] > 0
    names = {p.name for p in out.iterdir()}
    assert {"gpu_check.json", "gpu_check.log", "psnr.png", "metrics.csv", "last_frame_strip.png"} <= names
    assert len(names) <= 8 and all(p.is_file() for p in out.iterdir())  # what the device tool brings back
    tail = res.stdout.strip().splitlines()
    assert tail[-1].startswith("goal: <= 33 ms") and any(line.startswith("=== GPU check") for line in tail[-20:])


def test_gpu_check_needs_its_packages(tmp_path):
    """Without the carried tarball (and no N2N_CHECK_SITE=installed) it stops at once, saying what to run."""
    env = dict(os.environ, N2N_CHECK_SITE=str(tmp_path / "missing.tar.xz"))
    res = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "o")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "gpu_carry.sh" in res.stderr


def test_pytest_summary_and_stage_records_are_read(tmp_path):
    (tmp_path / "tests.log").write_text("...\n3 passed, 2 skipped, 150 deselected, 1 error in 9.12s\n")
    assert gpu_check._tests(tmp_path / "tests.log") == {"passed": 3, "skipped": 2, "deselected": 150, "error": 1}
    (tmp_path / "stages.tsv").write_text("bench\t124\t100.2\t100\nheadless\t130\t170.0\t170\ntests\t0\t9.5\t75\n")
    stages = gpu_check._stages(tmp_path)
    assert stages["bench"]["timed_out"] and stages["headless"]["timed_out"] and not stages["tests"]["timed_out"]
    report = gpu_check.collect(tmp_path, tmp_path / "r.json")  # no bench, no headless: still a JSON and a table
    assert json.loads((tmp_path / "r.json").read_text())["bench"] is None and report["headless"] is None


def test_bench_compile_is_skipped_on_cpu_and_models_are_checked(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU behaviour")
    out = tmp_path / "b.json"
    assert bench_main(["--size", "32", "--crop", "32", "--frames", "1", "--repeats", "1", "--device", "cpu",
                       "--models", "paper", "--compile", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["loops"]) == ["fp32", "optimised"] and "CUDA only" in report["compile_skipped"]
    with pytest.raises(SystemExit) as e:
        bench_main(["--models", "nope", "--device", "cpu"])
    assert e.value.code == 2 and "nope" in capsys.readouterr().err


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
def test_render_pair_stays_on_the_gpu():
    """cuda_ad_rgb hands its images to torch through DLPack: the pair is on the GPU, with no trip through the host."""
    from renderer.errors import SceneError
    from renderer.scene import load_scene
    from renderer.tracer import PathTracer
    from renderer.variant import choose_variant

    try:
        choose_variant("cuda_ad_rgb")
    except SceneError as e:
        pytest.skip(f"cuda_ad_rgb refused here: {e}")
    loaded = load_scene("cornell-box", 64, 64)
    pair = PathTracer(loaded, spp=2).render_pair(loaded.path.at(0), 0)
    for t in (pair.noisy_a, pair.noisy_b, pair.albedo, pair.normal):
        assert t.is_cuda and t.shape == (64, 64, 3) and torch.isfinite(t).all()


@pytest.mark.gpu
@needs_cuda
def test_bench_on_cuda(tmp_path):
    """Every model, fp32 and the optimised loop (bf16, channels_last, training on its own stream), on the GPU."""
    out = tmp_path / "b.json"
    assert bench_main(["--size", "64", "--crop", "64", "--frames", "1", "--repeats", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["models"] == list(model_names()) and "matmul_bf16_tflops" in report["ceilings"]
    assert len(report["loops"]) == 2 * len(model_names())
    assert all(r["train_iter_ms"] > 0 and r["peak_gpu_mib"] > 0 for r in report["loops"].values())


@pytest.mark.gpu
@pytest.mark.slow  # compiling takes minutes; the GPU check times it in a stage of its own instead
@needs_cuda
def test_bench_on_cuda_compiled(tmp_path):
    out = tmp_path / "b.json"
    assert bench_main(["--size", "64", "--crop", "64", "--frames", "1", "--repeats", "2", "--models", "paper",
                       "--compile", "--json", str(out)]) == 0
    compiled = json.loads(out.read_text())["loops"]["compiled"]
    assert compiled["compile_s"] > 0 and compiled["train_iter_ms"] > 0 and compiled["compile_mode"] == "reduce-overhead"
