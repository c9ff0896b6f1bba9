"""Camera geometry shared by temporal reuse (live/temporal.py) and flicker measurement (evaluation/stability.py):
per-pixel view directions, projection into a camera, and reprojection of one frame's values into another frame's
view with disocclusion tests (plane distance, normal, off-screen, silhouette pixels). The tests read only geometry
(position, normal), never colour, so two independent noisy streams stay independent after reprojection.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

FAR = 1.0e6  # where a pixel that sees no surface is put: only the camera rotation moves it
EDGE = (0.02, 0.9)  # |mean normal| strictly between these: the pixel mixes surfaces (or a surface and the sky)
# Plane-distance tolerance, relative to the distance from the camera. Tight, because box-filtered positions of a
# plane lie on the plane whatever the sample positions, and nearly coplanar surfaces can differ wildly in radiance
# (the Cornell box's light hangs 1 cm below the white ceiling, same normal, same albedo).
PLANE_TOL = 0.001
SHAPE_TOL = 1e-3  # pixel-averaged shape indices: equal on one shape, fractional (and varying) where shapes meet


@dataclass
class Geometry:
    """What one frame's camera sees: its camera, world-space position (H, W, 3), shading normal (H, W, 3) and,
    when the renderer gave it, the pixel-averaged shape index (H, W)."""

    camera: object
    position: torch.Tensor
    normal: torch.Tensor
    shape_index: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.position.shape[:2])

    def points(self) -> torch.Tensor:
        """World points (H, W, 3); pixels that see nothing are put at FAR along their view ray."""
        h, w = self.shape
        dirs = pixel_directions(self.camera, w, h, self.position.device)
        origin = torch.as_tensor(self.camera.origin, dtype=torch.float32, device=self.position.device)
        far = origin + FAR * dirs
        return torch.where(self.hit()[..., None], self.position.float(), far)

    def hit(self) -> torch.Tensor:
        return self.normal.norm(dim=-1) >= 0.5

    def edge(self) -> torch.Tensor:
        n = self.normal.norm(dim=-1)
        return (n > EDGE[0]) & (n < EDGE[1])


def _basis(cam, device):
    m = torch.as_tensor(cam.to_world(), dtype=torch.float32, device=device)
    # Mitsuba's look-at frame: columns left, up, view direction, origin.
    return m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3]


def _tans(cam, width: int, height: int) -> tuple[float, float]:
    tx = math.tan(math.radians(cam.fov_deg) * 0.5)  # x_fov is horizontal
    return tx, tx * height / width


def pixel_directions(cam, width: int, height: int, device="cpu") -> torch.Tensor:
    """Unit world-space view directions through the pixel centres, (H, W, 3)."""
    left, up, fwd, _ = _basis(cam, device)
    tx, ty = _tans(cam, width, height)
    sx = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * 2 - 1  # -1 left .. 1 right
    sy = 1 - (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * 2  # 1 top .. -1 bottom
    d = fwd + (-sx * tx)[None, :, None] * left + (sy * ty)[:, None, None] * up  # image right is -left
    return d / d.norm(dim=-1, keepdim=True)


def project(cam, width: int, height: int, points: torch.Tensor):
    """World points (..., 3) -> (x, y, z): continuous pixel coordinates (pixel i covers [i, i+1)) and the depth
    along the view direction (z <= 0: behind the camera)."""
    left, up, fwd, origin = _basis(cam, points.device)
    rel = points - origin
    lx, ly, lz = rel @ left, rel @ up, rel @ fwd
    tx, ty = _tans(cam, width, height)
    safe = torch.where(lz.abs() > 1e-12, lz, torch.full_like(lz, 1e-12))
    x = (1 - lx / (safe * tx)) * 0.5 * width
    y = (1 - ly / (safe * ty)) * 0.5 * height
    return x, y, lz


def _catmull_rom(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Catmull-Rom weights of the taps at offsets -1, 0, 1, 2 for a fractional position t in [0, 1)."""
    t2, t3 = t * t, t * t * t
    return (0.5 * (-t3 + 2 * t2 - t), 0.5 * (3 * t3 - 5 * t2 + 2), 0.5 * (-3 * t3 + 4 * t2 + t), 0.5 * (t3 - t2))


FILTERS = ("bilinear", "catmull-rom")


def reproject(prev_values: torch.Tensor, prev: Geometry, cur: Geometry, plane_tol: float = PLANE_TOL,
              normal_cos: float = 0.9, filter: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """Bring `prev_values` (H', W', C), seen by `prev`, into the view `cur` (H, W): (values (H, W, C), valid (H, W)).

    Each pixel's world point is projected into the previous view and read with bilinear weights from the 4 nearest
    previous pixels; a tap counts only when it saw the same surface: both hit (or both saw nothing), the tap lies
    within `plane_tol` x distance of this pixel's tangent plane, the normals agree (cos >= `normal_cos`) and, where
    both frames have one, the shape index is the same (a light and the ceiling it hangs under share a plane, a
    normal and often an albedo; one bilinear tap of the light put into a ceiling pixel costs ~10 dB there).
    Weights are renormalised over the taps that count; pixels with none (disocclusions, off-screen, silhouette
    pixels) are invalid and their values 0.

    filter="catmull-rom" reads the 4 x 4 nearest taps with Catmull-Rom weights where all 16 count (bilinear
    elsewhere), clamped to the range of the 4 nearest: sharper than bilinear, whose blur at sub-pixel motion costs
    about what reprojection saves and compounds frame after frame, without the cubic's overshoot at bright edges.
    """
    if filter not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {filter!r}")
    h, w = cur.shape
    ph, pw = prev.shape
    dev = prev_values.device
    pts = cur.points().to(dev)
    x, y, z = project(prev.camera, pw, ph, pts)
    fx, fy = x - 0.5, y - 0.5  # integer = a pixel centre
    x0, y0 = torch.floor(fx), torch.floor(fy)
    ax, ay = fx - x0, fy - y0
    x0, y0 = x0.long(), y0.long()

    cur_hit, cur_edge = cur.hit().to(dev), cur.edge().to(dev)
    n_cur = torch.nn.functional.normalize(cur.normal.to(dev).float(), dim=-1)
    prev_pts = prev.points().to(dev).reshape(-1, 3)
    prev_n = torch.nn.functional.normalize(prev.normal.to(dev).float(), dim=-1).reshape(-1, 3)
    prev_hit = prev.hit().to(dev).reshape(-1)
    prev_edge = prev.edge().to(dev).reshape(-1)
    prev_origin = torch.as_tensor(prev.camera.origin, dtype=torch.float32, device=dev)
    dist = (pts - prev_origin).norm(dim=-1)
    vals = prev_values.reshape(-1, prev_values.shape[-1]).float()
    shapes = None
    if prev.shape_index is not None and cur.shape_index is not None:
        shapes = prev.shape_index.to(dev).float().reshape(-1), cur.shape_index.to(dev).float()

    def tap(dx: int, dy: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(values (H, W, C), counts (H, W)) of the previous pixel at (x0 + dx, y0 + dy)."""
        tx, ty = x0 + dx, y0 + dy
        inside = (tx >= 0) & (tx < pw) & (ty >= 0) & (ty < ph) & (z > 0)
        idx = (ty.clamp(0, ph - 1) * pw + tx.clamp(0, pw - 1)).reshape(-1)
        t_hit, t_edge = prev_hit[idx].view(h, w), prev_edge[idx].view(h, w)
        t_pts, t_n = prev_pts[idx].view(h, w, 3), prev_n[idx].view(h, w, 3)
        plane = ((t_pts - pts) * n_cur).sum(-1).abs() <= plane_tol * dist
        same = torch.where(cur_hit, t_hit & plane & ((t_n * n_cur).sum(-1) >= normal_cos), ~t_hit)
        if shapes is not None:
            same &= (shapes[0][idx].view(h, w) - shapes[1]).abs() < SHAPE_TOL
        return vals[idx].view(h, w, -1), inside & same & ~t_edge & ~cur_edge

    acc = torch.zeros(h, w, vals.shape[-1], device=dev)
    wsum = torch.zeros(h, w, device=dev)
    near = []
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        v, ok = tap(dx, dy)
        wt = (ax if dx else 1 - ax) * (ay if dy else 1 - ay) * ok
        acc += wt[..., None] * v
        wsum += wt
        near.append((v, ok))
    valid = wsum > 1e-3
    out = torch.where(valid[..., None], acc / wsum.clamp(min=1e-3)[..., None], torch.zeros_like(acc))
    if filter == "catmull-rom":
        out = _sharpen(out, tap, near, ax, ay)
    return out, valid


def _sharpen(bilinear: torch.Tensor, tap, near, ax: torch.Tensor, ay: torch.Tensor) -> torch.Tensor:
    """Catmull-Rom where all 16 taps count, clamped to the range of the 4 nearest taps; `bilinear` elsewhere."""
    wx, wy = _catmull_rom(ax), _catmull_rom(ay)
    acc = torch.zeros_like(bilinear)
    every = torch.ones_like(ax, dtype=torch.bool)
    for j in range(4):
        for i in range(4):
            v, ok = near[(i - 1) + 2 * (j - 1)] if 1 <= i <= 2 and 1 <= j <= 2 else tap(i - 1, j - 1)
            acc += (wx[i] * wy[j])[..., None] * v
            every &= ok
    stack = torch.stack([v for v, _ in near])
    cubic = torch.minimum(torch.maximum(acc, stack.amin(0)), stack.amax(0))
    return torch.where(every[..., None], cubic, bilinear)
