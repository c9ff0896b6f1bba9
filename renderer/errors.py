"""The one error type the renderer raises for a user's mistake (bad scene name, file, XML, variant)."""

from __future__ import annotations


class SceneError(ValueError):
    """A user-facing problem with a scene or renderer setting.

    The message is a single line that names the problem and, where there is one, the file: CLIs print it on
    stderr and exit with status 2 instead of showing a traceback. Newlines and runs of whitespace in the
    message (Mitsuba's parser errors span several lines) are folded into single spaces.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
