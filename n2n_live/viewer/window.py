"""The GLFW window with an OpenGL 3.3 core context and Dear ImGui (imgui-bundle's pure-Python GLFW backend)."""
from __future__ import annotations

import os
import sys

import glfw  # import glfw before imgui_bundle so that the standard glfw module is the one in use
import OpenGL.GL as gl
from imgui_bundle import imgui, implot
from imgui_bundle.python_backends.glfw_backend import GlfwRenderer

from ..errors import UserError


def display_available() -> bool:
    """True if a window can be opened here (a display server is reachable and GLFW initialises)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        ok = glfw.init()
    except Exception:
        return False
    return bool(ok)


class Window:
    """Owns the GLFW window, the GL context and the ImGui/ImPlot contexts (main thread only)."""

    def __init__(self, width: int, height: int, title: str = "n2n-live"):
        glfw.set_error_callback(None)
        if not glfw.init():
            raise UserError("cannot open a window: GLFW failed to initialise (no display?)")
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        self.handle = glfw.create_window(int(width), int(height), title, None, None)
        if not self.handle:
            glfw.terminate()
            raise UserError("cannot open a window: no OpenGL 3.3 core context (is Mesa or a GPU driver installed?)")
        glfw.make_context_current(self.handle)
        glfw.swap_interval(0)  # rendering paces the loop; never wait for vsync on top of it
        self.gl_version = gl.glGetString(gl.GL_VERSION).decode(errors="replace")
        self.gl_renderer = gl.glGetString(gl.GL_RENDERER).decode(errors="replace")
        imgui.create_context()
        implot.create_context()
        imgui.get_io().set_ini_filename(None)  # never write imgui.ini into the user's folder
        self.imgui = GlfwRenderer(self.handle)
        self._closed = False

    # -- frame ------------------------------------------------------------------------------------------------
    def poll(self) -> None:
        glfw.poll_events()
        self.imgui.process_inputs()

    def should_close(self) -> bool:
        return bool(glfw.window_should_close(self.handle))

    def request_close(self) -> None:
        glfw.set_window_should_close(self.handle, True)

    def framebuffer_size(self) -> tuple[int, int]:
        return glfw.get_framebuffer_size(self.handle)

    def window_size(self) -> tuple[int, int]:
        return glfw.get_window_size(self.handle)

    def cursor_pos(self) -> tuple[float, float]:
        return glfw.get_cursor_pos(self.handle)

    def render_imgui(self) -> None:
        imgui.render()
        self.imgui.render(imgui.get_draw_data())

    def swap(self) -> None:
        glfw.swap_buffers(self.handle)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.imgui.shutdown()
            implot.destroy_context()
            imgui.destroy_context()
        finally:
            glfw.destroy_window(self.handle)
            glfw.terminate()
