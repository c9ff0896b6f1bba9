"""The warm start: n2n-live's default network, pre-trained offline on noisy pairs of the bundled scenes only (no
reference image, no clean data: offline_experiments/warm_start.py writes it, scripts/warm_start.sh reproduces it).

`--init warm` (the default) copies these weights into a fresh network when they were trained for its architecture
(models.spec, options included but RUNTIME_OPTIONS); `--init none` keeps the fresh initialisation, the paper's
from-scratch run.
Another architecture (e.g. `--model paper`, which the viewer can switch to at run time) or a missing file start
fresh too, with a one-line notice: never weights of another network, and never an error for a run that works.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from .. import models
from ..checkpoint import model_spec, network_from, read_checkpoint

INIT_CHOICES = ("warm", "none")
# Options that change what a network reads at run time but not its weights (the warm start learnt with lights inside
# its filter, n2n-train --no-emission; despeckle acts only when denoising): the same weights serve every setting, so
# ablations compare like with like.
RUNTIME_OPTIONS = ("emission", "despeckle")
WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "warm_start.pt"  # package data (pyproject.toml)


def _describe(spec: dict, other: dict) -> str:
    """'kernel' network with 10 inputs, + the options that differ from `other`'s when the two share a name."""
    mine, theirs = spec.get("options") or {}, other.get("options") or {}
    diff = [f"{k}={v}" for k, v in sorted(mine.items()) if theirs.get(k) != v] if spec["name"] == other["name"] else []
    return f"'{spec['name']}' network with {spec['n_in']} inputs" + (f" ({', '.join(diff)})" if diff else "")


def _architecture(spec: dict) -> dict:
    """`spec` less RUNTIME_OPTIONS."""
    options = {k: v for k, v in (spec.get("options") or {}).items() if k not in RUNTIME_OPTIONS}
    return {**spec, "options": options}


def load_into(net: nn.Module) -> str | None:
    """Copy the warm start's weights into `net` when they were trained for its architecture and return None; else
    leave `net` as it is and return a one-line notice saying why. A file that holds anything but tensors, numbers and
    strings is a UserError (checkpoint.read_checkpoint, `weights_only=True`)."""
    path = Path(WEIGHTS)  # read at call time: tests point it elsewhere
    if not path.is_file():
        return f"warm start: {path} is not installed (scripts/warm_start.sh writes it): fresh weights"
    state = read_checkpoint(path)
    have, want = (_architecture(s) for s in (model_spec(state), models.spec(net)))
    if have != want:
        return f"warm start: {path} holds a {_describe(have, want)}, not this {_describe(want, have)}: fresh weights"
    net.load_state_dict(network_from(state, path).state_dict())
    return None
