"""Small synthetic data for the experiment tests: image folders and a NIfTI head volume."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def nifti_volume(path: Path, shape=(40, 44, 30), empty=(0, 1, 2, 27, 28, 29)):
    import nibabel as nib

    vol = np.zeros(shape, np.float32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    head = ((yy - shape[0] / 2) ** 2 / (0.4 * shape[0]) ** 2 + (xx - shape[1] / 2) ** 2 / (0.4 * shape[1]) ** 2) < 1
    for z in range(shape[2]):
        if z not in empty:
            vol[:, :, z] = head * (60 + 40 * np.sin(yy / 3.0 + z) * np.cos(xx / 4.0))
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(path))
    return path


def image_folder(folder: Path, n: int, size=(48, 56), mode="RGB", suffix=".png", seed=0):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = size + ((3,) if mode == "RGB" else ())
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8), mode).save(folder / f"img{i}{suffix}")
    return folder
