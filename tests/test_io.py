"""EXR layers, checkpoints and atomic writes: round trips and one-line errors naming the file."""
import numpy as np
import pytest
import torch

from n2n_live.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from n2n_live.errors import UserError
from n2n_live.exr import read_exr, read_rgb, write_exr
from n2n_live.io_utils import atomic_path
from n2n_live.models.unet import UNet


def test_exr_layers_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    layers = {"": rng.random((5, 7, 3), dtype=np.float32) * 50, "albedo": rng.random((5, 7, 3), dtype=np.float32),
              "depth": rng.random((5, 7), dtype=np.float32)}
    path = tmp_path / "frame.exr"
    write_exr(path, layers)
    back = read_exr(path)
    assert set(back) == {"", "albedo", "depth"}
    assert np.array_equal(back[""], layers[""]) and np.array_equal(back["albedo"], layers["albedo"])
    assert np.array_equal(back["depth"][..., 0], layers["depth"])
    assert np.array_equal(read_rgb(path, "albedo"), layers["albedo"])
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize("content", [b"", b"not an exr at all", None])
def test_bad_exr_is_a_user_error_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.exr"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match="bad.exr"):
        read_exr(path)


def test_truncated_exr_and_missing_layer(tmp_path):
    good = tmp_path / "good.exr"
    write_exr(good, {"": np.ones((64, 64, 3), np.float32)})
    cut = tmp_path / "cut.exr"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(UserError, match="cut.exr"):
        read_exr(cut)
    with pytest.raises(UserError, match="good.exr.*albedo"):
        read_rgb(good, "albedo")


def test_checkpoint_round_trip_and_errors(tmp_path):
    net = UNet(9, 3)
    path = tmp_path / "net.pt"
    save_checkpoint(path, net, kind="mc", meta={"scene": "cornell-box"})
    net2, state = load_checkpoint(path)
    assert state["kind"] == "mc" and state["meta"]["scene"] == "cornell-box"
    x = torch.rand(1, 9, 32, 32) - 0.5
    assert torch.equal(net(x), net2(x))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(UserError, match="junk.pt"):
        read_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(UserError, match="missing.pt"):
        read_checkpoint(tmp_path / "missing.pt")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_atomic_files_get_ordinary_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
