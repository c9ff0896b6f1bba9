"""Record a camera path as keyframes, save and load it as JSON, play it back through `CameraPath`.

File format (`n2n-live-keyframes`, version 1)::

    {"format": "n2n-live-keyframes", "version": 1, "frames_per_loop": 240,
     "keyframes": [{"origin": [x, y, z], "target": [x, y, z], "up": [x, y, z], "fov_deg": 40.0}, ...]}
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from renderer.camera import Camera, CameraPath

from ..errors import UserError
from ..io_utils import write_json

FORMAT = "n2n-live-keyframes"


class KeyframeRecorder:
    """An editable list of keyframes and the loop length used to play them back."""

    def __init__(self, keyframes=(), frames_per_loop: int = 240):
        self.keyframes: list[Camera] = list(keyframes)
        self.frames_per_loop = int(frames_per_loop)

    def __len__(self) -> int:
        return len(self.keyframes)

    def add(self, cam: Camera) -> None:
        self.keyframes.append(Camera(cam.origin.copy(), cam.target.copy(), cam.up.copy(), cam.fov_deg))

    def remove_last(self) -> None:
        if self.keyframes:
            self.keyframes.pop()

    def clear(self) -> None:
        self.keyframes.clear()

    def path(self) -> CameraPath:
        """The looping path through the keyframes (at least one keyframe needed)."""
        if not self.keyframes:
            raise UserError("no keyframes recorded: add some with K or 'Add keyframe' first")
        return CameraPath(self.keyframes, max(1, self.frames_per_loop))

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": 1,
            "frames_per_loop": self.frames_per_loop,
            "keyframes": [
                {"origin": k.origin.tolist(), "target": k.target.tolist(), "up": k.up.tolist(), "fov_deg": k.fov_deg}
                for k in self.keyframes
            ],
        }

    def save(self, path) -> None:
        if not self.keyframes:
            raise UserError(f"{path}: nothing to save, no keyframes recorded")
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> "KeyframeRecorder":
        """Read a keyframe file; any problem is a UserError that names the file."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such keyframe file")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: not a readable JSON file ({e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("keyframes"), list):
            raise UserError(f"{path}: not a keyframe file (expected an object with a 'keyframes' list)")
        keys = []
        for i, k in enumerate(data["keyframes"]):
            try:
                keys.append(Camera(np.asarray(k["origin"], float), np.asarray(k["target"], float),
                                   np.asarray(k.get("up", [0.0, 1.0, 0.0]), float), float(k.get("fov_deg", 45.0))))
            except (KeyError, TypeError, ValueError) as e:
                raise UserError(f"{path}: keyframe {i} is invalid ({e})") from None
        if not keys:
            raise UserError(f"{path}: the file holds no keyframes")
        try:
            frames = int(data.get("frames_per_loop", 240))
        except (TypeError, ValueError):
            raise UserError(f"{path}: frames_per_loop must be an integer") from None
        if frames < 1:
            raise UserError(f"{path}: frames_per_loop must be >= 1, not {frames}")
        return cls(keys, frames)
