"""The shared core: the network of Table 2, the losses' minimisers, the tonemap and the training step."""
import math

import numpy as np
import pytest
import torch

from n2n_live.features import assemble
from n2n_live.losses import l0_annealed, l0_gamma, l1, l2, l_hdr, masked_l2
from n2n_live.models.unet import UNet, pad_to_multiple, parameter_count, run_padded, unpad
from n2n_live.tonemap import T, T_inverse
from n2n_live.train_step import TrainStep, WeightAverage, rampdown_lr

pytestmark = pytest.mark.numeric  # make test reruns these under ATEN_CPU_CAPABILITY=default

TABLE2_LAYERS = [f"enc_conv{i}" for i in range(7)] + [
    f"dec_conv{i}{s}" for i in (5, 4, 3, 2) for s in "ab"] + ["dec_conv1a", "dec_conv1b", "dec_conv1c"]


def test_unet_layers_shapes_and_parameter_count():
    net = UNet(9, 3)
    convs = [name for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == TABLE2_LAYERS
    assert net.enc_conv0.in_channels == 9 and net.dec_conv1c.out_channels == 3
    assert net.dec_conv1a.in_channels == 96 + 9  # concat1 joins the input itself
    assert all(getattr(net, f"enc_conv{i}").out_channels == 48 for i in range(7))
    assert (net.dec_conv1a.out_channels, net.dec_conv1b.out_channels) == (64, 32)
    assert 0.95e6 < parameter_count(net) < 1.05e6  # "about 1.0 M parameters"
    y = net(torch.zeros(2, 9, 64, 96))
    assert y.shape == (2, 3, 64, 96)
    assert UNet(1, 1)(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_padding_for_odd_sizes():
    x = torch.randn(1, 9, 37, 29)
    xp, size = pad_to_multiple(x)
    assert xp.shape[-2:] == (64, 32) and size == (37, 29)
    assert torch.equal(unpad(xp, size), x)
    assert run_padded(UNet(9, 3), x).shape == (1, 3, 37, 29)


def test_tonemap_range_monotone_and_inverse():
    v = torch.tensor([0.0, 0.1, 1.0, 10.0, 1e4])
    t = T(v)
    assert t[0] == 0 and torch.all(t[1:] > t[:-1]) and torch.all(t < 1)
    assert T(torch.tensor(1.0)).item() == pytest.approx(0.5 ** (1 / 2.2))
    assert torch.allclose(T_inverse(t[:4]), v[:4], rtol=1e-4, atol=1e-6)
    assert T(torch.tensor(-3.0)).item() == 0.0  # negative radiance maps to black
    assert np.allclose(T(np.array([1.0])), 0.5 ** (1 / 2.2))
    assert T(torch.tensor(1.0), exposure=2.0).item() == pytest.approx(T(torch.tensor(2.0)).item())


def _fit_constant(loss, y, start, steps=1500, lr=0.01, gamma_schedule=False):
    """Minimise loss(c, y) over a constant prediction c, starting at `start` (away from every answer: a loss
    whose gradient is zero or points the wrong way must end far from it). The learning rate ramps down to 0 over
    the last 30 % of the steps, as the paper's schedule does: without it the last Adam iterate of the annealed L0
    loss (gamma near 0, gradients huge near every sample) swings with the CPU's summation order."""
    c = torch.nn.Parameter(torch.tensor(float(start)))
    opt = torch.optim.Adam([c], lr=lr)
    for i in range(steps):
        opt.param_groups[0]["lr"] = lr * min(1.0, (steps - i) / (0.3 * steps))
        opt.zero_grad()
        pred = c.expand_as(y)
        value = loss(pred, y, max(l0_gamma(i / steps), 0.05)) if gamma_schedule else loss(pred, y)
        value.backward()
        opt.step()
    return c.item()


def _slope(loss, y, c: float) -> float:
    """d loss(c, y) / dc for a constant prediction c."""
    p = torch.tensor(float(c), requires_grad=True)
    loss(p.expand_as(y), y).backward()
    return p.grad.item()


@pytest.fixture
def skewed_targets():
    """40 % of the samples at 0.7 (the mode), the rest uniform: mean, median and mode all differ."""
    g = torch.Generator().manual_seed(0)
    y = torch.rand(20000, generator=g)
    k = torch.rand(20000, generator=g) < 0.4
    y[k] = 0.7 + 0.01 * torch.randn(int(k.sum()), generator=g)
    return y.view(1, 1, 1, -1)


@pytest.fixture
def hdr_targets():
    """Heavy-tailed HDR noise (Monte Carlo fireflies): mean 2, median ~0.48."""
    g = torch.Generator().manual_seed(1)
    y = torch.empty(20000).exponential_(1.0, generator=g) ** 2
    return y.view(1, 1, 1, -1).expand(1, 3, 1, -1).contiguous()


@pytest.mark.parametrize("loss,targets", [(l2, "skewed_targets"), (l_hdr, "hdr_targets")])
def test_gradient_points_to_the_mean(loss, targets, request):
    """Milliseconds: just below the mean the loss falls as the prediction rises, just above it rises."""
    y = request.getfixturevalue(targets)
    m = y.mean().item()
    assert _slope(loss, y, 0.99 * m) < 0 < _slope(loss, y, 1.01 * m)


def test_l2_minimiser_is_the_mean(skewed_targets):
    fit = _fit_constant(l2, skewed_targets, start=0.0, steps=600)
    assert fit == pytest.approx(skewed_targets.mean().item(), abs=5e-3)


def test_l1_minimiser_is_the_median(skewed_targets):
    fit = _fit_constant(l1, skewed_targets, start=0.0, steps=800, lr=0.003)
    assert fit == pytest.approx(skewed_targets.median().item(), abs=5e-3)


def test_annealed_l0_minimiser_is_the_mode(skewed_targets):
    mode = _fit_constant(l0_annealed, skewed_targets, start=1.0, steps=2000, gamma_schedule=True)
    assert mode == pytest.approx(0.7, abs=0.02)  # 0.695-0.706 with the default, AVX2 and AVX-512 kernels
    assert abs(mode - skewed_targets.mean().item()) > 0.1  # clearly not the mean


def test_l0_gamma_schedule():
    assert l0_gamma(0.0) == 2.0 and l0_gamma(0.5) == 1.0 and l0_gamma(1.0) == 0.0
    assert l0_gamma(-1) == 2.0 and l0_gamma(2) == 0.0


def test_l_hdr_with_noisy_targets_converges_to_the_mean(hdr_targets):
    """L_HDR finds the mean of heavy-tailed targets, not the median, from far above it. (From far below, Adam's
    second moment remembers the huge gradients near 0, where (f + 0.01)^2 is tiny, and the fit crawls.)"""
    fit = _fit_constant(l_hdr, hdr_targets, start=8.0, steps=1500, lr=0.01)
    assert fit == pytest.approx(hdr_targets.mean().item(), rel=0.05)


def test_l_hdr_gradient_of_the_denominator_is_stopped():
    pred = torch.tensor([[[[2.0]]]], requires_grad=True).expand(1, 3, 1, 1)
    y = torch.full((1, 3, 1, 1), 1.0)
    l_hdr(pred, y).backward()
    leaf = pred._base if pred._base is not None else pred
    # d/df (f - y)^2 / sg(f + 0.01)^2 = 2 (f - y) / (f + 0.01)^2, summed over 3 channels / 3 (the mean)
    assert leaf.grad.item() == pytest.approx(2 * (2 - 1) / 2.01**2, rel=1e-5)


def test_l_hdr_is_finite_and_bounded_at_initialisation():
    """A fresh network outputs values near or below zero; the clamped denominator keeps the loss sane."""
    torch.manual_seed(0)
    net = UNet(9, 3)
    x = torch.rand(1, 9, 32, 32) - 0.5
    y = torch.rand(1, 3, 32, 32)
    loss = l_hdr(net(x), y)
    assert math.isfinite(loss.item()) and loss.item() < 1e5
    step = TrainStep(net, l_hdr)
    losses = [step.step(x, y) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]  # moving towards the target, not off to a degenerate solution


def test_masked_l2_ignores_invalid_pixels():
    pred = torch.zeros(1, 3, 2, 2)
    target = torch.ones(1, 3, 2, 2)
    target[..., 0, 0] = 100.0
    mask = torch.ones(1, 1, 2, 2)
    mask[..., 0, 0] = 0
    assert masked_l2(pred, target, mask).item() == pytest.approx(1.0)


def test_train_step_skips_non_finite_and_weights_stay_finite():
    torch.manual_seed(0)
    net = UNet(9, 3)
    step = TrainStep(net, l_hdr)
    x = torch.rand(2, 9, 32, 32) - 0.5
    y = torch.rand(2, 3, 32, 32)
    assert step.step(x, y) is not None
    for poison in (float("nan"), float("inf")):
        xb, yb = x.clone(), y.clone()
        yb[0, 0, 3, 3] = poison
        assert step.step(xb, yb) is None
    assert step.steps == 1 and step.skipped == 2
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_spike_clip_keeps_one_firefly_target_from_stalling_adam():
    """One target pixel at 1e4 (a firefly in an 8-spp frame): unclipped, its gradient fills Adam's second moment
    and the next 20 ordinary steps move the weight ~4x less than without the spike; clipped, they move it as far."""

    def progress(spike_clip, spike=True):
        net = torch.nn.Conv2d(1, 1, 1, bias=False)
        torch.nn.init.zeros_(net.weight)
        step = TrainStep(net, l2, lr=1e-2, spike_clip=spike_clip)
        x = torch.linspace(0.5, 1.5, 64).view(1, 1, 8, 8)
        for _ in range(5):
            step.step(x, x)  # learning the identity: the weight walks towards 1
        y = x.clone()
        if spike:
            y[..., 3, 3] = 1e4
        step.step(x, y)
        w = net.weight.item()
        for _ in range(20):
            step.step(x, x)
        return net.weight.item() - w, step

    undisturbed, _ = progress(2.0, spike=False)
    clipped, step = progress(2.0)
    unclipped, _ = progress(None)
    assert step.clipped == 1 and clipped > 0.8 * undisturbed and unclipped < 0.5 * undisturbed
    fresh = TrainStep(torch.nn.Conv2d(1, 1, 1, bias=False), l2, spike_clip=2.0)
    fresh.load_state_dict(step.state_dict())  # a resumed run keeps the running mean it compares with
    assert fresh.grad_mean == step.grad_mean and fresh.clipped == 1


def test_adam_uses_the_papers_settings_and_rampdown():
    step = TrainStep(UNet(3, 3), l2, lr=1e-3)
    group = step.opt.param_groups[0]
    assert group["betas"] == (0.9, 0.99) and group["eps"] == 1e-8 and group["lr"] == 1e-3
    assert rampdown_lr(0, 100, 1.0) == 1.0 and rampdown_lr(89, 100, 1.0) == 1.0
    lrs = [rampdown_lr(s, 100, 1.0) for s in range(90, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_assemble_encodes_nine_channels_in_range():
    colour = torch.rand(8, 8, 3) * 10
    colour[0, 0, 0] = float("nan")
    colour[0, 1, 1] = float("inf")
    albedo = torch.rand(8, 8, 3)
    normal = torch.nn.functional.normalize(torch.randn(8, 8, 3), dim=-1)
    x = assemble(colour, albedo, normal)
    assert x.shape == (1, 9, 8, 8) and torch.isfinite(x).all()
    assert x.min() >= -0.5 and x.max() <= 0.5


def test_the_weight_average_ramps_its_decay_up_from_zero():
    net = torch.nn.Linear(1, 1, bias=False)
    avg = WeightAverage(0.9, ramp=4)
    seen = []
    for w in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0):
        net.weight.data.fill_(w)
        seen.append(float(avg.update(net)["weight"]))
    # decays 0 (a fresh start), then 1/4, 2/4, 3/4, then 0.9 for good
    expect = [1.0]
    for w, decay in zip((2.0, 3.0, 4.0, 5.0, 6.0, 7.0), (0.25, 0.5, 0.75, 0.9, 0.9, 0.9)):
        expect.append(decay * expect[-1] + (1 - decay) * w)
    assert seen == pytest.approx(expect)
    avg.restart()
    assert float(avg.update(net)["weight"]) == 7.0
