"""A kernel-predicting denoiser: the network predicts per-pixel filter weights, not colours.

Bako et al. 2017 (KPCN), Isik et al. 2021 (dilated kernels), Choi et al. 2024 (trained online, from runtime frames
only). A trunk (the Table 2 U-Net, or a smaller U-Net) reads the usual features and emits S*K*K logits per pixel;
each group of K*K is softmax-normalised into a KxK kernel, and the S kernels are applied one after the other,
a-trous (dilations 1, 2, 4: a 29-pixel support with K = 5), to the *linear* noisy colour of the same image.
The output is therefore always a convex combination of the pixel's noisy neighbours: it cannot invent radiance,
is a plausible (blurred) image from the first frame on and stays in the input's units; L_HDR(filter(A), B) trains it exactly like the direct
U-Net (Noise2Noise: the filter only ever sees A, the target is B).

Input convention (features.network_input): the trunk's `n_in` feature channels followed by 3 channels of linear
colour (+ 3 of this frame's raw colour with `blend`, + 3 of the emission the camera sees directly with `emission`),
so the one seam (pad -> network -> unpad), the random crops and the tiled denoiser stay unchanged.
With `emission`, that emission is filtered apart from the light surfaces reflect: demodulation divides colour by the
albedo, and a light's black albedo made its radiance 50x larger there, so the kernels smeared it into the ceiling;
only the first EMISSION_STAGES stages filter it, enough for its edge's coverage noise.
With `despeckle` as well, the reflected light's fireflies are cut before filtering when the network denoises (eval
mode), never while it trains: the kernels would spread each into a blob, and L_HDR, relative to the output, charges a
kept firefly no more than any other pixel's error (a 3x3 median bound, `despeckle`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .unet import UNet, _conv

ALPHA = 0.1
DEMODULATE_EPS = 0.02  # keeps black albedo (sky, emitters) finite: there colour passes at 1/0.02 scale
BLEND_INIT = 2.0  # logit of the history's initial blend weight (0.88): trust the history until taught otherwise
# despeckle: a pixel of reflected light brighter than RATIO x its 3x3 median + FLOOR is cut to that (docs/design-notes.md)
DESPECKLE_RATIO, DESPECKLE_FLOOR = 3.0, 0.05
# A light seen straight on is exact but for its edge pixels' coverage, which the first two a-trous stages (6 pixels'
# reach at K = 5) smooth; trained through all three, the kernels leaked more into black pixels (docs/design-notes.md)
EMISSION_STAGES = 2


class SmallUNet(nn.Module):
    """A lighter trunk: three pooling levels, 32-64 features (about 1/6 of Table 2's multiply-adds at full size).

    Same building blocks as Table 2 (3x3 convs, leaky ReLU 0.1, max-pool, nearest upsampling, skips, He init).
    """

    def __init__(self, n_in: int, m_out: int, width: int = 32):
        super().__init__()
        w1, w2, w3 = width, int(width * 1.5), width * 2
        self.enc_conv0 = _conv(n_in, w1)
        self.enc_conv1 = _conv(w1, w1)
        self.enc_conv2 = _conv(w1, w2)
        self.enc_conv3 = _conv(w2, w3)
        self.dec_conv3 = _conv(w3 + w2, w2)
        self.dec_conv2 = _conv(w2 + w1, w1)
        self.dec_conv1a = _conv(w1 + n_in, w1)
        self.dec_conv1b = _conv(w1, m_out, activation=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = lambda t: F.leaky_relu(t, ALPHA)  # noqa: E731
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731
        x0 = x
        x1 = F.max_pool2d(act(self.enc_conv1(act(self.enc_conv0(x)))), 2)  # 1/2
        x2 = F.max_pool2d(act(self.enc_conv2(x1)), 2)  # 1/4
        x3 = F.max_pool2d(act(self.enc_conv3(x2)), 2)  # 1/8
        y = act(self.dec_conv3(torch.cat([up(x3), x2], 1)))
        y = act(self.dec_conv2(torch.cat([up(y), x1], 1)))
        y = act(self.dec_conv1a(torch.cat([up(y), x0], 1)))
        return self.dec_conv1b(y)


TRUNKS = {"unet": UNet, "small": SmallUNet}


# Compare-exchange pairs whose 19 steps leave the median of 9 values at index 4 (Paeth's network, as in Devillard's
# "Fast median search"): elementwise min/max of 9 shifted images, ~40x faster on a CPU than sorting an unfolded stack.
MEDIAN9 = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8), (4, 7), (3, 6),
           (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))


def median3x3(image: torch.Tensor) -> torch.Tensor:
    """The per-pixel median of NCHW `image` over each 3x3 neighbourhood (border replicated)."""
    h, w = image.shape[-2:]
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    v = [padded[..., i:i + h, j:j + w] for i in range(3) for j in range(3)]
    for a, b in MEDIAN9:
        v[a], v[b] = torch.minimum(v[a], v[b]), torch.maximum(v[a], v[b])
    return v[4]


def despeckle(colour: torch.Tensor, ratio: float = DESPECKLE_RATIO, floor: float = DESPECKLE_FLOOR) -> torch.Tensor:
    """NCHW `colour` with every pixel whose mean over channels exceeds `ratio` x its 3x3 neighbourhood's median + `floor`
    scaled down to that bound (hue kept): a firefly the kernels would otherwise spread into a blob. Biased (the
    outlier's energy is dropped), so it serves the displayed image only, never training; a bright line one or two
    pixels wide (under 5 of a 3x3) counts as speckle too."""
    lum = colour.mean(dim=1, keepdim=True)
    bound = ratio * median3x3(lum) + floor
    return colour * torch.where(lum > bound, bound / lum.clamp(min=1e-12), torch.ones_like(lum))


def apply_kernel(colour: torch.Tensor, weights: torch.Tensor, dilation: int) -> torch.Tensor:
    """Filter NCHW `colour` with per-pixel KxK `weights` (N, K*K, H, W, normalised by the caller), taps
    `dilation` pixels apart. The border is replicated, so a normalised kernel keeps its normalisation there."""
    n, c, h, w = colour.shape
    kk = weights.shape[1]
    k = int(round(kk ** 0.5))
    r = dilation * (k // 2)
    padded = F.pad(colour, (r, r, r, r), mode="replicate")
    taps = F.unfold(padded, k, dilation=dilation).view(n, c, kk, h, w)
    return torch.einsum("nckhw,nkhw->nchw", taps, weights)


class KernelPredictingNet(nn.Module):
    """`KernelPredictingNet(n_in=9, kernel_size=5, dilations=(1, 2, 4), trunk="small")`: see the module docstring.

    trunk "small" (SmallUNet, ~160k parameters) by default: as good as the Table 2 trunk here at a third of its CPU
    time (docs/design-notes.md).

    forward(x): x is (N, n_in + 3, H, W): features, then linear colour; returns (N, 3, H, W) linear radiance.
    `kernels(x)` returns the normalised kernels, for tests and inspection.
    """

    linear_channels = 3  # channels of linear colour appended to the features

    def __init__(self, n_in: int = 9, kernel_size: int = 5, dilations=(1, 2, 4), trunk: str = "small",
                 width: int = 32, blend: bool = False, demodulate: bool = False, emission: bool = False,
                 despeckle: bool = False):
        super().__init__()
        if trunk not in TRUNKS:
            raise ValueError(f"unknown trunk {trunk!r} (choose from {', '.join(TRUNKS)})")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.n_in, self.m_out = int(n_in), 3
        self.kernel_size = int(kernel_size)
        self.dilations = tuple(int(d) for d in dilations)
        self.trunk_name = trunk
        kk = self.kernel_size ** 2
        self.blend = bool(blend)
        self.demodulate = bool(demodulate)
        self.emission = bool(emission)
        self.despeckle = bool(despeckle)
        self.colour_channels = 6 if self.blend else 3
        self.linear_channels = self.colour_channels + 3 * int(self.emission)  # + the directly seen emission
        m = kk * len(self.dilations) + int(self.blend)
        self.trunk = UNet(self.n_in, m) if trunk == "unet" else SmallUNet(self.n_in, m, width)
        self.width = int(width)
        # Start every kernel with a favoured centre (logit +2: weight 0.24 of 25 taps at K = 5) and nearly equal
        # other taps: a moderate blur rather than the arbitrary kernels of a randomly initialised last layer.
        last = self.trunk.dec_conv1c if trunk == "unet" else self.trunk.dec_conv1b
        with torch.no_grad():
            last.weight.mul_(0.1)
            last.bias[:kk * len(self.dilations)].view(len(self.dilations), kk)[:, kk // 2] = 2.0
            if self.blend:
                last.bias[-1] = BLEND_INIT

    @property
    def options(self) -> dict:
        return {"kernel_size": self.kernel_size, "dilations": list(self.dilations), "trunk": self.trunk_name,
                "width": self.width, "blend": self.blend, "demodulate": self.demodulate, "emission": self.emission,
                "despeckle": self.despeckle}

    def kernels(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._predict(x)[0]

    def _predict(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """(normalised kernels, blend weight of the history (N, 1, H, W) or None)."""
        logits = self.trunk(x[:, : self.n_in])
        kk = self.kernel_size ** 2
        kernels = [torch.softmax(logits[:, i * kk:(i + 1) * kk].float(), dim=1) for i in range(len(self.dilations))]
        return kernels, torch.sigmoid(logits[:, -1:].float()) if self.blend else None

    def filter(self, colour: torch.Tensor, kernels: list[torch.Tensor]) -> torch.Tensor:
        """`colour` through the given kernels, stage after stage (fewer kernels than dilations: the first stages)."""
        for weights, d in zip(kernels, self.dilations):
            colour = apply_kernel(colour, weights, d)
        return colour

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernels, w = self._predict(x)
        colour = x[:, self.n_in:self.n_in + 3].float()
        if w is not None:  # the history, then this frame's raw colour of the same stream
            colour = w * colour + (1 - w) * x[:, self.n_in + 3:self.n_in + 6].float()
        # Filter irradiance, not texture: divide by the albedo (features channels 3-5, shifted by -0.5), remodulate.
        albedo = (x[:, 3:6].float() + 0.5).clamp(0.0, 1.0) + DEMODULATE_EPS if self.demodulate else 1.0
        if not self.emission:
            return self.filter(colour / albedo, kernels) * albedo
        # A light's own radiance is filtered apart, never divided by its black albedo.
        c = self.n_in + self.colour_channels
        emitted = x[:, c:c + 3].float()
        reflected = (colour - emitted).clamp(min=0.0) / albedo
        if self.despeckle and not self.training:  # only with the lights apart: a light's edge is no firefly
            reflected = despeckle(reflected)
        reflected = self.filter(reflected, kernels) * albedo
        return reflected + self.filter_sparse(emitted, kernels[:EMISSION_STAGES])

    def filter_sparse(self, colour: torch.Tensor, kernels: list[torch.Tensor]) -> torch.Tensor:
        """`filter` for an image that is 0 but in a small region (a light seen straight on): the same result, computed
        on the region's bounding box grown by the given stages' reach (the kernels cannot carry it further, and the
        replicated border stays 0), which is most of the frame's cost saved."""
        lit = colour.detach().amax(dim=(0, 1)) > 0
        if not bool(lit.any()):
            return torch.zeros_like(colour)
        reach = sum(d * (self.kernel_size // 2) for d in self.dilations[:len(kernels)])
        (y0, y1), (x0, x1) = ((int(i[0]), int(i[-1])) for i in (lit.any(1).nonzero()[:, 0], lit.any(0).nonzero()[:, 0]))
        ys = slice(max(0, y0 - reach), min(colour.shape[2], y1 + 1 + reach))
        xs = slice(max(0, x0 - reach), min(colour.shape[3], x1 + 1 + reach))
        out = torch.zeros_like(colour)
        out[..., ys, xs] = self.filter(colour[..., ys, xs], [k[..., ys, xs] for k in kernels])
        return out
