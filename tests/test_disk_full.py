"""A full or read-only disk: every command that writes says so in one line naming the file, exits 2, and leaves no
temporary file behind (what was written before stays). Real file systems: a small tmpfs, which needs root."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def small_disk(tmp_path):
    """mount(folder, free_bytes, read_only=False): a tmpfs at `folder` with about `free_bytes` left (a filler file
    takes the rest); unmounted at the end. Skips where mounting is not allowed (not root, or a container without the
    capability)."""
    mounted = []

    def mount(folder: Path, free: int, read_only: bool = False) -> Path:
        folder.mkdir(parents=True)
        size = 4 * 2**20
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip() or 'not root'})")
        mounted.append(folder)
        st = os.statvfs(folder)
        with open(folder / "filler", "wb") as f:
            f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - free))
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], capture_output=True)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from n2n_live.checkpoint import save_checkpoint
    from n2n_live.models.unet import UNet

    d = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    save_checkpoint(d / "mc.pt", UNet(9, 3), kind="mc")
    r = subprocess.run([sys.executable, "-m", "n2n_live.commands.export", "--scene", "cornell-box", "--views", "2",
                        "--size", "32", "--spp", "4", "--ref-spp", "16", "--out", str(d / "data")],
                       env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return d


ROWS = {
    "n2n-denoise": ["n2n_live.commands.denoise", "--checkpoint", "IN/mc.pt", "--input", "IN/data/cornell-box_view0000_a_0004spp.hdr.exr", "--out", "OUT/x.exr"],
    "n2n-live": ["n2n_live", "--headless", "--size", "32", "--frames", "2", "--reference-spp", "0", "--compare", "",
                 "--snapshots", "1", "--out", "OUT/run"],
    "n2n-export": ["n2n_live.commands.export", "--scene", "cornell-box", "--views", "1", "--size", "32", "--spp", "4",
                   "--ref-spp", "16", "--out", "OUT/data"],
    "n2n-train": ["offline_experiments.batch_train", "--data", "IN/data", "--iters", "2", "--crop", "32",
                  "--val-every", "1", "--ckpt-every", "1", "--quiet", "--out", "OUT/run"],
}


@pytest.mark.parametrize("read_only", [False, True], ids=["full", "read-only"])
def test_a_full_or_read_only_disk_is_one_line_and_exit_2(read_only, inputs, small_disk, tmp_path):
    jobs = []
    for name, (module, *args) in ROWS.items():
        out = small_disk(tmp_path / f"disk-{name}-{uuid.uuid4().hex[:6]}", free=0, read_only=read_only)
        argv = [a.replace("IN/", f"{inputs}/").replace("OUT/", f"{out}/") for a in args]
        jobs.append((name, out, [sys.executable, "-m", module, *argv]))

    def run(job):
        name, out, cmd = job
        env = {**os.environ, "PYTHONPATH": str(REPO), "N2N_REFERENCE_CACHE": "off"}
        env.pop("DISPLAY", None)
        return job, subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, jobs))
    reason = "read-only file system" if read_only else "no space left on device"
    failures = []
    for (name, out, _), r in results:
        errors = [ln[ln.index(f"{name}: error:"):] for ln in r.stderr.replace("\r", "\n").splitlines()
                  if f"{name}: error:" in ln]  # a progress bar may share the line
        if (r.returncode != 2 or "Traceback" in r.stderr or len(errors) != 1 or reason not in errors[0].lower()
                or str(out) not in errors[0]):
            failures.append(f"{name}: exit {r.returncode}\n{r.stderr[-2000:]}")
        elif [p for p in out.rglob("*") if ".tmp" in p.name]:
            failures.append(f"{name}: a temporary file was left")
    assert not failures, "\n\n".join(failures)
