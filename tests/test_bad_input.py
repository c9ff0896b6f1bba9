"""Bad input to every command (all seven): exit 2, exactly one line on stderr naming the problem (and the file), no
traceback, nothing written. One table; each row runs in-process (fast: a refused run stops before the heavy
imports matter) and a few run again as real subprocesses, in parallel, to see what the user sees (argparse's usage
block, OpenEXR's and numpy's own messages would show up there)."""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from n2n_live.checkpoint import FORMAT, save_checkpoint
from n2n_live.models.unet import UNet
from renderer import seeds

REPO = Path(__file__).resolve().parent.parent

MODULES = {
    "n2n-live": "n2n_live.commands.cli", "n2n-export": "n2n_live.commands.export", "n2n-train": "offline_experiments.batch_train",
    "n2n-denoise": "n2n_live.commands.denoise", "n2n-bench": "n2n_live.commands.bench", "n2n-experiment": "offline_experiments.cli",
    "n2n-compare": "n2n_live.commands.compare",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Inputs shared by the rows (read-only for them): checkpoints, images, a file where a folder is expected."""
    from n2n_live.exr import write_exr

    d = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    save_checkpoint(d / "mc.pt", UNet(3, 3), kind="mc")
    save_checkpoint(d / "gaussian.pt", UNet(3, 3), kind="gaussian")
    for name, n_in in (("nan.pt", 3), ("nan9.pt", 9)):  # 9 inputs: the live network's shape
        state = {k: v.clone() for k, v in UNet(n_in, 3).state_dict().items()}
        state["enc_conv0.weight"][0, 0, 0, 0] = float("nan")
        torch.save({"format": FORMAT, "n_in": n_in, "m_out": 3, "kind": "mc", "net": state, "train_state": None,
                    "meta": {}}, d / name)
    (d / "garbage.pt").write_bytes(b"not a checkpoint")
    write_exr(d / "ok.exr", {"": np.full((32, 32, 3), 0.5, np.float32)})
    blob = (d / "ok.exr").read_bytes()
    (d / "truncated.exr").write_bytes(blob[: len(blob) // 2])
    (d / "garbage.exr").write_bytes(b"this is not an EXR file at all")
    write_exr(d / "allnan.exr", {"": np.full((32, 32, 3), np.nan, np.float32)})
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(d / "img.png")
    for folder in ("empty", "data", "images/train", "broken", "tif16", "bomb"):
        (d / folder).mkdir(parents=True)
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(d / "images" / "train" / "img.png")
    (d / "broken" / "x.png").write_bytes(b"an image by name only")
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(d / "tif16" / "full.tif")  # I;16
    (d / "tif16" / "cut.tif").write_bytes((d / "tif16" / "full.tif").read_bytes()[:4000])
    (d / "tif16" / "full.tif").unlink()
    (d / "cut16.png").write_bytes(_png(64, 64, 16, b"\0" + b"\1" * 64 * 6))  # the first row of 64 only
    (d / "bomb" / "huge.png").write_bytes(_png(30000, 30000, 8, b""))  # its header alone
    (d / "nosensor.xml").write_text("<scene version='3.0.0'><shape type='sphere'/></scene>")
    (d / "bad.xml").write_text("<scene version='3.0.0'><sensor type='perspective'></scene>")
    return d


def _png(width: int, height: int, bits: int, data: bytes) -> bytes:
    """A PNG (RGB) whose header claims width x height whatever the pixel data holds: truncated files, bombs."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bits, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b""))


def unwritable(tmp: Path) -> Path:
    """A folder nothing can be created in: chmod 555, or for root (whom permissions do not stop) /sys."""
    if os.geteuid() == 0:
        return Path("/sys/n2n-no-such-folder")
    ro = tmp.parent / "read-only"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o555)
    return ro / "out"


# (command, argv, expected text in the one line); IN = the shared inputs folder, FILE = an existing file in the
# row's working folder, DIR = an existing folder there, RO = an unwritable place, OUT = a fresh path there.
ROWS = [
    # n2n-live (headless and viewer flags)
    ("n2n-live", "--headless --lr inf --out OUT", "--lr"),
    ("n2n-live", "--headless --lr nan --out OUT", "--lr"),
    ("n2n-live", "--headless --lr -1e-3 --out OUT", "--lr"),
    ("n2n-live", "--headless --size 100000 --out OUT", "--size"),
    ("n2n-live", "--headless --size 16000 --out OUT", "needs about"),
    ("n2n-live", "--headless --size 4096 --spp 400000 --out OUT", "samples in one render"),
    ("n2n-live", "--headless --spp 0 --out OUT", "--spp"),
    ("n2n-live", "--headless --frames 1e3 --out OUT", "--frames"),
    ("n2n-live", "--headless --exposure nan --out OUT", "--exposure"),
    ("n2n-live", "--headless --crop 0 --out OUT", "--crop"),
    ("n2n-live", "--headless --iters-per-frame -1 --out OUT", "--iters-per-frame"),
    ("n2n-live", "--headless --reference-spp -8 --out OUT", "--reference-spp"),
    ("n2n-live", "--headless --out FILE", "FILE"),
    ("n2n-live", "--headless --out RO", "cannot write"),
    ("n2n-live", "--headless --scene= --out OUT", "--scene"),
    ("n2n-live", "--headless --load IN/nan9.pt --out OUT", "not finite"),
    ("n2n-live", "--headless --load IN/garbage.pt --out OUT", "IN/garbage.pt"),
    ("n2n-live", "--headless --no-such-flag", "--no-such-flag"),
    ("n2n-live", "--headless --window-size 10x10 --out OUT", "--window-size"),
    ("n2n-live", "--headless --render-scale inf --out OUT", "--render-scale"),
    # n2n-export
    ("n2n-export", "--scene= --out OUT", "--scene"),
    ("n2n-export", "--scene , --out OUT", "--scene"),
    ("n2n-export", "--scene cornell-box --out FILE", "FILE"),
    ("n2n-export", "--scene cornell-box --out RO", "cannot write"),
    ("n2n-export", "--scene cornell-box --size 0 --out OUT", "--size"),
    ("n2n-export", "--scene cornell-box --size 16000 --out OUT", "needs about"),
    ("n2n-export", "--scene cornell-box --spp 8,0 --out OUT", "--spp"),
    ("n2n-export", "--scene cornell-box --ref-spp nan --out OUT", "--ref-spp"),
    ("n2n-export", "--scene cornell-box --path-fraction inf --out OUT", "--path-fraction"),
    ("n2n-export", "--scene cornell-box --shard 3/2 --out OUT", "--shard"),
    # n2n-train
    ("n2n-train", "--data IN/data --out OUT --lr nan", "--lr"),
    ("n2n-train", "--data IN/data --out OUT --lr inf", "--lr"),
    ("n2n-train", "--data IN/data --out OUT --batch 0", "--batch"),
    ("n2n-train", "--data IN/data --out OUT --crop 100000", "--crop"),
    ("n2n-train", "--data IN/data --out OUT --batch 4096 --crop 8192", "needs about"),
    ("n2n-train", "--data IN/data --out OUT --val-fraction 1.5", "--val-fraction"),
    ("n2n-train", "--data IN/data --out FILE", "FILE"),
    ("n2n-train", "--data IN/data --out RO", "cannot write"),
    ("n2n-train", "--data IN/no-such-data --out OUT --iters 1", "IN/no-such-data"),
    ("n2n-train", "--data IN/data --out OUT --device tpu", "--device"),
    # n2n-denoise
    ("n2n-denoise", "--checkpoint IN/nan.pt --input IN/img.png --out OUT.png", "IN/nan.pt"),
    ("n2n-denoise", "--checkpoint IN/garbage.pt --input IN/img.png --out OUT.png", "IN/garbage.pt"),
    ("n2n-denoise", "--checkpoint IN/no.pt --input IN/img.png --out OUT.png", "IN/no.pt"),
    ("n2n-denoise", "--checkpoint IN/mc.pt --input IN/truncated.exr --out OUT.exr", "IN/truncated.exr"),
    ("n2n-denoise", "--checkpoint IN/mc.pt --input IN/garbage.exr --out OUT.exr", "IN/garbage.exr"),
    ("n2n-denoise", "--checkpoint IN/mc.pt --input IN/allnan.exr --out OUT.exr", "IN/allnan.exr"),
    ("n2n-denoise", "--checkpoint IN/gaussian.pt --input IN/allnan.exr --out OUT.png", "IN/allnan.exr"),
    ("n2n-denoise", "--checkpoint IN/gaussian.pt --input IN/img.png --out DIR", "DIR"),
    ("n2n-denoise", "--checkpoint IN/gaussian.pt --input IN/img.png --out RO/x.png", "cannot write"),
    ("n2n-denoise", "--checkpoint IN/gaussian.pt --input IN/img.png --out OUT.png --tile nan", "--tile"),
    ("n2n-denoise", "--checkpoint IN/gaussian.pt --input IN/img.png --out OUT.png --overlap 600", "--overlap"),
    ("n2n-denoise", "--checkpoint IN/gaussian.pt --input IN/img.png --out OUT.png --device tpu", "--device"),
    # n2n-bench
    ("n2n-bench", "--frames 0", "--frames"),
    ("n2n-bench", "--spp 0", "--spp"),
    ("n2n-bench", "--size 0", "--size"),
    ("n2n-bench", "--scene=", "--scene"),
    ("n2n-bench", "--json DIR", "DIR"),
    ("n2n-bench", "--json RO/b.json", "cannot write"),
    ("n2n-bench", "--size 16000 --crop 16000", "needs about"),
    # n2n-experiment
    ("n2n-experiment", "gaussian --iters nan --out OUT", "--iters"),
    ("n2n-experiment", "gaussian --seed -1 --out OUT", "--seed"),
    ("n2n-experiment", "gaussian --workers -1 --out OUT", "--workers"),
    ("n2n-experiment", "gaussian --out FILE --data-root IN", "FILE"),
    ("n2n-experiment", "gaussian --data-root IN/no-such-root --out OUT", "IN/no-such-root"),
    ("n2n-experiment", "gaussian --out OUT N2N_DATA=IN/no-such-env", "N2N_DATA"),
    # n2n-compare (issue 22: argparse's own parser, --crop 0 ran, an unbounded --seed, --out checked after rendering)
    ("n2n-compare", "--crop 0 --out OUT", "--crop"),
    ("n2n-compare", f"--seed {seeds.MAX_LIVE_SEED + 1} --out OUT", "--seed"),
    ("n2n-compare", "--seed -1 --out OUT", "--seed"),
    ("n2n-compare", "--frames 0 --out OUT", "--frames"),
    ("n2n-compare", "--size 0x8 --out OUT", "--size"),
    ("n2n-compare", "--lr nan --out OUT", "--lr"),
    ("n2n-compare", "--reference-spp 1 --out OUT", "--reference-spp"),
    ("n2n-compare", "--variants paper,foo --out OUT", "--variants"),
    ("n2n-compare", "--scenes cornell-box,no-such-scene --out OUT", "no-such-scene"),
    ("n2n-compare", "--scenes cornell-box,IN/nosensor.xml --out OUT", "IN/nosensor.xml"),
    ("n2n-compare", "--scenes cornell-box --out FILE", "FILE"),
    ("n2n-compare", "--scenes cornell-box --out RO", "cannot write"),
    ("n2n-compare", "--scenes cornell-box --size 16000 --out OUT", "needs about"),
    ("n2n-compare", "--scenes cornell-box --device tpu --out OUT", "--device"),
    # every scene checked before the first renders (a bad second one left a partial dataset)
    ("n2n-export", "--scene cornell-box,no-such-scene --out OUT", "no-such-scene"),
    ("n2n-export", "--scene cornell-box --scene IN/nosensor.xml --out OUT", "IN/nosensor.xml"),
    ("n2n-export", "--scene cornell-box,IN/bad.xml --out OUT", "IN/bad.xml"),
    ("n2n-export", "--scene cornell-box,IN/no-such.xml --out OUT", "IN/no-such.xml"),
    # image folders: one image that decodes, checked before anything is written; TIFF found; 16-bit and bombs
    ("n2n-experiment", "gaussian --eval IN/broken --out OUT", "IN/broken"),
    ("n2n-experiment", "gaussian --train-dir IN/tif16 --eval IN/images/train --out OUT", "IN/tif16/cut.tif"),
    ("n2n-experiment", "gaussian --eval IN/bomb --out OUT", "too many pixels"),
    ("n2n-denoise", "--checkpoint IN/gaussian.pt --input IN/cut16.png --out OUT.png", "IN/cut16.png"),
    ("n2n-denoise", "--checkpoint IN/gaussian.pt --input IN/bomb/huge.png --out OUT.png", "too many pixels"),
]
# A GPU this machine does not have: the same one line from every command that has a --device.
DEVICE_ROWS = [("n2n-live", "--headless --out OUT"), ("n2n-bench", ""), ("n2n-train", "--data IN/data --out OUT"),
               ("n2n-denoise", "--checkpoint IN/gaussian.pt --input IN/img.png --out OUT.png"),
               ("n2n-experiment", "gaussian --out OUT"), ("n2n-compare", "--scenes cornell-box --out OUT")]
for gpu in ("cuda:7", "cuda"):  # rows for a GPU this machine has are left out
    ROWS += [(command, f"{argv} --device {gpu}".strip(), f"--device {gpu}") for command, argv in DEVICE_ROWS
             if torch.cuda.device_count() <= int(gpu.partition(":")[2] or 0)]

# Rows that also run as real subprocesses: one per command (a truncated EXR for OpenEXR's own messages).
SUBPROCESS = {0, 20, 30, 43, 52, 64, 65}


def _expand(text: str, files: Path, work: Path, ro: Path) -> str:
    subs = {"IN": files, "FILE": work / "FILE", "DIR": work / "DIR", "RO": ro, "OUT": work / "out"}

    def one(token: str) -> str:
        if "," in token:
            return ",".join(one(t) for t in token.split(","))
        if "=" in token and not token.startswith("-"):
            key, _, value = token.partition("=")
            return f"{key}={one(value)}"
        for k, v in subs.items():
            if token == k or token.startswith((k + "/", k + ".")):
                return str(v) + token[len(k):]
        return token

    return " ".join(one(t) for t in text.split(" "))


def _args(row, files, work, ro):
    command, argv, expect = row
    (work / "FILE").write_text("a file, not a folder")
    (work / "DIR").mkdir(exist_ok=True)
    parts = _expand(argv, files, work, ro).split()
    env = dict(p.split("=", 1) for p in parts if p.startswith("N2N_DATA="))
    args = [p for p in parts if not p.startswith("N2N_DATA=")]
    return command, args, env, _expand(expect, files, work, ro)


def _tree(folder: Path) -> set:
    return {p.relative_to(folder) for p in folder.rglob("*")}


def _check(code, err: str, expect: str, before: set, work: Path):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and expect in lines[0], err
    assert _tree(work) == before, f"left behind: {_tree(work) - before}"


@pytest.mark.parametrize("row", ROWS, ids=[f"{i}:{r[0]} {r[1]}" for i, r in enumerate(ROWS)])
def test_bad_input_in_process(row, files, tmp_path, monkeypatch, capfd):
    import importlib

    work = tmp_path / "work"
    work.mkdir()
    command, args, env, expect = _args(row, files, work, unwritable(tmp_path))
    before = _tree(work)
    monkeypatch.chdir(work)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if "N2N_DATA" not in env:
        monkeypatch.setenv("N2N_DATA", str(files))
    module = importlib.import_module(MODULES[command])
    _no_work(monkeypatch)
    with pytest.raises(SystemExit) as e:
        module.main(args)
    _check(e.value.code, capfd.readouterr().err, expect, before, work)


def _no_work(monkeypatch):
    """Each command's work replaced by a failure: a row must be refused before it, and a validation that stops
    working makes its row fail at once instead of starting a real render or training run."""
    from n2n_live.commands import bench, compare, export, headless
    from offline_experiments import batch_train, experiments

    def work(*a, **k):
        raise AssertionError("the bad input reached the command's work")

    monkeypatch.setattr(headless, "run_headless", work)
    monkeypatch.setattr(export, "export", work)
    monkeypatch.setattr(batch_train, "train", work)
    monkeypatch.setattr(bench, "run", work)
    monkeypatch.setattr(compare, "record", work)
    monkeypatch.setattr(compare, "run_variant", work)
    for name in list(experiments.EXPERIMENTS):
        monkeypatch.setitem(experiments.EXPERIMENTS, name, work)




def test_bad_input_subprocesses(files, tmp_path):
    """The same rows through `python -m`, several at once: what a user's terminal shows."""
    jobs = []
    for i in sorted(SUBPROCESS):
        work = tmp_path / f"row{i}"
        work.mkdir()
        command, args, env, expect = _args(ROWS[i], files, work, unwritable(tmp_path))
        jobs.append((i, work, _tree(work), expect, [sys.executable, "-m", MODULES[command]] + args,
                     {**os.environ, "PYTHONPATH": str(REPO), "N2N_DATA": str(files), **env}))

    def run(job):
        i, work, before, expect, cmd, env = job
        r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        return job, r

    with ThreadPoolExecutor(4) as pool:
        for (i, work, before, expect, cmd, _), r in pool.map(run, jobs):
            try:
                _check(r.returncode, r.stderr, expect, before, work)
            except AssertionError as e:
                raise AssertionError(f"row {i} {ROWS[i]}: {e}") from None


# ---------------------------------------------------------------------------------------------------------
# Checkpoints and damaged files (non-finite data: tests/test_non_finite.py).

class _Payload:
    """What a crafted checkpoint carries: unpickling it runs a shell command that leaves a file behind."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("command,args", [
    ("n2n-denoise", "--checkpoint CKPT --input IN/ok.exr --out OUT/x.exr"),
    ("n2n-live", "--headless --load CKPT --out OUT"),
    ("n2n-train", "--data IN/data --init CKPT --out OUT"),
])
def test_a_checkpoint_that_would_run_code_is_refused_unopened(command, args, files, tmp_path, monkeypatch, capfd):
    """A .pt is a pickle: loading one with weights_only=False runs whatever it holds. Every command a user hands a
    checkpoint to refuses it in one line, and the payload never runs."""
    import importlib

    marker = tmp_path / "payload-ran"
    state = {k: v.clone() for k, v in UNet(9, 3).state_dict().items()}
    torch.save({"format": FORMAT, "n_in": 9, "m_out": 3, "kind": "mc", "net": state, "train_state": None,
                "meta": {"note": _Payload(marker)}}, tmp_path / "evil.pt")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    argv = [a.replace("CKPT", str(tmp_path / "evil.pt")).replace("IN", str(files)).replace("OUT", str(work / "out"))
            for a in args.split()]
    module = importlib.import_module(MODULES[command])
    _no_work(monkeypatch)
    with pytest.raises(SystemExit) as e:
        module.main(argv)
    err = capfd.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "evil.pt" in err[0] and "refused" in err[0], err
    assert not marker.exists(), "the checkpoint's payload ran"


def test_a_damaged_exr_is_one_line_without_openexrs_own(files, tmp_path):
    """OpenEXR's core prints its own complaints on stdout and stderr (64x64: a corrupt chunk leader and a
    'Warning: Exception raised reading pixel data' line): the user sees only the command's one line."""
    from n2n_live.exr import write_exr

    write_exr(tmp_path / "big.exr", {"": np.random.default_rng(0).random((64, 64, 3), np.float32)})
    blob = (tmp_path / "big.exr").read_bytes()
    (tmp_path / "cut.exr").write_bytes(blob[: len(blob) // 2])
    r = subprocess.run([sys.executable, "-m", MODULES["n2n-denoise"], "--checkpoint", str(files / "mc.pt"), "--input",
                        str(tmp_path / "cut.exr"), "--out", str(tmp_path / "out.exr")], cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cut.exr: not a readable EXR file" in lines[0], r.stderr
    assert not (tmp_path / "out.exr").exists()
