"""n2n-denoise: tiling, MC networks on EXR (with albedo/normal), synthetic-noise networks on PNG/JPG, bad input."""
import numpy as np
import pytest
import torch
from PIL import Image

from n2n_live.commands import denoise as denoise_cli
from n2n_live.checkpoint import save_checkpoint
from n2n_live.live.denoiser import Denoiser
from n2n_live.exr import read_exr, read_rgb, write_exr
from n2n_live.features import assemble
from n2n_live.models.unet import UNet, run_padded


def run(argv) -> int:
    try:
        denoise_cli.main([str(a) for a in argv])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_tiles_blend_back_to_the_whole_image_result():
    # A per-pixel network gives the same result in tiles as on the whole image, wherever the seams are.
    net = torch.nn.Conv2d(3, 3, 1)
    x = torch.randn(1, 3, 70, 100)
    whole = denoise_cli.denoise_tiled(net, x, tile=1024)
    tiled = denoise_cli.denoise_tiled(net, x, tile=32, overlap=8)
    assert torch.allclose(whole, tiled, atol=1e-5)
    # The U-Net itself: the tiled output differs only a little from the whole one (a finite receptive field).
    unet, x = UNet(3, 3), x[..., :40, :60]
    whole, tiled = denoise_cli.denoise_tiled(unet, x, tile=1024), denoise_cli.denoise_tiled(unet, x, tile=32, overlap=8)
    assert tiled.shape == whole.shape == (1, 3, 40, 60) and torch.isfinite(tiled).all()
    assert (tiled - whole).abs().mean() < whole.abs().mean()


@pytest.fixture
def mc_files(tmp_path):
    rng = np.random.default_rng(0)
    h, w = 40, 72
    files = {"noisy": tmp_path / "noisy.exr", "alb": tmp_path / "alb.exr", "nrm": tmp_path / "nrm.exr"}
    write_exr(files["noisy"], {"": rng.gamma(2.0, 0.5, (h, w, 3)).astype(np.float32)})
    write_exr(files["alb"], {"": rng.random((h, w, 3), dtype=np.float32)})
    write_exr(files["nrm"], {"": np.dstack([np.zeros((h, w, 2)), np.ones((h, w))]).astype(np.float32)})
    save_checkpoint(tmp_path / "mc.pt", UNet(9, 3), kind="mc")
    return files


def test_mc_network_on_exr_tiled_exr_and_png_out(tmp_path, mc_files):
    out = tmp_path / "out.exr"
    argv = ["--checkpoint", tmp_path / "mc.pt", "--input", mc_files["noisy"], "--albedo", mc_files["alb"],
            "--normal", mc_files["nrm"]]
    assert run([*argv, "--out", out]) == 0
    whole = read_rgb(out)
    assert whole.shape == (40, 72, 3) and np.isfinite(whole).all()
    assert run([*argv, "--out", tmp_path / "tiled.exr", "--tile", "32", "--overlap", "8"]) == 0
    assert read_rgb(tmp_path / "tiled.exr").shape == (40, 72, 3)
    assert run([*argv, "--out", tmp_path / "out.png"]) == 0
    assert Image.open(tmp_path / "out.png").size == (72, 40)
    # Albedo and normal may also come as layers of the input EXR itself.
    layered = tmp_path / "layered.exr"
    write_exr(layered, {"": read_rgb(mc_files["noisy"]), "albedo": read_rgb(mc_files["alb"]),
                        "normal": read_rgb(mc_files["nrm"])})
    assert run(["--checkpoint", tmp_path / "mc.pt", "--input", layered, "--out", tmp_path / "l.exr"]) == 0
    assert np.allclose(read_exr(tmp_path / "l.exr")[""], whole, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))  == []  # no temporaries


def _images(files) -> list[torch.Tensor]:
    return [torch.from_numpy(read_rgb(files[k])) for k in ("noisy", "alb", "nrm")]


def test_n2n_denoise_equals_the_live_denoiser(tmp_path, mc_files):
    """The same network and input give the same image in the live app and from n2n-denoise (one inference seam:
    both clamp the network's negative outputs, which a fresh network has plenty of)."""
    torch.manual_seed(3)
    net = UNet(9, 3)
    save_checkpoint(tmp_path / "net.pt", net, kind="mc")
    colour, albedo, normal = _images(mc_files)
    with torch.no_grad():
        assert (run_padded(net, assemble(colour, albedo, normal)) < 0).any()  # the clamp matters here
    live = Denoiser.copy_of(net).denoise(colour, albedo, normal).numpy()
    assert run(["--checkpoint", tmp_path / "net.pt", "--input", mc_files["noisy"], "--albedo", mc_files["alb"],
                "--normal", mc_files["nrm"], "--out", tmp_path / "cli.exr"]) == 0
    assert np.allclose(read_rgb(tmp_path / "cli.exr"), live, rtol=1e-5, atol=1e-6)


def test_features_beside_an_exported_input_are_used_and_flags_win(tmp_path, mc_files, capsys):
    """n2n-export's naming: X.hdr.exr finds X.alb.exr and X.nrm.exr without flags, says so in one line; a flag
    still wins over the file beside the input."""
    hdr = tmp_path / "cbox_view0001_a_0008spp.hdr.exr"
    for src, ext in (("noisy", "hdr"), ("alb", "alb"), ("nrm", "nrm")):
        hdr.with_name(f"cbox_view0001_a_0008spp.{ext}.exr").write_bytes(mc_files[src].read_bytes())
    ck = ["--checkpoint", tmp_path / "mc.pt", "--input", hdr]
    assert run([*ck, "--albedo", mc_files["alb"], "--normal", mc_files["nrm"], "--out", tmp_path / "flags.exr"]) == 0
    capsys.readouterr()
    assert run([*ck, "--out", tmp_path / "beside.exr"]) == 0
    note = [line for line in capsys.readouterr().err.splitlines() if "using" in line]
    assert len(note) == 1 and "cbox_view0001_a_0008spp.alb.exr" in note[0] and ".nrm.exr" in note[0], note
    assert np.array_equal(read_rgb(tmp_path / "beside.exr"), read_rgb(tmp_path / "flags.exr"))
    other = tmp_path / "other_alb.exr"
    write_exr(other, {"": np.full((40, 72, 3), 0.9, np.float32)})
    assert run([*ck, "--albedo", other, "--out", tmp_path / "flag_wins.exr"]) == 0
    assert not np.allclose(read_rgb(tmp_path / "flag_wins.exr"), read_rgb(tmp_path / "beside.exr"))


def test_a_kernel_network_reads_the_emission_exported_beside_its_input(tmp_path, mc_files, capsys):
    """X.emi.exr (n2n-export) is the light a kernel network filters apart, never divided by the albedo: used when it
    is there, with a note (without demodulation the split would not change the linear filter's result)."""
    from n2n_live.models.kernel import KernelPredictingNet

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "k.pt", KernelPredictingNet(n_in=9, demodulate=True, emission=True), kind="mc")
    hdr = tmp_path / "cbox_view0001_a_0008spp.hdr.exr"
    for src, ext in (("noisy", "hdr"), ("alb", "alb"), ("nrm", "nrm")):
        hdr.with_name(f"cbox_view0001_a_0008spp.{ext}.exr").write_bytes(mc_files[src].read_bytes())
    ck = ["--checkpoint", tmp_path / "k.pt", "--input", hdr]
    assert run([*ck, "--out", tmp_path / "without.exr"]) == 0
    emitted = np.zeros((40, 72, 3), np.float32)
    emitted[:8] = read_rgb(hdr)[:8]  # the top rows are a light's, seen straight on
    write_exr(hdr.with_name("cbox_view0001_a_0008spp.emi.exr"), {"": emitted})
    capsys.readouterr()
    assert run([*ck, "--out", tmp_path / "with.exr"]) == 0
    assert "cbox_view0001_a_0008spp.emi.exr" in capsys.readouterr().err
    assert not np.allclose(read_rgb(tmp_path / "with.exr"), read_rgb(tmp_path / "without.exr"))


def test_synthetic_noise_networks_on_png_and_jpg(tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((50, 60, 3)) * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    Image.fromarray((rng.random((50, 60)) * 255).astype(np.uint8)).save(tmp_path / "gray.jpg")
    save_checkpoint(tmp_path / "gauss.pt", UNet(3, 3), kind="gaussian")
    save_checkpoint(tmp_path / "mri.pt", UNet(1, 1), kind="mri")
    assert run(["--checkpoint", tmp_path / "gauss.pt", "--input", tmp_path / "photo.png", "--out", tmp_path / "o.png"]) == 0
    assert np.asarray(Image.open(tmp_path / "o.png")).shape == (50, 60, 3)
    assert run(["--checkpoint", tmp_path / "mri.pt", "--input", tmp_path / "gray.jpg", "--out", tmp_path / "o.jpg",
                "--tile", "32", "--overlap", "4"]) == 0
    assert np.asarray(Image.open(tmp_path / "o.jpg")).shape == (50, 60)
    assert run(["--checkpoint", tmp_path / "gauss.pt", "--input", tmp_path / "photo.png", "--out", tmp_path / "o.exr"]) == 0
    assert read_rgb(tmp_path / "o.exr").shape == (50, 60, 3)


def test_bad_input_one_line_exit_2(tmp_path, mc_files, capsys):
    def fails(argv, *words):
        capsys.readouterr()
        assert run(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and all(w in lines[0] for w in words), lines

    ck = ["--checkpoint", tmp_path / "mc.pt"]
    fails([*ck, "--input", mc_files["noisy"], "--out", tmp_path / "o.exr"], "albedo and normal")
    small = tmp_path / "small_alb.exr"
    write_exr(small, {"": np.zeros((8, 8, 3), np.float32)})
    fails([*ck, "--input", mc_files["noisy"], "--albedo", small, "--normal", mc_files["nrm"], "--out", tmp_path / "o.exr"],
          "small_alb.exr")
    cut = tmp_path / "cut.exr"
    cut.write_bytes(mc_files["noisy"].read_bytes()[:100])
    fails([*ck, "--input", cut, "--albedo", mc_files["alb"], "--normal", mc_files["nrm"], "--out", tmp_path / "o.exr"],
          "cut.exr")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "ldr.png")
    fails([*ck, "--input", tmp_path / "ldr.png", "--out", tmp_path / "o.exr"], "ldr.png", ".exr")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    save_checkpoint(tmp_path / "gauss.pt", UNet(3, 3), kind="gaussian")
    fails(["--checkpoint", tmp_path / "gauss.pt", "--input", tmp_path / "junk.png", "--out", tmp_path / "o.png"], "junk.png")
    fails(["--checkpoint", tmp_path / "none.pt", "--input", mc_files["noisy"], "--out", tmp_path / "o.png"], "none.pt")
    assert not (tmp_path / "o.exr").exists() and not (tmp_path / "o.png").exists()
