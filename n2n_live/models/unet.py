"""The U-Net of the paper's Table 2, with the table's layer names.

3x3 "same" convolutions, leaky ReLU (alpha 0.1) after every layer but the last, five 2x2 max-pools,
nearest-neighbour upsampling, skip concatenations, He initialisation, no normalisation or dropout.
Inputs are expected in [-0.5, 0.5]; the spatial size must be a multiple of 32 (see pad_to_multiple).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ALPHA = 0.1  # leaky ReLU slope
MULTIPLE = 32  # 2^5: five pooling levels


def _conv(n_in: int, n_out: int, activation: bool = True) -> nn.Conv2d:
    conv = nn.Conv2d(n_in, n_out, 3, padding=1)
    # He et al. (2015): variance 2/fan_in for ReLU-like layers, 1/fan_in for the linear output layer.
    if activation:
        nn.init.kaiming_normal_(conv.weight, a=ALPHA, nonlinearity="leaky_relu")
    else:
        nn.init.kaiming_normal_(conv.weight, nonlinearity="linear")
    nn.init.zeros_(conv.bias)
    return conv


class UNet(nn.Module):
    """Table 2: n input channels (9 for Monte Carlo: colour, albedo, normal), m linear outputs."""

    def __init__(self, n_in: int = 9, m_out: int = 3):
        super().__init__()
        self.n_in, self.m_out = n_in, m_out
        self.enc_conv0 = _conv(n_in, 48)
        self.enc_conv1 = _conv(48, 48)
        self.enc_conv2 = _conv(48, 48)
        self.enc_conv3 = _conv(48, 48)
        self.enc_conv4 = _conv(48, 48)
        self.enc_conv5 = _conv(48, 48)
        self.enc_conv6 = _conv(48, 48)
        self.dec_conv5a = _conv(96, 96)
        self.dec_conv5b = _conv(96, 96)
        self.dec_conv4a = _conv(144, 96)
        self.dec_conv4b = _conv(96, 96)
        self.dec_conv3a = _conv(144, 96)
        self.dec_conv3b = _conv(96, 96)
        self.dec_conv2a = _conv(144, 96)
        self.dec_conv2b = _conv(96, 96)
        self.dec_conv1a = _conv(96 + n_in, 64)
        self.dec_conv1b = _conv(64, 32)
        self.dec_conv1c = _conv(32, m_out, activation=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = lambda t: F.leaky_relu(t, ALPHA)  # noqa: E731
        pool = lambda t: F.max_pool2d(t, 2)  # noqa: E731
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731

        x0 = x
        x = act(self.enc_conv0(x))
        x = act(self.enc_conv1(x))
        pool1 = x = pool(x)
        pool2 = x = pool(act(self.enc_conv2(x)))
        pool3 = x = pool(act(self.enc_conv3(x)))
        pool4 = x = pool(act(self.enc_conv4(x)))
        x = pool(act(self.enc_conv5(x)))  # pool5
        x = act(self.enc_conv6(x))

        x = torch.cat([up(x), pool4], dim=1)  # upsample5, concat5
        x = act(self.dec_conv5b(act(self.dec_conv5a(x))))
        x = torch.cat([up(x), pool3], dim=1)  # upsample4, concat4
        x = act(self.dec_conv4b(act(self.dec_conv4a(x))))
        x = torch.cat([up(x), pool2], dim=1)  # upsample3, concat3
        x = act(self.dec_conv3b(act(self.dec_conv3a(x))))
        x = torch.cat([up(x), pool1], dim=1)  # upsample2, concat2
        x = act(self.dec_conv2b(act(self.dec_conv2a(x))))
        x = torch.cat([up(x), x0], dim=1)  # upsample1, concat1
        x = act(self.dec_conv1a(x))
        x = act(self.dec_conv1b(x))
        return self.dec_conv1c(x)


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad an NCHW tensor on the right/bottom to a multiple of `multiple`; return it and the original (h, w).

    Replicate padding: reflection needs the pad to be smaller than the image, which tiny frames break.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def unpad(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    h, w = size
    return x[..., :h, :w]


def run_padded(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The inference seam: pad -> network -> crop back."""
    xp, size = pad_to_multiple(x)
    return unpad(net(xp), size)


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
