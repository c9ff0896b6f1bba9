"""What the temporal kernel network reads and learns from (models/kernel.py blend and demodulate,
features.network_input with the raw frame, batch.frame_tensors with raw targets)."""
import pytest
import torch

from n2n_live import features
from n2n_live.live.batch import frame_tensors
from n2n_live.models import kernel
from n2n_live.models.kernel import KernelPredictingNet, despeckle, median3x3

pytestmark = pytest.mark.numeric

H, W = 16, 24


def images(seed=0):
    g = torch.Generator().manual_seed(seed)
    hist, raw = torch.rand(H, W, 3, generator=g) * 2, torch.rand(H, W, 3, generator=g) * 2
    albedo, normal = torch.rand(H, W, 3, generator=g), torch.rand(H, W, 3, generator=g) * 2 - 1
    return hist, raw, albedo, normal


def blend_net(**kw):
    torch.manual_seed(0)
    return KernelPredictingNet(features.N_TEMPORAL_RAW, trunk="small", width=8, blend=True, **kw)


def test_the_blend_network_reads_this_frames_raw_colour_beside_the_history():
    hist, raw, albedo, normal = images()
    net = blend_net()
    x = features.network_input(net, hist, albedo, normal, history=torch.full((H, W, 1), 3.0), raw=raw)
    assert x.shape == (1, 13 + 6, H, W)
    assert torch.allclose(x[0, 13:16], hist.permute(2, 0, 1)) and torch.allclose(x[0, 16:19], raw.permute(2, 0, 1))
    assert torch.allclose(x[0, 10:13] + 0.5, features.T(raw).permute(2, 0, 1))
    one = features.network_input(net, hist, albedo, normal)  # a single image: its own raw frame, one frame
    assert torch.equal(one[0, 13:16], one[0, 16:19]) and float(one[0, 9].mean()) == 0.5


@pytest.mark.parametrize("logit, source", [(30.0, "history"), (-30.0, "raw")])
def test_the_blend_weight_picks_between_history_and_raw(logit, source):
    hist, raw, albedo, normal = images()
    net = blend_net()
    with torch.no_grad():
        net.trunk.dec_conv1b.bias[-1] = logit
        net.trunk.dec_conv1b.weight[-1].zero_()
    x = features.network_input(net, hist, albedo, normal, history=torch.full((H, W, 1), 2.0), raw=raw)
    picked = (hist if source == "history" else raw).permute(2, 0, 1)[None]
    with torch.no_grad():
        assert torch.allclose(net(x), net.filter(picked, net.kernels(x)), atol=1e-5)


def test_the_blend_weight_learns_from_the_loss():
    hist, raw, albedo, normal = images()
    net = blend_net()
    x = features.network_input(net, hist, albedo, normal, history=torch.full((H, W, 1), 2.0), raw=raw)
    net(x).sum().backward()
    assert float(net.trunk.dec_conv1b.weight.grad[-1].abs().sum()) > 0


def test_raw_targets_are_the_other_streams_own_frame():
    hist_a, raw_a, albedo, normal = images(0)
    hist_b, raw_b, _, _ = images(1)
    net = blend_net()
    history = torch.full((H, W, 1), 2.0)
    _, t_hist = frame_tensors(net, hist_a, hist_b, albedo, normal, history=history, raw=(raw_a, raw_b))
    inputs, t_raw = frame_tensors(net, hist_a, hist_b, albedo, normal, history=history, raw=(raw_a, raw_b),
                                  temporal_target="raw")
    assert torch.equal(t_hist[0], hist_b.permute(2, 0, 1)) and torch.equal(t_hist[1], hist_a.permute(2, 0, 1))
    assert torch.equal(t_raw[0], raw_b.permute(2, 0, 1)) and torch.equal(t_raw[1], raw_a.permute(2, 0, 1))
    assert torch.equal(inputs[0, 16:19], raw_a.permute(2, 0, 1))  # each input reads its own stream's frame


def test_demodulation_keeps_texture_that_a_blurring_filter_would_lose():
    # constant irradiance times a checkerboard albedo: filtering irradiance and remodulating keeps the checkerboard
    # (up to the small offset that keeps black albedo finite)
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    albedo = (0.2 + 0.6 * ((yy + xx) % 2).float())[..., None].expand(H, W, 3).contiguous()
    colour = 0.7 * albedo
    normal = torch.zeros(H, W, 3)
    normal[..., 2] = 1.0
    err = {}
    for demodulate in (True, False):
        torch.manual_seed(0)
        net = KernelPredictingNet(features.N_FEATURES, trunk="small", width=8, demodulate=demodulate)
        with torch.no_grad():
            out = net(features.network_input(net, colour, albedo, normal))[0].permute(1, 2, 0)
        err[demodulate] = float((out - colour).abs().mean())
    assert err[True] < 0.1 * err[False] and err[False] > 0.1, err


def test_a_lights_radiance_is_filtered_undivided_by_its_black_albedo():
    # a bright emitter with a black albedo on a dimly lit surface: demodulation must not make it 50x brighter in the
    # filter; with emission apart, the light is blurred like any plain filter would and the surface keeps its own
    emission = torch.zeros(H, W, 3)
    emission[6:9, 10:14] = 20.0
    albedo = torch.full((H, W, 3), 0.5)
    albedo[6:9, 10:14] = 0.0
    colour = 0.2 * albedo + emission  # the surface reflects 0.1, the black light nothing
    normal = torch.zeros(H, W, 3)
    normal[..., 2] = 1.0
    leak = {}
    for separate in (True, False):
        torch.manual_seed(0)
        net = KernelPredictingNet(features.N_FEATURES, trunk="small", width=8, demodulate=True, emission=separate)
        x = features.network_input(net, colour, albedo, normal, emission=emission)
        assert x.shape[1] == 9 + 3 + 3 * separate
        with torch.no_grad():
            out = net(x)[0].permute(1, 2, 0)
            light = net.kernels(x)[:kernel.EMISSION_STAGES] if separate else net.kernels(x)
            blurred = net.filter(emission.permute(2, 0, 1)[None], light)[0].permute(1, 2, 0)
        if separate:  # exactly: the reflected light, filtered in albedo units, plus the light's plain blur
            reflected = (0.2 * albedo / (albedo + 0.02)).permute(2, 0, 1)[None]
            reflected = net.filter(reflected, net.kernels(x))[0].permute(1, 2, 0) * (albedo + 0.02)
            assert torch.allclose(out, reflected + blurred, atol=1e-4)
        leak[separate] = float((out - 0.1 - blurred)[0:4].max())  # rows above the light: more than a plain blur
    assert leak[True] < 1e-4 and leak[False] > 1.0  # the mutant: the light divided by 0.02 floods the surface


def test_a_lights_radiance_reaches_no_further_than_the_first_two_stages():
    # one light pixel: its edge's coverage noise is smoothed within 2 + 4 pixels, never carried 14 into the black
    torch.manual_seed(2)
    net = KernelPredictingNet(features.N_FEATURES, trunk="small", width=8, demodulate=True, emission=True).eval()
    albedo, normal = torch.full((H, W, 3), 0.5), torch.zeros(H, W, 3)
    normal[..., 2] = 1.0
    emission = torch.zeros(H, W, 3)
    emission[8, 16] = 20.0
    with torch.no_grad():
        out = net(features.network_input(net, emission, albedo, normal, emission=emission))[0].amax(0)
    reach = 2 * (1 + 2)
    assert float(out[8, 16]) > 1.0 and float(out[8, 16 + reach]) > 0.0
    lit = out > 0
    lit[8 - reach:8 + reach + 1, 16 - reach:16 + reach + 1] = False
    assert not bool(lit.any())  # the mutant, all three stages: lit up to 14 pixels away


def test_a_small_lights_filter_on_its_bounding_box_equals_the_whole_frames():
    torch.manual_seed(1)
    net = KernelPredictingNet(features.N_FEATURES, trunk="small", width=8, demodulate=True, emission=True)
    kernels = net.kernels(torch.rand(2, 12, 48, 40))
    for region in ((slice(20, 23), slice(5, 9)), (slice(0, 2), slice(30, 40)), (slice(0, 48), slice(0, 40))):
        light = torch.zeros(2, 3, 48, 40)
        light[0, :, region[0], region[1]] = 7.0 * torch.rand(3, 1, 1)
        for stages in (kernels, kernels[:kernel.EMISSION_STAGES]):
            assert torch.allclose(net.filter_sparse(light, stages), net.filter(light, stages), atol=1e-6)
    assert torch.equal(net.filter_sparse(torch.zeros(2, 3, 48, 40), kernels), torch.zeros(2, 3, 48, 40))


def test_a_firefly_is_cut_before_filtering_when_denoising_but_a_light_and_training_keep_theirs():
    # a flat surface (0.1 reflected) with one 1000x firefly in its reflected light and a light of 20 seen straight on
    albedo, normal = torch.full((H, W, 3), 0.5), torch.zeros(H, W, 3)
    normal[..., 2] = 1.0
    emission = torch.zeros(H, W, 3)
    emission[2:4, 2:4] = 20.0
    colour = torch.full((H, W, 3), 0.1) + emission
    colour[10, 16] = 100.0
    def denoise(image, despeckle, train=False):
        torch.manual_seed(0)
        net = KernelPredictingNet(features.N_FEATURES, trunk="small", width=8, demodulate=True, emission=True,
                                  despeckle=despeckle).train(train)
        with torch.no_grad():
            return net(features.network_input(net, image, albedo, normal, emission=emission))[0]

    out = {(d, t): denoise(colour, d, t) for d, t in ((True, False), (False, False), (True, True))}
    # the firefly's pixel and its neighbours stay at the surface's level, within the bound 3 x 0.1 + 0.05 x albedo
    assert float(out[True, False][:, 8:13, 14:19].max()) <= 0.1 * 3 + 0.05 * 0.52 + 1e-4
    for kept in (out[False, False], out[True, True]):  # off, and while training: the firefly is filtered, not cut
        assert float(kept[:, 10, 16].min()) > 1.0
    # the light is not a firefly: with emission apart, a frame without the firefly comes out unchanged
    clean = colour.clone()
    clean[10, 16] = 0.1
    assert torch.equal(denoise(clean, True), denoise(clean, False))


def test_despeckle_cuts_isolated_outliers_only():
    img = torch.full((1, 3, 9, 9), 0.2)
    img[0, :, 4, 4] = torch.tensor([6.0, 3.0, 3.0])  # a reddish firefly: cut to 3 x 0.2 + 0.05, hue kept
    img[0, :, 6:9, :] = 5.0  # a bright band 3 pixels wide: a feature, not a speckle (most of every 3x3 sees it)
    out = despeckle(img)
    assert torch.allclose(out[0, :, 4, 4].mean(), torch.tensor(0.65)) and out[0, 0, 4, 4] == 2 * out[0, 1, 4, 4]
    keep = torch.ones(9, 9, dtype=torch.bool)
    keep[4, 4] = False
    assert torch.equal(out[0][:, keep], img[0][:, keep])


def test_median3x3_is_the_median_of_each_neighbourhood():
    g = torch.Generator().manual_seed(3)
    for shape in ((2, 1, 17, 23), (1, 3, 5, 4), (1, 1, 1, 1)):
        x = torch.rand(shape, generator=g)
        x[x < 0.3] = 0.5  # ties
        n, c, h, w = x.shape
        stack = torch.nn.functional.unfold(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3)
        assert torch.equal(median3x3(x), stack.view(n, c, 9, h, w).median(dim=2).values)
