"""The HDR images a frame can show (modes.SOURCES) and their upload into the display's textures.

Everything stays linear HDR until the shader (gl_display.py) applies exposure and the tonemap; only the error
heat-maps are computed here, on tonemapped values like every PSNR. Textures are uploaded once per new frame (or
when what is shown changes), not once per UI frame.
"""
from __future__ import annotations

import torch

from ..features import sanitize
from ..live import oidn
from ..tonemap import T


class FrameImages:
    """Source images of the viewer's current frame; each OIDN input runs at most once per frame, on demand."""

    def __init__(self, display, attempt):
        self.display = display
        self._attempt = attempt  # Viewer.attempt: an OIDN failure becomes a message, not a crash
        self._uploaded = None  # what the textures hold: (result id, sources, exposure for heat-maps)
        self._oidn_cache = (None, None)
        self._oidn_same_cache = (None, None)

    def reference(self, v):
        """The progressive reference when it matches the frame, else the mean of the pair (its best estimate)."""
        pair = v.result.pair
        ref = v.reference.mean
        if ref is None or ref.shape != pair.noisy_a.shape:
            ref = 0.5 * (pair.noisy_a + pair.noisy_b)
        return ref

    def source(self, v, name: str) -> torch.Tensor:
        r = v.result
        pair = r.pair
        if name == "denoised":
            return r.denoised
        if name == "noisy":
            return pair.noisy_a
        if name == "albedo":
            return pair.albedo
        if name == "normal":
            return pair.normal
        if name == "reference":
            return self.reference(v)
        if name in ("error", "error_noisy"):
            x = r.denoised if name == "error" else pair.noisy_a
            ref = self.reference(v)
            e = (T(x.float(), v.exposure) - T(ref.float(), v.exposure)).abs().mean(dim=-1, keepdim=True)
            return e.expand(*e.shape[:2], 3)
        if name == "oidn":
            return self.oidn(v)
        if name == "oidn_same":
            return self.oidn_same(v)
        raise KeyError(name)

    def oidn(self, v) -> torch.Tensor:
        """OIDN, this frame: on the mean of this frame's raw pair (with albedo and normal); the denoised image when
        pyoidn is missing."""
        r = v.result
        if getattr(r, "oidn", None) is not None:  # LiveLoop computed it already (--compare oidn)
            return r.oidn
        return self._oidn_of(v, r.pair, "_oidn_cache")

    def oidn_same(self, v) -> torch.Tensor:
        """OIDN, same samples: on the mean of the two temporal histories the network read this frame; with
        temporal reuse off that is this frame's pair, so it is `oidn`."""
        r = v.result
        history = getattr(r, "history", None)
        if history is None:
            return self.oidn(v)
        if getattr(r, "oidn_same", None) is not None:  # LiveLoop computed it (an evaluated frame)
            return r.oidn_same
        return self._oidn_of(v, history, "_oidn_same_cache")

    def _oidn_of(self, v, pair, cache: str) -> torch.Tensor:
        """OIDN on `pair` (live/oidn.denoise_pair), once per frame (kept in `cache`)."""
        if getattr(self, cache)[0] == v.result_id:
            return getattr(self, cache)[1]
        r = v.result
        if not oidn.available():
            return r.denoised
        img = self._attempt("OIDN", oidn.denoise_pair, pair)
        img = r.denoised if img is None else img
        setattr(self, cache, (v.result_id, img))
        return img

    def upload(self, v) -> None:
        """Upload the sources the current mode shows, when the frame or the choice changed since last time."""
        if v.result is None:
            return
        sources = v.sources_needed()
        heat = any(s.startswith("error") for s in sources)
        key = (v.result_id, sources, v.exposure if heat else None)
        if key == self._uploaded:
            return
        for name in sources:
            img = self.source(v, name)
            self.display.upload(name, sanitize(img.detach().float()))
        self._uploaded = key
