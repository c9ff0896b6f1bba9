"""n2n-train and the EXR dataset reader, on tiny datasets synthesised in tmp_path (no renderer needed)."""
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from n2n_live.checkpoint import read_checkpoint, save_checkpoint
from n2n_live.exr import write_exr
from n2n_live.dataset_names import noisy_name, parse_name, reference_name
from n2n_live.models.unet import UNet
from offline_experiments import batch_train, mc_dataset

from conftest import wait_for

BIN = Path(sys.executable).parent
TINY = ["--batch", "2", "--crop", "32", "--val-every", "5", "--ckpt-every", "5", "--log-every", "5", "--quiet"]


def make_dataset(out: Path, views: int = 4, size=(32, 32), spp=(8,), tags="ab", seed=0) -> Path:
    """Exporter-named EXRs of smooth images with multiplicative gamma noise (mean-preserving, like MC noise)."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size
    for v in range(views):
        name = f"synth_view{v:04d}"
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        clean = np.stack([0.2 + 0.6 * xx, 0.3 + 0.5 * yy, 0.5 + 0.3 * np.sin(6 * xx + v)], -1).astype(np.float32)
        normal = np.zeros_like(clean)
        normal[..., 2] = 1.0
        for s in spp:
            for t in tags:
                noisy = clean * rng.gamma(4.0, 0.25, size=clean.shape).astype(np.float32)
                write_exr(out / noisy_name(name, t, s, "hdr"), {"": noisy})
                write_exr(out / noisy_name(name, t, s, "alb"), {"": np.clip(clean, 0, 1)})
                write_exr(out / noisy_name(name, t, s, "nrm"), {"": normal})
        for t in tags:
            write_exr(out / reference_name(name, t), {"": clean})
    return out


def run_main(argv) -> int:
    try:
        batch_train.main([str(a) for a in argv])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_names_parse_and_dataset_pairs_realisations(tmp_path):
    assert parse_name("cornell-box_view0007_b_0064spp.alb.exr") == ("cornell-box_view0007", "b", 64, "alb")
    assert parse_name("cornell-box_view0007_a_ref.hdr.exr") == ("cornell-box_view0007", "a", None, "hdr")
    assert parse_name("oidn_scene_0016spp.hdr.exr") == ("oidn_scene", "", 16, "hdr")  # plain OIDN names
    assert parse_name("manifest.json") is None and parse_name(".x_a_0008spp.hdr.abc.tmp.exr") is None
    data = make_dataset(tmp_path / "data", views=3, spp=(8, 64))
    (data / ".synth_view0000_a_0008spp.hdr.k3j.tmp.exr").write_bytes(b"half-written temporary")  # ignored
    files = mc_dataset.scan(data)
    assert [v.name for v in files] == ["synth_view0000", "synth_view0001", "synth_view0002"]
    assert sorted(files[0].noisy) == [8, 64] and sorted(files[0].noisy[8]) == ["a", "b"]
    assert files[0].reference.name == "synth_view0000_a_ref.hdr.exr"
    train, val = mc_dataset.split(files, 0.34)
    assert len(val) == 1 and len(train) == 2
    views = mc_dataset.load(files[:1], min_realisations=2)
    x, y = mc_dataset.sample_batch(np.random.default_rng(0), views, 3, 16, "noisy")
    assert x.shape == (3, 9, 16, 16) and y.shape == (3, 3, 16, 16)
    assert x.min() >= -0.5 and x.max() <= 0.5 and y.min() >= 0
    assert len(mc_dataset.scan(data, spp=[64])[0].noisy) == 1


def test_batches_carry_each_realisations_emission_to_a_network_that_filters_it_apart(tmp_path):
    from n2n_live.models.kernel import KernelPredictingNet

    data = make_dataset(tmp_path / "data", views=1, size=(16, 16), tags="ab")
    assert parse_name("synth_view0000_a_0008spp.emi.exr") == ("synth_view0000", "a", 8, "emi")
    for t, value in (("a", 3.0), ("b", 5.0)):  # a light seen straight on in the top rows, different per realisation
        emitted = np.zeros((16, 16, 3), np.float32)
        emitted[:4] = value
        write_exr(data / noisy_name("synth_view0000", t, 8, "emi"), {"": emitted})
    views = mc_dataset.load(mc_dataset.scan(data), min_realisations=2)
    net = KernelPredictingNet(n_in=9, emission=True)
    x, _ = mc_dataset.sample_batch(np.random.default_rng(0), views, 8, 16, "noisy", net=net)
    emitted = x[:, -3:]
    assert x.shape[1] == 9 + 3 + 3 and set(torch.unique(emitted).tolist()) == {0.0, 3.0, 5.0}
    # rows 0-3 of the crop, or rows 12-15 when it was flipped upside down
    lit = emitted.amax(dim=(1, 3)) > 0
    assert all(r.tolist() in ([True] * 4 + [False] * 12, [False] * 12 + [True] * 4) for r in lit)
    # n2n-train --no-emission (the warm start's recipe): the files stay unread, nothing counts as emitting
    dark = mc_dataset.load(mc_dataset.scan(data), min_realisations=2, emission=False)
    x, _ = mc_dataset.sample_batch(np.random.default_rng(0), dark, 8, 16, "noisy", net=net)
    assert dark[0].noisy[8][0][3] is None and float(x[:, -3:].abs().max()) == 0.0


def test_train_writes_run_folder_and_starts_from_live_network(tmp_path, capsys):
    data = make_dataset(tmp_path / "data")
    live = tmp_path / "live.pt"
    torch.manual_seed(1)
    save_checkpoint(live, UNet(9, 3), kind="mc", meta={"saved_by": "n2n-live"})
    run = tmp_path / "run"
    # lr ~ 0: Adam moves each weight by at most ~lr, so the result must still be the live network.
    assert run_main(["--data", data, "--out", run, "--iters", "5", "--init", live, "--lr", "1e-12", *TINY]) == 0
    for f in ("config.json", "stats.jsonl", "loss.png", "val_psnr.png", "checkpoint.pt", "done.json"):
        assert (run / f).is_file(), f
    a, b = read_checkpoint(live)["net"], read_checkpoint(run / "checkpoint.pt")["net"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert any("val_psnr" in r and "input_psnr" in r for r in stats)
    config = json.loads((run / "config.json").read_text())
    assert config["target"] == "noisy" and config["batch"] == 2 and config["lr"] == 1e-12
    # A network that is not a 9-channel MC denoiser is refused in one line.
    save_checkpoint(tmp_path / "gauss.pt", UNet(3, 3), kind="gaussian")
    capsys.readouterr()
    assert run_main(["--data", data, "--out", tmp_path / "run2", "--iters", "1", "--init", tmp_path / "gauss.pt", *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gauss.pt" in err[0]


def _ckpt_step(path: Path) -> int:
    try:
        return int(read_checkpoint(path)["train_state"]["step"])
    except Exception:
        return -1


def _weights(run: Path) -> dict:
    return read_checkpoint(run / "checkpoint.pt")["net"]


def test_same_seed_same_weights(tmp_path):
    """The network's initialisation follows --seed alone, whatever state the process's global RNG is in (lr ~ 0
    keeps the weights at their initialisation, so a different seed must show as a different network)."""
    data = make_dataset(tmp_path / "data", views=3)
    args = ["--data", data, "--iters", "2", "--val-fraction", "0", "--lr", "1e-12", *TINY]
    for name, seed, global_seed in (("a", 3, 1), ("b", 3, 2), ("c", 4, 1)):
        torch.manual_seed(global_seed)
        assert run_main([*args, "--out", tmp_path / name, "--seed", seed]) == 0
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert max((a[k] - c[k]).abs().max().item() for k in a) > 1e-3


def test_kill9_then_rerun_resumes_from_last_checkpoint(tmp_path, capsys):
    """kill -9 mid-run, then the same command: it resumes at the last checkpoint, loses no stats record and ends
    with weights bit-identical to an uninterrupted run's (data order, crops, Adam state and lr all restored)."""
    data = make_dataset(tmp_path / "data", views=3)
    run = tmp_path / "run"
    args = ["--data", str(data), "--iters", "40", "--batch", "1", "--crop", "32", "--val-every", "1000",
            "--ckpt-every", "8", "--log-every", "2", "--quiet"]
    cmd = [str(BIN / "n2n-train"), *args, "--out", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(lambda: _ckpt_step(run / "checkpoint.pt") >= 8 or proc.poll() is not None,
                    timeout=300, interval=0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _ckpt_step(run / "checkpoint.pt")
    assert killed_at >= 8 and killed_at % 8 == 0  # the checkpoint on disk is whole and readable
    capsys.readouterr()
    assert run_main([*args, "--out", run]) == 0  # the same command again (in this process: one start-up less)
    resumed_at = int(re.search(r"resuming at step (\d+)", capsys.readouterr().err)[1])
    assert resumed_at >= killed_at  # (the killed run may have saved one more after we read it)
    state = read_checkpoint(run / "checkpoint.pt")["train_state"]
    assert state["step"] == 40 and state["steps"] + state["skipped"] == 40  # the step count continued
    steps = [r["step"] for r in map(json.loads, (run / "stats.jsonl").read_text().splitlines()) if "loss" in r]
    assert steps == list(range(2, 41, 2))  # no record lost or doubled across the kill
    # An uninterrupted run of the same command (on one thread, as the killed process) ends bit-identical.
    assert run_main([*args, "--out", tmp_path / "whole"]) == 0
    whole, resumed = _weights(tmp_path / "whole"), _weights(run)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert json.loads((run / "config.json").read_text())["resumed_at"] == [resumed_at]
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary survives the re-run


def test_two_process_gloo_ddp_replicas_hold_identical_weights(tmp_path):
    data = make_dataset(tmp_path / "data", views=5)
    run = tmp_path / "run"
    cmd = [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "-m", "offline_experiments.batch_train",
           "--data", str(data), "--out", str(run), "--iters", "6", "--device", "cpu", *TINY]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    done = json.loads((run / "done.json").read_text())
    assert len(done["replica_digests"]) == 2 and done["replicas_identical"]
    assert done["replica_digests"][0] == batch_train.weights_digest(_net_from(run / "checkpoint.pt"))
    assert json.loads((run / "config.json").read_text())["world_size"] == 2


def _net_from(path):
    net = UNet(9, 3)
    net.load_state_dict(read_checkpoint(path)["net"])
    return net


def test_bad_inputs_exit_2_with_one_line_naming_the_file(tmp_path, capsys):
    def fails_naming(argv, name):
        capsys.readouterr()
        assert run_main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and name in lines[0], lines

    empty = tmp_path / "empty"
    empty.mkdir()
    fails_naming(["--data", empty, "--out", tmp_path / "r0", *TINY], "empty")
    fails_naming(["--data", tmp_path / "nowhere", "--out", tmp_path / "r0", *TINY], "nowhere")

    data = make_dataset(tmp_path / "data", views=4)
    bad = data / noisy_name("synth_view0001", "b", 8)
    bad.write_bytes(bad.read_bytes()[:150])  # truncated
    fails_naming(["--data", data, "--out", tmp_path / "r1", "--iters", "2", *TINY], bad.name)
    capsys.readouterr()
    assert run_main(["--data", data, "--out", tmp_path / "r2", "--iters", "2", "--skip-bad", *TINY]) == 0
    assert "synth_view0001" in capsys.readouterr().err  # reported, and training went on

    small = make_dataset(tmp_path / "mixed", views=2)
    odd = small / noisy_name("synth_view0000", "a", 8, "alb")
    write_exr(odd, {"": np.zeros((16, 32, 3), np.float32)})
    fails_naming(["--data", small, "--out", tmp_path / "r3", "--val-fraction", "0", *TINY], odd.name)
    write_exr(odd, {"depth": np.zeros((32, 32, 1), np.float32)})  # no RGB channels
    fails_naming(["--data", small, "--out", tmp_path / "r3", "--val-fraction", "0", *TINY], odd.name)

    single = make_dataset(tmp_path / "single", views=2, tags="a")
    fails_naming(["--data", single, "--out", tmp_path / "r4", "--target", "noisy", *TINY], "realisation")

    # Resuming a run with other settings would mix two experiments.
    good = make_dataset(tmp_path / "good", views=3)
    assert run_main(["--data", good, "--out", tmp_path / "r5", "--iters", "1", *TINY]) == 0
    fails_naming(["--data", good, "--out", tmp_path / "r5", "--iters", "2", "--target", "clean", *TINY], "config.json")
