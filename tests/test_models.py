"""The model factory, the kernel-predicting net and its checkpoints (n2n_live.models)."""
import numpy as np
import pytest
import torch

from n2n_live import features, models
from n2n_live.commands import denoise as denoise_cli
from n2n_live.checkpoint import load_checkpoint, save_checkpoint
from n2n_live.errors import UserError
from n2n_live.exr import read_rgb, write_exr
from n2n_live.models.kernel import KernelPredictingNet, apply_kernel
from n2n_live.models.unet import UNet, run_padded
from n2n_live.live.trainer import OnlineTrainer

pytestmark = pytest.mark.numeric  # make test reruns these under ATEN_CPU_CAPABILITY=default


def small(n_in=9, **kw):
    torch.manual_seed(0)
    return KernelPredictingNet(n_in, trunk="small", width=8, **kw)


def kernel_input(net, h=24, w=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    colour = torch.rand(h, w, 3, generator=g) * 4
    albedo, normal = torch.rand(h, w, 3, generator=g), torch.rand(h, w, 3, generator=g) * 2 - 1
    return features.network_input(net, colour, albedo, normal), colour


def test_factory_builds_each_model_and_the_paper_model_is_table_2():
    assert type(models.build("paper")) is UNet and models.build("paper").n_in == 9
    net = models.build("kernel", 10, kernel_size=3, dilations=(1, 2))
    assert isinstance(net, KernelPredictingNet) and net.n_in == 10
    assert models.spec(net) == {"name": "kernel", "n_in": 10, "options": {
        "kernel_size": 3, "dilations": [1, 2], "trunk": "small", "width": 32, "blend": False, "demodulate": False,
        "emission": False, "despeckle": False}}
    assert type(models.rebuild(net)) is KernelPredictingNet and models.linear_channels(net) == 3
    with pytest.raises(UserError):
        models.build("resnet")


def test_network_input_channels_per_model():
    c = torch.rand(8, 8, 3)
    assert features.network_input(UNet(9, 3), c, c, c).shape == (1, 9, 8, 8)
    assert features.network_input(small(), c, c, c).shape == (1, 12, 8, 8)
    x = features.network_input(small(10), c, c, c, history=torch.full((8, 8, 1), 4.0))
    assert x.shape == (1, 13, 8, 8)
    assert torch.allclose(x[:, 9], torch.zeros(1, 8, 8))  # 1/sqrt(4) - 0.5
    assert torch.allclose(x[:, 10:], c.permute(2, 0, 1)[None])  # linear colour, untouched


def test_kernels_are_normalised_and_non_negative():
    net = small()
    x, _ = kernel_input(net)
    ks = net.kernels(x)
    assert len(ks) == 3
    for k in ks:
        assert k.shape == (1, 25, 24, 40)
        assert (k >= 0).all()
        assert torch.allclose(k.sum(dim=1), torch.ones(1, 24, 40), atol=1e-5)


def test_identity_kernel_returns_its_input():
    g = torch.Generator().manual_seed(1)
    colour = torch.rand(2, 3, 16, 20, generator=g)
    ident = torch.zeros(2, 25, 16, 20)
    ident[:, 12] = 1.0
    for d in (1, 2, 4):
        assert torch.equal(apply_kernel(colour, ident, d), colour)
    # the whole net with its last layer forced to a dominant centre logit: the output is the linear colour
    net = small()
    with torch.no_grad():
        net.trunk.dec_conv1b.weight.zero_()
        net.trunk.dec_conv1b.bias.zero_()
        net.trunk.dec_conv1b.bias.view(3, 25)[:, 12] = 60.0
    x, colour = kernel_input(net)
    assert torch.allclose(net(x), colour.permute(2, 0, 1)[None], atol=1e-5)


def test_normalised_kernels_keep_a_constant_image_constant_up_to_the_border():
    # replicated borders: a kernel reaching outside the frame still averages the image's own values
    net = small()
    x, _ = kernel_input(net, 20, 20)
    x[:, 9:] = 0.7
    assert torch.allclose(run_padded(net, x), torch.full((1, 3, 20, 20), 0.7), atol=1e-5)


def test_kernel_output_is_a_filter_of_the_noisy_colour():
    # every output pixel lies inside the range of the input's colours (a convex combination), even untrained
    net = small()
    x, colour = kernel_input(net)
    y = run_padded(net, x)
    assert y.shape == (1, 3, 24, 40)
    assert y.min() >= colour.min() - 1e-5 and y.max() <= colour.max() + 1e-5


@pytest.mark.parametrize("n_in", [9, 10])
def test_kernel_checkpoint_round_trips_through_n2n_denoise(tmp_path, n_in):
    net = small(n_in)
    save_checkpoint(tmp_path / "k.pt", net, kind="mc")
    loaded, state = load_checkpoint(tmp_path / "k.pt")
    assert type(loaded) is KernelPredictingNet and state["model"]["name"] == "kernel" and loaded.n_in == n_in
    x, colour = kernel_input(net)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    # n2n-denoise rebuilds the kernel net from the file and filters the EXR's colour
    rng = np.random.default_rng(0)
    colour = rng.gamma(2.0, 0.5, (24, 40, 3)).astype(np.float32)
    alb = rng.random((24, 40, 3), dtype=np.float32)
    nrm = np.dstack([np.zeros((24, 40, 2)), np.ones((24, 40))]).astype(np.float32)
    write_exr(tmp_path / "in.exr", {"": colour, "albedo": alb, "normal": nrm})
    denoise_cli.main(["--checkpoint", str(tmp_path / "k.pt"), "--input", str(tmp_path / "in.exr"),
                      "--out", str(tmp_path / "out.exr"), "--device", "cpu"])
    out = read_rgb(tmp_path / "out.exr")
    want = run_padded(net, features.network_input(net, *(torch.from_numpy(a) for a in (colour, alb, nrm))))
    np.testing.assert_allclose(out, want[0].permute(1, 2, 0).detach().numpy(), atol=1e-5)


class _Cfg:
    lr, iters_per_frame, crop, seed = 1e-3, 1, 32, 0


def test_trainer_loads_only_a_matching_model(tmp_path):
    save_checkpoint(tmp_path / "paper.pt", UNet(9, 3))
    save_checkpoint(tmp_path / "kernel.pt", small())
    tr = OnlineTrainer(small(), _Cfg())
    with pytest.raises(UserError, match="'paper'"):
        tr.load(tmp_path / "paper.pt")
    tr.load(tmp_path / "kernel.pt")  # applied at once: the thread is not running
    tr.reset()
    assert type(tr.net) is KernelPredictingNet


def test_old_checkpoints_without_a_model_record_are_the_paper_unet(tmp_path):
    save_checkpoint(tmp_path / "old.pt", UNet(9, 3))
    state = torch.load(tmp_path / "old.pt", weights_only=False)
    del state["model"]
    torch.save(state, tmp_path / "old.pt")
    net, _ = load_checkpoint(tmp_path / "old.pt")
    assert type(net) is UNet


def test_n2n_train_trains_and_resumes_a_kernel_model(tmp_path):
    from offline_experiments import batch_train
    from tests.test_batch_train import make_dataset

    data = make_dataset(tmp_path / "data", views=3)
    argv = ["--data", data, "--out", tmp_path / "run", "--model", "kernel", "--batch", "2", "--crop", "32",
            "--val-every", "2", "--ckpt-every", "2", "--log-every", "2", "--quiet", "--device", "cpu"]
    batch_train.main([str(a) for a in argv + ["--iters", "2"]])
    net, state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert type(net) is KernelPredictingNet and state["train_state"]["step"] == 2
    batch_train.main([str(a) for a in argv + ["--iters", "3"]])  # resumes the kernel net from its checkpoint
    net, state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert type(net) is KernelPredictingNet and state["train_state"]["step"] == 3


def test_the_kernel_net_filters_its_input_and_does_not_pass_it_through():
    # mutant caught: forward (or filter) returning the unfiltered linear colour
    net = small()
    x, colour = kernel_input(net)
    with torch.no_grad():
        y = net(x)
        by_hand = colour.permute(2, 0, 1)[None]
        for weights, d in zip(net.kernels(x), (1, 2, 4)):
            by_hand = apply_kernel(by_hand, weights, d)
    assert torch.allclose(y, by_hand, atol=1e-5)
    # the initial kernels blur: white noise comes out with far less variance than it went in (a copy keeps it all)
    ratio = float(y.std() / colour.std())
    assert ratio < 0.5, ratio


def _shift_kernels(net, tap):
    """Force every stage of `net` to the one-hot kernel at `tap` (an index into the K*K taps)."""
    kk = net.kernel_size ** 2
    with torch.no_grad():
        net.trunk.dec_conv1b.weight.zero_()
        net.trunk.dec_conv1b.bias.zero_()
        net.trunk.dec_conv1b.bias.view(len(net.dilations), kk)[:, tap] = 60.0


def test_a_trous_stages_reach_their_dilation():
    # mutant caught: every dilation 1 (in apply_kernel, in filter or in the net's dilations)
    g = torch.Generator().manual_seed(2)
    colour = torch.rand(1, 3, 16, 32, generator=g)
    right = torch.zeros(1, 25, 16, 32)
    right[:, 13] = 1.0  # row 2, column 3 of the 5x5 kernel: the tap one step to the right
    for d in (1, 2, 4):
        out = apply_kernel(colour, right, d)
        assert torch.equal(out[..., :-d], colour[..., d:]), d  # each pixel reads the one d pixels to its right
    # the whole net: three stages of one step right, dilations 1, 2, 4: the image moves 1 + 2 + 4 = 7 pixels
    net = small()
    _shift_kernels(net, 13)
    x, colour = kernel_input(net, 16, 32)
    with torch.no_grad():
        y = net(x)
    c = colour.permute(2, 0, 1)[None]
    assert torch.allclose(y[..., :-7], c[..., 7:], atol=1e-5)
    assert not torch.allclose(y[..., :-7], c[..., 3:-4], atol=1e-2)  # what dilations 1, 1, 1 would give


def test_a_checkpoint_keeps_the_kernel_nets_architecture(tmp_path):
    # mutant caught: a checkpoint (spec / from_spec / options) that drops the dilations or the kernel size;
    # same number of stages as the defaults, so the weights alone would load into a default net
    torch.manual_seed(3)
    net = KernelPredictingNet(9, kernel_size=3, dilations=(3, 1, 5), trunk="small", width=8)
    save_checkpoint(tmp_path / "k.pt", net)
    loaded, _ = load_checkpoint(tmp_path / "k.pt")
    assert (loaded.kernel_size, loaded.dilations, loaded.trunk_name, loaded.width) == (3, (3, 1, 5), "small", 8)
    assert models.spec(loaded) == models.spec(net)
    x, _ = kernel_input(net)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
