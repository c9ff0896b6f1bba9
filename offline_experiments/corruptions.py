"""The synthetic corruptions of Sections 3.1 and 3.2.

Every corruption takes a clean NCHW batch `x` in [0, 1], a per-example corruption level (a float or a tensor of
shape (N,)) in the paper's units, and a seeded `torch.Generator`; it returns the corrupted batch (Bernoulli also
returns the mask of valid pixels). Calling a corruption twice on the same clean batch gives two independent
realisations: an input and a noisy target (Noise2Noise, Eq. 6).

Levels, in the paper's units:
- gaussian, brown_gaussian: standard deviation sigma in 8-bit units (train [0, 50], test 25);
- poisson: lambda, the expected photon count at intensity 1 (train [0, 50], test 30);
- bernoulli: p, the probability that a pixel is missing (train [0, 0.95], test 0.5);
- text: p, the fraction of pixels covered by text (train [0, 0.5], test 0.25);
- impulse: p, the probability that a pixel is replaced by a random colour (train [0, 0.95], test 0.7).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F


def _levels(level, n: int, device) -> torch.Tensor:
    """A per-example level as an (N, 1, 1, 1) tensor (broadcasts over channels and pixels)."""
    t = torch.as_tensor(level, dtype=torch.float32, device=device)
    return t.reshape(-1, 1, 1, 1).expand(n, 1, 1, 1) if t.numel() == 1 else t.reshape(n, 1, 1, 1)


def _rand(shape, gen: torch.Generator, device) -> torch.Tensor:
    # Random numbers come from the (CPU) generator, so a seed gives the same corruption on any device.
    return torch.rand(shape, generator=gen).to(device)


def _randn(shape, gen: torch.Generator, device) -> torch.Tensor:
    return torch.randn(shape, generator=gen).to(device)


def sample_levels(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    """One level per training example, uniform in [lo, hi]: the network has to be blind to the level."""
    return lo + (hi - lo) * torch.rand(n, generator=gen)


# ---------------------------------------------------------------------------------------------------------
# Section 3.1: additive Gaussian noise, white and brown.

def gaussian(x: torch.Tensor, sigma, gen: torch.Generator) -> torch.Tensor:
    """Additive white Gaussian noise of standard deviation sigma/255; zero mean, so L2 recovers the image."""
    s = _levels(sigma, x.shape[0], x.device) / 255.0
    return x + _randn(x.shape, gen, x.device) * s


def gaussian_kernel1d(bandwidth: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of standard deviation `bandwidth` pixels, truncated at 3 standard deviations."""
    radius = max(1, int(math.ceil(3.0 * bandwidth)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / bandwidth) ** 2)
    return k / k.sum()


def brown_noise(shape, bandwidth: float, gen: torch.Generator, device) -> torch.Tensor:
    """Spatially correlated ("brown") unit-variance noise: white noise blurred by a Gaussian of `bandwidth`.

    The noise is drawn on a larger canvas and blurred with a "valid" convolution so that the borders are as
    correlated as the interior; dividing by sqrt(sum k^2) restores a per-pixel standard deviation of one.
    """
    n, c, h, w = shape
    if bandwidth <= 0:
        return _randn(shape, gen, device)
    k = gaussian_kernel1d(bandwidth).to(device)
    r = (k.numel() - 1) // 2
    white = _randn((n * c, 1, h + 2 * r, w + 2 * r), gen, device)
    blurred = F.conv2d(F.conv2d(white, k.view(1, 1, -1, 1)), k.view(1, 1, 1, -1))
    # The 2-D kernel is k (x) k, so the sum of its squared weights is (sum k^2)^2.
    return (blurred / k.pow(2).sum()).view(n, c, h, w)


def brown_gaussian(x: torch.Tensor, sigma, gen: torch.Generator, bandwidth: float = 2.0) -> torch.Tensor:
    """Additive brown Gaussian noise (Figure 1b): correlated between pixels, rescaled to sigma/255 per pixel."""
    s = _levels(sigma, x.shape[0], x.device) / 255.0
    return x + brown_noise(x.shape, bandwidth, gen, x.device) * s


# ---------------------------------------------------------------------------------------------------------
# Section 3.2: Poisson, Bernoulli, text, random-valued impulse.

LAMBDA_MIN = 1e-3  # the reference implementation's lower bound: lambda = 0 would divide by zero


def poisson(x: torch.Tensor, lam, gen: torch.Generator) -> torch.Tensor:
    """Photon noise: y = Poisson(lambda * x) / lambda. Zero mean (E y = x) but signal dependent."""
    lam = torch.clamp(_levels(lam, x.shape[0], x.device), min=LAMBDA_MIN)
    rate = (torch.clamp(x, min=0.0) * lam).cpu()
    counts = torch.poisson(rate, generator=gen).to(x.device)
    return counts / lam


def bernoulli(x: torch.Tensor, p, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Multiplicative Bernoulli noise: each pixel is missing (zeroed) with probability p.

    Returns (corrupted, mask) with mask (N, 1, H, W) = 1 on valid pixels; the loss uses the target's mask
    (Eq. 7), and an input and its target get independent masks.
    """
    p = _levels(p, x.shape[0], x.device)
    mask = (_rand((x.shape[0], 1, x.shape[2], x.shape[3]), gen, x.device) >= p).to(x.dtype)
    return x * mask, mask


def impulse(x: torch.Tensor, p, gen: torch.Generator) -> torch.Tensor:
    """Random-valued impulse noise: each pixel replaced by a uniform random RGB colour with probability p.

    Each pixel's distribution is a spike at the true colour plus a uniform floor: its mode is the answer,
    neither its mean (L2) nor, above p = 0.5, its median (L1).
    """
    p = _levels(p, x.shape[0], x.device)
    hit = _rand((x.shape[0], 1, x.shape[2], x.shape[3]), gen, x.device) < p
    colours = _rand(x.shape, gen, x.device)
    return torch.where(hit, colours, x)


# Text: random strings at random places, sizes and colours, on top of each other (Figure 3). The font and the
# orientation are fixed, as in the paper. The font ships with matplotlib, so nothing is downloaded.
TEXT_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,!?-"))
TEXT_SIZES = (10, 30)  # font size range in pixels
MAX_STRINGS = 20000  # a guard so that no image can loop forever


@lru_cache(maxsize=None)
def _font_path() -> str:
    from matplotlib import font_manager

    return font_manager.findfont("DejaVu Sans", fallback_to_default=True)


@lru_cache(maxsize=64)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.truetype(_font_path(), size)


def _glyph_mask(text: str, size: int) -> np.ndarray:
    """The pixels a string covers, as a bool array. Drawn without anti-aliasing: a pixel is either the
    image's colour or the text's colour, which is what makes the median the right answer."""
    from PIL import Image, ImageDraw

    font = _font(size)
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1"  # aliased rendering
    draw.text((-left, -top), text, font=font, fill=255)
    return np.asarray(img) > 0


def text_overlay(h: int, w: int, coverage: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw random strings until `coverage` of the h x w pixels are covered.

    Returns (colours (h, w, 3) float32, covered (h, w) bool). Later strings are drawn over earlier ones.
    """
    colours = np.zeros((h, w, 3), np.float32)
    covered = np.zeros((h, w), bool)
    goal, count = coverage * h * w, 0
    max_size = max(6, min(TEXT_SIZES[1], min(h, w) // 2))
    min_size = min(TEXT_SIZES[0], max_size)
    for _ in range(MAX_STRINGS):
        if count >= goal:
            break
        size = int(rng.integers(min_size, max_size + 1))
        text = "".join(rng.choice(TEXT_ALPHABET, int(rng.integers(3, 16)))).strip() or "N2N"
        glyphs = _glyph_mask(text, size)
        gh, gw = glyphs.shape
        # Positions may run off the image, so text is cut at the borders like anywhere else.
        y0, x0 = int(rng.integers(-gh // 2, h - gh // 2)), int(rng.integers(-gw // 2, w - gw // 2))
        ya, xa, yb, xb = max(y0, 0), max(x0, 0), min(y0 + gh, h), min(x0 + gw, w)
        if ya >= yb or xa >= xb:
            continue
        m = glyphs[ya - y0:yb - y0, xa - x0:xb - x0]
        new = int(np.count_nonzero(m & ~covered[ya:yb, xa:xb]))
        if count + new > goal and count + new - goal > goal - count:
            break  # this string would overshoot more than stopping short: stop as close to p as possible
        count += new
        covered[ya:yb, xa:xb] |= m
        colours[ya:yb, xa:xb][m] = rng.random(3, dtype=np.float32)
    return colours, covered


def text(x: torch.Tensor, p, gen: torch.Generator) -> torch.Tensor:
    """Overlay random text covering a fraction p of each image's pixels."""
    n, _, h, w = x.shape
    p = torch.as_tensor(p, dtype=torch.float32).reshape(-1).expand(n)
    out = x.clone()
    for i in range(n):
        # PIL draws on the CPU with numpy; its random numbers are seeded from the torch generator.
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen)))
        colours, covered = text_overlay(h, w, float(p[i]), rng)
        cov = torch.from_numpy(covered).to(x.device)
        out[i] = torch.where(cov, torch.from_numpy(colours).permute(2, 0, 1).to(x.device), x[i])
    return out


# ---------------------------------------------------------------------------------------------------------
# The registry: name -> function, training range and test level (Sections 3.1, 3.2).

@dataclass(frozen=True)
class Corruption:
    name: str
    apply: Callable  # apply(x, level, gen) -> corrupted, or (corrupted, mask) when `masked`
    train_range: tuple[float, float]
    eval_level: float
    level_name: str
    masked: bool = False


CORRUPTIONS = {
    "gaussian": Corruption("gaussian", gaussian, (0.0, 50.0), 25.0, "sigma"),
    "brown_gaussian": Corruption("brown_gaussian", brown_gaussian, (0.0, 50.0), 25.0, "sigma"),
    "poisson": Corruption("poisson", poisson, (0.0, 50.0), 30.0, "lambda"),
    "bernoulli": Corruption("bernoulli", bernoulli, (0.0, 0.95), 0.5, "p", masked=True),
    "text": Corruption("text", text, (0.0, 0.5), 0.25, "p"),
    "impulse": Corruption("impulse", impulse, (0.0, 0.95), 0.7, "p"),
}
