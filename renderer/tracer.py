"""Paired noisy renders (the Noise2Noise training data) and chunked reference renders.

Per frame, `PathTracer.render_pair` renders the same view twice with two different seeds: two independent
noisy estimates of one image, the input and the target of a Noise2Noise step. A third, cheap pass of an
aov-only integrator gives the albedo and shading normal of what each pixel sees. All passes use the box
filter, so every value is a plain mean of the samples inside its pixel.

Seeds come from `renderer.seeds` (one range per stream): frame n's pair takes `seeds.live_pair(frame + seed
offset)` and its albedo/normal pass `seeds.live_features(...)`, unless the caller hands explicit seeds (exports);
a reference takes the range its caller names (default: the clean-target stream).

NaN/Inf samples are *not* sanitised here: the renderer reports what Mitsuba computed, and the trainer
(`n2n_live.features.sanitize`) decides what to do with them. Albedo is clamped to [0, 1] (see below).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import drjit as dr
import mitsuba as mi
import numpy as np
import torch

from . import seeds
from .camera import Camera
from .scene import AOVS, LoadedScene
from .variant import torch_device_for_variant

REFERENCE_CACHE_SIZE = 8
# Largest wavefront (pixels x samples per launch) for references: Dr.Jit traces a whole launch at once and
# keeps per-lane state, so an unbounded chunk (512x512 at 64 spp) would need gigabytes.
REFERENCE_MAX_LANES = 2**22


@dataclass
class FramePair:
    """Two independent noisy renders of one frame and the frame's features, HWC float32 on the tracer's device.

    noisy_a, noisy_b: (H, W, 3) linear HDR radiance, `spp` samples each, unclipped and unsanitised.
    albedo: (H, W, 3) in [0, 1]; normal: (H, W, 3) world-space shading normal averaged over the pixel (unit
    length inside surfaces, shorter at silhouettes, 0 where nothing is hit).
    seeds: the Mitsuba seeds of noisy_a and noisy_b. render_ms: wall time of the whole call.
    position: (H, W, 3) world-space position of what the pixel sees, averaged over the pixel (0 where nothing is
    hit), from the same cheap pass as albedo and normal: what temporal reprojection needs.
    shape: (2, H, W) Mitsuba's shape index averaged over each pixel's samples of noisy_a and of noisy_b (the same
    pixel positions as those images; fractional where shapes meet).
    emission: (2, H, W, 3) the part of noisy_a and of noisy_b that the camera sees straight from an emitter (lights,
    the environment), from the same samples: exact, noise-free but for pixel coverage, and always <= the colour.
    """

    noisy_a: torch.Tensor
    noisy_b: torch.Tensor
    albedo: torch.Tensor
    normal: torch.Tensor
    frame: int
    seeds: tuple[int, int]
    render_ms: float
    position: torch.Tensor | None = None
    shape: torch.Tensor | None = None
    emission: torch.Tensor | None = None


class PathTracer:
    """Renders `FramePair`s and references of a `LoadedScene` (call from the thread that loaded the scene).

    The camera moves by writing the sensor's `to_world` (and `x_fov`) through `mi.traverse` and
    `params.update()`: the first move turns those values into opaque kernel inputs and compiles once; later
    moves reuse the compiled kernels.
    """

    def __init__(self, loaded: LoadedScene, spp: int = 8, seed: int = 0, torch_device=None):
        if int(spp) < 1:
            raise ValueError(f"spp must be >= 1, got {spp}")
        self.loaded = loaded
        self.spp = int(spp)
        self.seed_offset = int(seed)
        self.variant = mi.variant()
        self.device = torch.device(torch_device or torch_device_for_variant(self.variant))
        self._scene = loaded.scene
        self._sensor_params = mi.traverse(self._scene.sensors()[0])
        self._colour = loaded.integrator if loaded.integrator is not None else self._scene.integrator()
        self._features = mi.load_dict({"type": "aov", "aovs": AOVS})
        # Rendered with a colour image's seed and spp, an aov pass draws the same pixel positions as that image: its
        # shape index says which surfaces that image's samples saw (temporal reprojection keeps an emitter's border
        # out of the ceiling's history with it; the shared features pass draws other positions), and a one-bounce
        # path tracer inside it gives exactly the emission those samples saw directly.
        hide = bool(getattr(self._colour, "hide_emitters", False))
        self._own = mi.load_dict({"type": "aov", "aovs": "shp:shape_index",
                                  "emission": {"type": "path", "max_depth": 1, "hide_emitters": hide}})
        self._camera_key = None
        self._fov = None
        self._references: OrderedDict = OrderedDict()

    @property
    def width(self) -> int:
        return self.loaded.width

    @property
    def height(self) -> int:
        return self.loaded.height

    # ------------------------------------------------------------------------------------------ camera

    def set_camera(self, cam: Camera) -> None:
        """Point the sensor at `cam` (no-op if it already is)."""
        key = cam.key()
        if key == self._camera_key:
            return
        self._sensor_params["to_world"] = mi.ScalarTransform4f(cam.to_world().tolist())
        if self._fov != cam.fov_deg:
            self._sensor_params["x_fov"] = cam.fov_deg
            self._fov = cam.fov_deg
        self._sensor_params.update()
        self._camera_key = key

    def resize(self, width: int, height: int) -> None:
        """Render at width x height from now on (the film is resized in place; references are dropped)."""
        width, height = int(width), int(height)
        if width < 1 or height < 1:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if (width, height) == (self.width, self.height):
            return
        self._sensor_params["film.size"] = mi.ScalarVector2u(width, height)
        self._sensor_params.update()
        self.loaded.width, self.loaded.height = width, height
        self._references.clear()

    # ------------------------------------------------------------------------------------------ seeds

    def seeds_for(self, frame: int) -> tuple[int, int]:
        """The seeds of noisy_a and noisy_b of `frame`: 2n and 2n + 1 with n = frame + seed offset."""
        return seeds.live_pair(int(frame) + self.seed_offset)

    # ------------------------------------------------------------------------------------------ renders

    def _render(self, integrator, spp: int, seed: int):
        return mi.render(self._scene, integrator=integrator, spp=int(spp), seed=int(seed))

    def _to_torch(self, image) -> torch.Tensor:
        """Dr.Jit tensor -> torch without a host round trip where both live on one device (DLPack)."""
        try:
            t = image.torch()
        except Exception:  # scalar variants: plain numpy memory
            t = torch.from_numpy(np.array(image, dtype=np.float32))
        return t if t.device == self.device else t.to(self.device)

    def _finish(self, *images) -> None:
        dr.eval(*images)
        # Dr.Jit runs kernels asynchronously (on CUDA on its own stream, which torch's streams do not wait
        # for): wait here so the tensors handed out are complete.
        dr.sync_thread()

    def render_pair(self, cam: Camera, frame: int, pair_seeds: tuple[int, int, int] | None = None) -> FramePair:
        """Two independent `spp`-sample renders of `cam` plus albedo and normal, for frame number `frame`.
        `pair_seeds` (noisy_a, noisy_b, features) replaces the live frame's seeds (exports)."""
        if pair_seeds is None:
            pair_seeds = (*self.seeds_for(frame), seeds.live_features(int(frame) + self.seed_offset))
        seed_a, seed_b, feature_seed = (int(s) for s in pair_seeds)
        t0 = time.perf_counter()
        self.set_camera(cam)
        a = self._render(self._colour, self.spp, seed_a)
        b = self._render(self._colour, self.spp, seed_b)
        f = self._render(self._features, self.spp, feature_seed)
        own = [self._render(self._own, self.spp, s) for s in (seed_a, seed_b)]
        self._finish(a, b, f, *own)
        a, b, f = self._to_torch(a)[..., :3], self._to_torch(b)[..., :3], self._to_torch(f)
        own = torch.stack([self._to_torch(o) for o in own])  # (2, H, W, 4): emission RGB, shape index
        albedo, normal, position = _split_features(f)
        render_ms = (time.perf_counter() - t0) * 1000.0
        return FramePair(a, b, albedo, normal, int(frame), (seed_a, seed_b), render_ms, position,
                         own[..., 3].contiguous(), own[..., :3].contiguous())

    def render_reference(
        self, cam: Camera, spp: int, chunk_spp: int = 64, first_seed: int | None = None
    ) -> torch.Tensor:
        """A high-spp (H, W, 3) estimate of `cam`'s image, accumulated from independent chunks of at most
        `chunk_spp` samples (bounded memory). Cached per (camera, spp, size, seeds): a second call is free.

        Chunk k uses seed `first_seed + k` (default: the clean-target stream, `seeds.clean_target`). At most `spp`
        chunks are rendered, so the range [first_seed, first_seed + spp) is what a caller must own.
        """
        return self._accumulate(self._colour, cam, spp, chunk_spp, first_seed)[..., :3].clone()

    def render_reference_features(self, cam: Camera, spp: int, chunk_spp: int = 64,
                                  first_seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(albedo, normal) of `cam` from `spp` samples per pixel, chunked and seeded like `render_reference`:
        the nearly noise-free features of a reference (what OIDN's `--clean_aux` training reads)."""
        albedo, normal, _ = _split_features(self._accumulate(self._features, cam, spp, chunk_spp, first_seed))
        return albedo, normal

    def _accumulate(self, integrator, cam: Camera, spp: int, chunk_spp: int, first_seed: int | None) -> torch.Tensor:
        """The mean of `spp` samples of `integrator` over chunks seeded first_seed + k (cached; do not modify)."""
        spp, chunk_spp = int(spp), max(1, int(chunk_spp))
        first_seed = seeds.clean_target(1).start if first_seed is None else int(first_seed)
        if spp < 1:
            raise ValueError(f"spp must be >= 1, got {spp}")
        if not 0 <= first_seed <= 2**32 - spp:
            raise ValueError(f"reference seeds {first_seed}..{first_seed + spp} leave Mitsuba's 32-bit range")
        key = (integrator is self._features, cam.key(), spp, self.width, self.height, first_seed)
        cached = self._references.get(key)
        if cached is not None:
            self._references.move_to_end(key)
            return cached
        chunk_spp = min(chunk_spp, max(1, REFERENCE_MAX_LANES // (self.width * self.height)))
        self.set_camera(cam)
        total, done, k = None, 0, 0
        while done < spp:
            n = min(chunk_spp, spp - done)
            img = self._render(integrator, n, first_seed + k)
            self._finish(img)
            # float64 sum: thousands of chunks may be added up.
            part = self._to_torch(img).to(torch.float64) * n
            total = part if total is None else total + part
            done, k = done + n, k + 1
        ref = (total / spp).to(torch.float32)
        self._references[key] = ref
        while len(self._references) > REFERENCE_CACHE_SIZE:
            self._references.popitem(last=False)
        return ref


def _split_features(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(albedo, normal, position) of an aov pass's (H, W, 9) image."""
    # The albedo AOV of a near-specular conductor is its BRDF value, not a reflectance (values of 100+ on a
    # polished sphere): clamp it to the [0, 1] the network's input normalisation expects.
    return f[..., 0:3].clamp(0.0, 1.0), f[..., 3:6].contiguous(), f[..., 6:9].contiguous()
