"""A living room lit mostly indirectly: sun and sky come in through two windows.

The sun (a `directional` emitter) throws a bright patch on a glossy parquet floor through the east window and
a second window lets in sky light; most surfaces see only light that bounced at least once, which is what
makes interiors noisy at 8 spp. Materials: varnished parquet (`roughplastic` over a numpy-generated plank
texture), a checkerboard rug, brushed-metal table legs (`roughconductor`), gold and copper spheres, a
Mondrian-like painting (numpy bitmap), a fabric sofa, books.
"""

from __future__ import annotations

import numpy as np

from renderer.camera import Camera, CameraPath

from . import _common as c

FRAMES_PER_LOOP = 600
FOV = 75.0

# Room: x in [-4, 4], y (up) in [0, 3], z in [-3, 3]; the sunlit window is in the wall x = +4.
W, H, D = 8.0, 3.0, 6.0
WIN_Z = (-2.0, 1.0)  # window opening along z
WIN_Y = (0.8, 2.4)  # and height
WIN2_X, WIN2_Y = (-1.6, 0.4), (0.9, 2.3)  # a second window, in the south wall z = +3 (sky light only)
SUN_DIRECTION = (-0.55, -0.6, 0.3)  # travel direction of sunlight: in through the window, down to the floor

START = c.cam((-3.2, 1.6, 2.4), (1.5, 0.9, -1.2), FOV)
KEYFRAMES = [
    c.cam((-0.5, 1.7, 2.5), (2.5, 0.5, -1.0), FOV),  # towards the sunlit floor and the window
    c.cam((2.2, 1.5, 1.8), (-1.0, 0.8, -1.8), FOV),  # back at the room and the bookshelf
    c.cam((1.8, 1.3, -1.2), (-2.5, 0.7, 1.0), FOV),  # towards the sofa
    c.cam((-1.2, 1.9, -1.6), (1.5, 0.7, 1.5), FOV),  # over the table towards the window wall
    c.cam((-3.0, 1.4, -0.2), (2.0, 1.0, 0.3), FOV),  # facing the window from the far wall
]


def parquet(size_px: int = 512, seed: int = 1) -> np.ndarray:
    """Planks (1/8 by 1/2 of the tile), staggered rows, per-plank tone and a fine grain; linear RGB."""
    rng = np.random.default_rng(seed)
    rows, per_row = 8, 2
    ph, pw = size_px // rows, size_px // per_row
    y, x = np.mgrid[0:size_px, 0:size_px]
    row = y // ph
    shifted = (x + (row % 2) * pw // 2) % size_px  # stagger odd rows by half a plank
    plank = row * per_row + shifted // pw
    tone = rng.uniform(0.75, 1.25, size=rows * per_row + 1)[plank]
    grain = 1.0 + 0.08 * np.sin(0.9 * y + 3.0 * np.sin(0.05 * shifted + plank)) + 0.04 * rng.standard_normal(x.shape)
    seam = ((y % ph) < 2) | ((shifted % pw) < 2)
    base = np.array([0.32, 0.17, 0.08])
    img = base * (tone * grain)[..., None]
    img[seam] *= 0.45
    return np.clip(img, 0.0, 1.0)


def mondrian(h: int = 180, w: int = 280) -> np.ndarray:
    """A painting of primary colour blocks between black lines on white (linear RGB)."""
    img = np.full((h, w, 3), 0.8)
    img[: h // 2, : w // 3] = (0.6, 0.03, 0.02)  # red
    img[h * 3 // 4 :, w * 3 // 4 :] = (0.02, 0.06, 0.45)  # blue
    img[h * 3 // 4 :, : w // 6] = (0.75, 0.55, 0.02)  # yellow
    for yy in (h // 2, h * 3 // 4):
        img[yy - 3 : yy + 3] = 0.02
    for xx in (w // 6, w // 3, w * 3 // 4):
        img[:, xx - 3 : xx + 3] = 0.02
    return img


def _wall_with_window(shapes, name, normal, plane, span, win_a, win_y, bsdf, e=0.1) -> None:
    """A wall at `plane` (x = plane for +-x normals, z = plane for +-z) spanning `span` along the wall and the
    room's height, in four rectangles around the opening win_a x win_y."""
    (a_lo, a_hi), (a0, a1), (y0, y1), y_top = span, win_a, win_y, H + e

    def piece(suffix, a_range, y_range):
        a_mid, y_mid = 0.5 * (a_range[0] + a_range[1]), 0.5 * (y_range[0] + y_range[1])
        centre = (plane, y_mid, a_mid) if "x" in normal else (a_mid, y_mid, plane)
        size = (a_range[1] - a_range[0], y_range[1] - y_range[0])
        shapes[f"{name}_{suffix}"] = c.rectangle(centre, size, bsdf, normal)

    piece("below", (a_lo, a_hi), (-e, y0))
    piece("above", (a_lo, a_hi), (y1, y_top))
    piece("left", (a_lo, a0), (y0, y1))
    piece("right", (a1, a_hi), (y0, y1))


def _room(shapes: dict) -> None:
    wall = c.diffuse((0.72, 0.70, 0.66), twosided=True)
    e = 0.1  # walls overlap at the corners so no light leaks through the seams
    shapes["floor"] = c.rectangle((0, 0, 0), (W, D), {
        "type": "roughplastic", "distribution": "ggx", "alpha": 0.12, "int_ior": 1.5,
        "diffuse_reflectance": c.bitmap_texture(parquet(), repeat=(W / 2, D / 2)),
    }, "+y")
    shapes["ceiling"] = c.rectangle((0, H, 0), (W + e, D + e), c.diffuse(0.8, twosided=True), "-y")
    shapes["wall_west"] = c.rectangle((-W / 2, H / 2, 0), (D + e, H + e), wall, "+x")
    shapes["wall_north"] = c.rectangle((0, H / 2, -D / 2), (W + e, H + e), wall, "+z")
    _wall_with_window(shapes, "wall_east", "-x", W / 2, (-D / 2 - e, D / 2 + e), WIN_Z, WIN_Y, wall)
    _wall_with_window(shapes, "wall_south", "-z", D / 2, (-W / 2 - e, W / 2 + e), WIN2_X, WIN2_Y, wall)
    x, (z0, z1), (y0, y1) = W / 2, WIN_Z, WIN_Y
    frame = c.diffuse(0.85)
    shapes["mullion_v"] = c.box((x, (y0 + y1) / 2, (z0 + z1) / 2), (0.08, y1 - y0, 0.06), frame)
    shapes["mullion_h"] = c.box((x, (y0 + y1) / 2, (z0 + z1) / 2), (0.08, 0.06, z1 - z0), frame)
    (x0, x1), (y0, y1) = WIN2_X, WIN2_Y
    shapes["mullion_s"] = c.box(((x0 + x1) / 2, (y0 + y1) / 2, D / 2), (0.06, y1 - y0, 0.08), frame)
    # Ground outside, seen through the window and bouncing sunlight up.
    shapes["ground"] = c.rectangle((0, -0.02, 0), (200.0, 200.0), c.diffuse((0.16, 0.2, 0.09)), "+y")


def _furniture(shapes: dict) -> None:
    shapes["rug"] = c.rectangle((-0.8, 0.004, 0.3), (3.0, 2.2),
                                c.diffuse(c.checkerboard((0.45, 0.06, 0.05), (0.7, 0.62, 0.48), 6)), "+y")
    # Table: varnished top on brushed aluminium legs.
    shapes["table_top"] = c.box((-0.8, 0.74, 0.3), (1.6, 0.06, 0.9), {
        "type": "roughplastic", "distribution": "ggx", "alpha": 0.08,
        "diffuse_reflectance": c.rgb((0.2, 0.09, 0.04))})
    metal = {"type": "roughconductor", "material": "Al", "distribution": "ggx", "alpha": 0.25}
    for i, (dx, dz) in enumerate([(-0.7, -0.38), (0.7, -0.38), (-0.7, 0.38), (0.7, 0.38)]):
        shapes[f"table_leg{i}"] = c.cylinder((-0.8 + dx, 0.0, 0.3 + dz), (-0.8 + dx, 0.71, 0.3 + dz), 0.03, metal)
    shapes["gold_sphere"] = c.sphere((-0.45, 0.89, 0.45), 0.12,
                                     {"type": "roughconductor", "material": "Au", "alpha": 0.12})
    shapes["white_sphere"] = c.sphere((-1.15, 0.86, 0.15), 0.09, {"type": "plastic",
                                      "diffuse_reflectance": c.rgb(0.8)})
    # Sofa against the west wall.
    fabric = c.diffuse((0.08, 0.14, 0.32))
    shapes["sofa_seat"] = c.box((-3.5, 0.22, 0.3), (0.9, 0.44, 2.2), fabric)
    shapes["sofa_back"] = c.box((-3.88, 0.62, 0.3), (0.2, 0.8, 2.2), fabric)
    shapes["sofa_arm0"] = c.box((-3.5, 0.34, -0.9), (0.9, 0.68, 0.2), fabric)
    shapes["sofa_arm1"] = c.box((-3.5, 0.34, 1.5), (0.9, 0.68, 0.2), fabric)
    # Bookshelf against the north wall, with books of random size and colour (fixed seed).
    wood = c.diffuse((0.35, 0.22, 0.12))
    sx, sw, sd, sh = -2.0, 1.4, 0.35, 2.0
    sz = -D / 2 + sd / 2 + 0.01
    shapes["shelf_back"] = c.box((sx, sh / 2, -D / 2 + 0.03), (sw, sh, 0.04), wood)
    for i, xx in enumerate((sx - sw / 2, sx + sw / 2)):
        shapes[f"shelf_side{i}"] = c.box((xx, sh / 2, sz), (0.04, sh, sd), wood)
    rng = np.random.default_rng(7)
    palette = np.array([(0.5, 0.05, 0.04), (0.05, 0.2, 0.08), (0.06, 0.08, 0.35), (0.6, 0.5, 0.3), (0.1, 0.1, 0.1)])
    for i, yy in enumerate((0.02, 0.52, 1.02, 1.52, 1.98)):
        shapes[f"shelf_board{i}"] = c.box((sx, yy, sz), (sw, 0.03, sd), wood)
        if i >= 4:
            continue
        xx = sx - sw / 2 + 0.05
        while True:
            bw, bh = rng.uniform(0.04, 0.09), rng.uniform(0.25, 0.42)
            if xx + bw > sx + sw / 2 - 0.05:
                break
            colour = palette[rng.integers(len(palette))] * rng.uniform(0.7, 1.2)
            shapes[f"book{i}_{len(shapes)}"] = c.box((xx + bw / 2, yy + 0.015 + bh / 2, sz + 0.02), (bw, bh, 0.26),
                                                     c.diffuse(np.clip(colour, 0, 1)))
            xx += bw + 0.004
    # Copper sphere on a plinth by the window, and a painting on the north wall.
    shapes["plinth"] = c.box((2.9, 0.45, -2.3), (0.5, 0.9, 0.5), c.diffuse(0.75))
    shapes["copper_sphere"] = c.sphere((2.9, 1.15, -2.3), 0.25, {"type": "roughconductor", "material": "Cu",
                                                                 "alpha": 0.05})
    shapes["painting_frame"] = c.box((1.0, 1.6, -D / 2 + 0.02), (1.5, 1.0, 0.04), c.diffuse(0.03))
    # Rows flipped: bitmap row 0 is the top of the image, the rectangle's v axis points up.
    shapes["painting"] = c.rectangle((1.0, 1.6, -D / 2 + 0.045), (1.4, 0.9),
                                     c.diffuse(c.bitmap_texture(mondrian()[::-1])), "+z")


def build(width: int, height: int) -> dict:
    d = {"type": "scene", "sensor": c.sensor(START, width, height),
         "integrator": {"type": "path", "max_depth": 8}}
    d["sun"] = {"type": "directional", "direction": list(SUN_DIRECTION), "irradiance": c.rgb((16.0, 14.5, 12.0))}
    d["sky"] = {"type": "constant", "radiance": c.rgb((1.1, 1.4, 2.0))}
    _room(d)
    _furniture(d)
    return d


def path(start: Camera) -> CameraPath:
    return c.looping_path(start, KEYFRAMES, FRAMES_PER_LOOP)


SPEC = c.SceneSpec(
    name="interior",
    description="living room lit by sun and sky through two windows: mostly indirect light, glossy parquet, metals",
    build=build,
    path=path,
    start=START,
)
