"""The denoisers side by side, behind one registry keyed by name; checkpoints record the name and options.

    paper   the Table 2 U-Net with direct (colour) output (models/unet.py): the paper's model
    kernel  a kernel-predicting filter of the linear noisy colour (models/kernel.py)

`build(name, n_in=9, **options)` makes a fresh network; `spec(net)` describes one (name, n_in, options) and
`from_spec(spec)` rebuilds it, which is how `--load`, n2n-train and n2n-denoise get the right class back.
A network with `linear_channels` > 0 takes that many channels of linear colour after its `n_in` features
(features.network_input builds both).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from torch import nn

from ..errors import UserError
from .kernel import KernelPredictingNet
from .unet import UNet


class Entry(NamedTuple):
    cls: type
    options: Callable[[nn.Module], dict]  # what `build` needs besides n_in to rebuild the same architecture


MODELS: dict[str, Entry] = {
    "paper": Entry(UNet, lambda net: {"m_out": net.m_out}),
    "kernel": Entry(KernelPredictingNet, lambda net: net.options),
}
MODEL_CHOICES = tuple(MODELS)


def build(name: str = "paper", n_in: int = 9, **options) -> nn.Module:
    """A freshly initialised network called `name` (UserError for an unknown name)."""
    if name not in MODELS:
        raise UserError(f"unknown model {name!r} (choose from {', '.join(MODEL_CHOICES)})")
    return MODELS[name].cls(n_in, **options)


def name_of(net: nn.Module) -> str:
    """The registry name of `net`'s class (TypeError for a network this registry does not know)."""
    for name, entry in MODELS.items():
        if type(net) is entry.cls:
            return name
    raise TypeError(f"not an n2n-live model: {type(net).__name__}")


def spec(net: nn.Module) -> dict:
    """{'name', 'n_in', 'options'}: enough to rebuild `net`'s architecture."""
    name = name_of(net)
    return {"name": name, "n_in": net.n_in, "options": MODELS[name].options(net)}


def from_spec(s: dict) -> nn.Module:
    return build(s["name"], int(s["n_in"]), **dict(s.get("options") or {}))


def rebuild(net: nn.Module) -> nn.Module:
    """A freshly initialised network of the same architecture as `net`."""
    return from_spec(spec(net))


def linear_channels(net: nn.Module) -> int:
    """How many channels of linear colour `net` takes after its features (0 for the paper's U-Net)."""
    return int(getattr(net, "linear_channels", 0))


def input_channels(net: nn.Module) -> int:
    """Channels `net` reads: its features, then any linear colour it filters."""
    return int(net.n_in) + linear_channels(net)
