"""Network checkpoints shared by the live app, the batch trainer, the experiments and the denoise command.

A checkpoint is a torch file holding the network's architecture (`model`: models.spec, e.g. the paper's U-Net or
the kernel-predicting net; files without it are the paper's U-Net) and shape (n_in, m_out), its weights, what it was trained for
(`kind`: "mc" for Monte Carlo frames, or an experiment's corruption name) and optional training state
(optimiser, step) so that runs resume. Written atomically; read with `weights_only=True`, so that a file a user
hands in can hold tensors, numbers and strings but never run code.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from .errors import UserError
from .io_utils import atomic_path
from . import models

FORMAT = "n2n-live-checkpoint/1"


def nonfinite_tensors(tensors: dict) -> list[str]:
    """Names of the floating-point tensors in `tensors` that hold a NaN or an Inf."""
    return [k for k, v in tensors.items()
            if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def save_checkpoint(path, net, kind: str = "mc", train_state: dict | None = None, meta: dict | None = None) -> None:
    """Write atomically. Weights that are not finite are never saved (a diverged run must not poison the next one
    that loads them): a UserError, and any earlier checkpoint at `path` stays as it was."""
    bad = nonfinite_tensors(net.state_dict())
    if bad:
        raise UserError(f"{path}: not saved: the network's weights are not finite (NaN/Inf in {bad[0]}); "
                        "training diverged, try a smaller --lr")
    state = {
        "format": FORMAT,
        "n_in": net.n_in,
        "m_out": net.m_out,
        "model": models.spec(net),
        "kind": kind,
        "net": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "train_state": train_state,
        "meta": meta or {},
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def read_checkpoint(path) -> dict:
    """The raw checkpoint dict; a missing or foreign file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"{path}: refused: it holds Python objects besides tensors, numbers and strings "
                        "(loading it could run code)") from None
    except Exception as e:
        raise UserError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not an n2n-live checkpoint")
    bad = nonfinite_tensors(state.get("net") or {})
    if bad:
        raise UserError(f"{path}: the network's weights are not finite (NaN/Inf in {bad[0]}); refusing to use them")
    return state


def model_spec(state: dict) -> dict:
    """The architecture recorded in a checkpoint dict (older files: the paper's U-Net of their shape)."""
    return state.get("model") or {"name": "paper", "n_in": state["n_in"], "options": {"m_out": state["m_out"]}}


def network_from(state: dict, path, expect: dict | None = None):
    """The network a checkpoint dict describes, its weights loaded: the one way every command and trainer turns a
    checkpoint into a network. `expect` (a models.spec) refuses another architecture; every mismatch is a UserError
    naming `path`."""
    spec = model_spec(state)
    if expect is not None and (spec.get("name"), spec.get("n_in")) != (expect["name"], expect["n_in"]):
        raise UserError(f"{path}: a '{spec.get('name')}' network with {spec.get('n_in')} inputs, expected "
                        f"'{expect['name']}' with {expect['n_in']} (choose the matching --model/--temporal)")
    try:
        net = models.from_spec(spec)
        net.load_state_dict(state["net"])
    except (RuntimeError, KeyError, TypeError, ValueError, UserError) as e:
        raise UserError(f"{path}: weights do not fit the recorded network ({str(e).splitlines()[0]})") from None
    return net


def load_checkpoint(path, device="cpu", expect: dict | None = None):
    """(network on `device` in eval mode, the whole checkpoint dict). The architecture comes from the file."""
    state = read_checkpoint(path)
    return network_from(state, path, expect).to(device).eval(), state
