"""The denoisers side by side, behind one factory keyed by name; checkpoints record the name and options.

    paper   the Table 2 U-Net with direct (colour) output, exactly as in n2n_live/network.py: the paper's model
    kernel  a kernel-predicting filter of the linear noisy colour (models/kernel.py)

`build(name, n_in=9, **options)` makes a fresh network; `spec(net)` describes one (name, n_in, options) and
`from_spec(spec)` rebuilds it, which is how `--load`, n2n-train and n2n-denoise get the right class back.
A network with `linear_channels` > 0 takes that many channels of linear colour after its `n_in` features
(features.network_input builds both).
"""
from __future__ import annotations

from torch import nn

from ..config import MODEL_CHOICES
from ..errors import UserError
from ..network import UNet
from .kernel import KernelPredictingNet


def build(name: str = "paper", n_in: int = 9, **options) -> nn.Module:
    """A freshly initialised network called `name` (UserError for an unknown name)."""
    if name == "paper":
        return UNet(n_in, int(options.get("m_out", 3)))
    if name == "kernel":
        return KernelPredictingNet(n_in, **options)
    raise UserError(f"unknown model {name!r} (choose from {', '.join(MODEL_CHOICES)})")


def spec(net: nn.Module) -> dict:
    """{'name', 'n_in', 'options'}: enough to rebuild `net`'s architecture."""
    if isinstance(net, KernelPredictingNet):
        return {"name": "kernel", "n_in": net.n_in, "options": net.options}
    if isinstance(net, UNet):
        return {"name": "paper", "n_in": net.n_in, "options": {"m_out": net.m_out}}
    raise TypeError(f"not an n2n-live model: {type(net).__name__}")


def from_spec(s: dict) -> nn.Module:
    return build(s["name"], int(s["n_in"]), **dict(s.get("options") or {}))


def rebuild(net: nn.Module) -> nn.Module:
    """A freshly initialised network of the same architecture as `net`."""
    return from_spec(spec(net))


def linear_channels(net: nn.Module) -> int:
    """How many channels of linear colour `net` takes after its features (0 for the paper's U-Net)."""
    return int(getattr(net, "linear_channels", 0))


__all__ = ["MODEL_CHOICES", "build", "spec", "from_spec", "rebuild", "linear_channels", "KernelPredictingNet",
           "UNet"]
