"""Image folders: random training crops and whole evaluation images, as float32 CHW tensors in [0, 1].

The paper trains on random 256x256 crops of the 50k ImageNet validation images; any folder of PNG/JPEG/BMP/TIFF
photos, 8 or 16 bits per channel, works the same way here (read by n2n_live.images at full precision). Greyscale
images become 3-channel (R = G = B).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from n2n_live.errors import UserError
from n2n_live.images import LDR_SUFFIXES, read_ldr


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


DATA_ENV = "N2N_DATA"


def default_data_root() -> Path:
    """$N2N_DATA when set, else the project's shared data beside the checkout: <repo>/../shared/data."""
    env = os.environ.get(DATA_ENV, "").strip()
    return Path(env).expanduser() if env else repo_root().parent / "shared" / "data"


def resolve_folder(spec: str, data_root: Path, kind: str = "image folder") -> Path:
    """A folder given by path, or by name under <data_root>/images (e.g. "kodak")."""
    p = Path(spec).expanduser()
    if p.exists():
        return p
    named = data_root / "images" / spec
    if named.exists():
        return named
    raise UserError(f"{kind} not found: {spec} (neither a path nor a folder in {data_root / 'images'})")


def list_images(folder: str | Path) -> list[Path]:
    """Every PNG/JPEG/BMP/TIFF under `folder`, recursively, sorted; a one-line error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"not a folder: {folder}")
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in LDR_SUFFIXES)
    if not files:
        raise UserError(f"no images ({', '.join(LDR_SUFFIXES)}) in {folder}")
    return files


def check_readable(folder: str | Path) -> list[Path]:
    """`list_images(folder)`, refused in one line unless at least one image decodes: a command checks its folders
    with this before it writes anything (decoding stops at the first image that reads)."""
    files, first = list_images(folder), None
    for f in files:
        try:
            read_ldr(f)
            return files
        except UserError as e:
            first = first or e
    raise UserError(f"no readable images in {folder} ({len(files)} unreadable; the first: {first})")


def load_image(path: str | Path) -> torch.Tensor:
    """(3, H, W) float32 in [0, 1], 8- or 16-bit at full precision; a UserError naming the file it cannot read."""
    return torch.from_numpy(read_ldr(path)).permute(2, 0, 1).contiguous()


def quantise(img: torch.Tensor) -> torch.Tensor:
    """A [0, 1] image as the integers it was read from: uint8 when that is exact (8-bit files, and 16-bit ones that
    hold only 8-bit values), else uint16 (16-bit files). A training pool keeps its images this way."""
    q8 = img * 255.0
    if (q8 - q8.round()).abs().max() < 1e-3:  # x / 255 in float32, times 255: within 1e-4 of x
        return (q8 + 0.5).clamp(0, 255).to(torch.uint8)
    return (img * 65535.0 + 0.5).clamp(0, 65535).to(torch.int32).to(torch.uint16)


def dequantise(q: torch.Tensor) -> torch.Tensor:
    """float32 in [0, 1] from `quantise`'s integers."""
    return q.float() / (255.0 if q.dtype == torch.uint8 else 65535.0)


def _image_size(path: Path) -> tuple[int, int] | None:
    """(h, w) from the header, or None (with a warning naming the file) when it is not a readable image."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
        return h, w
    except Exception as e:  # PIL raises several types for broken files (a decompression bomb too)
        warnings.warn(f"skipping unreadable image {path}: {e}", stacklevel=3)
        return None


def pad_to(img: torch.Tensor, size: int) -> torch.Tensor:
    """Pad a CHW image to at least size x size: reflect where it can, edge-replicate where it is too small."""
    h, w = img.shape[-2:]
    ph, pw = max(0, size - h), max(0, size - w)
    if not (ph or pw):
        return img
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    mode = "reflect" if max(pad[0], pad[1]) < w and max(pad[2], pad[3]) < h else "replicate"
    return F.pad(img[None], pad, mode=mode)[0]


class ImageFolder:
    """Random training crops from every image under a folder.

    Images are decoded once and kept in memory as uint8, 16-bit ones as uint16 (`quantise`; the pool here is ~500
    images). Unreadable files are
    skipped with a warning naming them. Images smaller than the crop are skipped with a warning (padding a
    small image up to 256x256 would teach the network about mirrored borders), unless every image is small,
    in which case they are padded instead.
    """

    def __init__(self, folder: str | Path, crop: int, small: str = "skip"):
        self.folder, self.crop = Path(folder), crop
        files = list_images(self.folder)
        sized = [(f, s) for f in files if (s := _image_size(f)) is not None]
        if not sized:
            raise UserError(f"no readable images in {self.folder}")
        big = [f for f, (h, w) in sized if h >= crop and w >= crop]
        small_ones = len(sized) - len(big)
        if small == "skip" and big:
            if small_ones:
                warnings.warn(f"{self.folder}: skipping {small_ones} image(s) smaller than the {crop}x{crop} crop",
                              stacklevel=2)
            self.files = big
            sizes = [s for _, s in sized if s[0] >= crop and s[1] >= crop]
        else:
            if small_ones:
                warnings.warn(f"{self.folder}: padding {small_ones} image(s) smaller than the {crop}x{crop} crop",
                              stacklevel=2)
            self.files = [f for f, _ in sized]
            sizes = [s for _, s in sized]
        # Crops are drawn uniformly over all pixels of the pool, so an image is picked in proportion to its
        # area: a 180x180 crop of a photo does not weigh as much as a 1500x1000 photo.
        self.weights = torch.tensor([max(h, crop) * max(w, crop) for h, w in sizes], dtype=torch.float64)
        self._cache: dict[Path, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.files)

    def image(self, i: int) -> torch.Tensor | None:
        """Image i as uint8 (or uint16) CHW (decoded on first use), or None if it cannot be decoded."""
        f = self.files[i]
        if f not in self._cache:
            try:
                img = pad_to(load_image(f), self.crop)
            except UserError as e:
                warnings.warn(f"skipping unreadable image: {e}", stacklevel=2)
                return None
            self._cache[f] = quantise(img)
        return self._cache[f]

    def crop_at(self, i: int, gen: torch.Generator) -> torch.Tensor:
        """A random crop x crop window of image i (or of the next decodable one), float32 in [0, 1]."""
        for k in range(len(self.files)):
            img = self.image((i + k) % len(self.files))
            if img is not None:
                break
        else:
            raise UserError(f"no decodable images in {self.folder}")
        _, h, w = img.shape
        y = int(torch.randint(0, h - self.crop + 1, (1,), generator=gen))
        x = int(torch.randint(0, w - self.crop + 1, (1,), generator=gen))
        return dequantise(img[:, y:y + self.crop, x:x + self.crop])

    def batch(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """n random crops of images picked in proportion to their area: (n, 3, crop, crop)."""
        idx = torch.multinomial(self.weights, n, replacement=True, generator=gen).tolist()
        return torch.stack([self.crop_at(i, gen) for i in idx])


def center_crop(img: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        return img
    h, w = img.shape[-2:]
    ch, cw = min(h, size), min(w, size)
    top, left = (h - ch) // 2, (w - cw) // 2
    return img[..., top:top + ch, left:left + cw]


def load_eval_folder(folder: str | Path, max_images: int | None = None,
                     crop: int | None = None) -> list[tuple[str, torch.Tensor]]:
    """[(file name, (3, H, W) image)] for the first `max_images` readable images, centre-cropped to `crop`."""
    out = []
    for f in list_images(folder):
        if max_images is not None and len(out) >= max_images:
            break
        try:
            out.append((f.name, center_crop(load_image(f), crop)))
        except UserError as e:
            warnings.warn(f"skipping unreadable image: {e}", stacklevel=2)
    if not out:
        raise UserError(f"no readable images in {folder}")
    return out
