"""Non-finite data: refused when it cannot be used (weights never saved, a run whose every step is skipped),
repaired and counted when a few values are bad (NaN/Inf pixels). The bad-input table is tests/test_bad_input.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from n2n_live.checkpoint import save_checkpoint
from n2n_live.models.unet import UNet


def test_non_finite_weights_are_never_saved(tmp_path):
    from n2n_live.errors import UserError

    net = UNet(3, 3)
    save_checkpoint(tmp_path / "net.pt", net)
    before = (tmp_path / "net.pt").read_bytes()
    with torch.no_grad():
        net.dec_conv1c.weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(UserError, match="not finite"):
        save_checkpoint(tmp_path / "net.pt", net)
    assert (tmp_path / "net.pt").read_bytes() == before  # the earlier checkpoint stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.pt"]  # no temporary left


def test_a_few_nan_pixels_are_repaired_and_counted(tmp_path, capfd):
    """A synthetic-noise network on a 32x32 image with 3 NaN/Inf values: one line counting them, and a real
    image out (without the repair, the NaN spreads through the U-Net and the result is black or refused)."""
    from PIL import Image

    from n2n_live.commands.denoise import main
    from n2n_live.exr import write_exr

    img = np.random.default_rng(0).uniform(0.2, 0.8, (32, 32, 3)).astype(np.float32)
    img[3, 4, 0], img[10, 20, 1], img[30, 1, 2] = np.nan, np.inf, -np.inf
    write_exr(tmp_path / "few.exr", {"": img})
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "gaussian.pt", UNet(3, 3), kind="gaussian")
    main(["--checkpoint", str(tmp_path / "gaussian.pt"), "--input", str(tmp_path / "few.exr"),
          "--out", str(tmp_path / "out.png"), "--device", "cpu"])
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3 NaN/Inf value(s)" in err[0] and "few.exr" in err[0], err
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (32, 32, 3) and (out > 0).mean() > 0.9


def test_a_run_whose_every_step_is_skipped_fails(tmp_path, monkeypatch, capfd):
    """An emitter of radiance 1e30: L_HDR overflows on every step, TrainStep skips them all; the run must not
    end as a success with an untrained network."""
    from n2n_live.commands.cli import main

    (tmp_path / "hot.xml").write_text("""<scene version="3.0.0">
  <integrator type="path"/>
  <sensor type="perspective">
    <float name="fov" value="45"/>
    <transform name="to_world"><lookat origin="0, 0, 4" target="0, 0, 0" up="0, 1, 0"/></transform>
    <film type="hdrfilm"><integer name="width" value="16"/><integer name="height" value="16"/></film>
  </sensor>
  <shape type="rectangle"><emitter type="area"><rgb name="radiance" value="1e30"/></emitter></shape>
</scene>""")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["--headless", "--scene", "hot.xml", "--size", "16", "--crop", "16", "--frames", "1", "--spp", "2",
              "--iters-per-frame", "2", "--sync", "--reference-spp", "0", "--compare", "", "--snapshots", "0",
              "--no-progress", "--device", "cpu", "--out", "run"])
    err = capfd.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "all 2 training steps were skipped" in err[-1], err
