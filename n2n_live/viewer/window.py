"""The GLFW window with an OpenGL 3.3 core context and Dear ImGui (imgui-bundle's pure-Python GLFW backend)."""
from __future__ import annotations

import glfw  # import glfw before imgui_bundle so that the standard glfw module is the one in use
import OpenGL.GL as gl
from imgui_bundle import imgui, implot
from imgui_bundle.python_backends.glfw_backend import GlfwRenderer

from ..errors import UserError

BACKGROUND = (0.08, 0.08, 0.09, 1.0)  # the window around and behind the image


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
        self.events = 0  # input/window events so far: an idle viewer redraws when this changes
        self._count_events()
        self._closed = False

    def _count_events(self) -> None:
        """Wrap the backend's GLFW callbacks (and add a close callback) so that every event bumps `events`."""
        def counting(previous):
            def callback(*args):
                self.events += 1
                if previous is not None:
                    previous(*args)
            return callback

        for setter in (glfw.set_key_callback, glfw.set_char_callback, glfw.set_cursor_pos_callback,
                       glfw.set_mouse_button_callback, glfw.set_scroll_callback, glfw.set_window_size_callback,
                       glfw.set_window_close_callback, glfw.set_cursor_enter_callback):
            previous = setter(self.handle, None)
            setter(self.handle, counting(previous))

    # -- frame ------------------------------------------------------------------------------------------------
    def poll(self) -> None:
        glfw.poll_events()
        self.imgui.process_inputs()

    def wait(self, timeout: float) -> None:
        """Sleep until an event arrives or `timeout` seconds pass (events are handled by the callbacks as usual)."""
        if timeout > 0:
            glfw.wait_events_timeout(timeout)

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

    def clear(self) -> tuple[int, int]:
        """Viewport over the whole framebuffer, cleared to the background; returns the framebuffer size."""
        fb_w, fb_h = self.framebuffer_size()
        gl.glViewport(0, 0, fb_w, fb_h)
        gl.glClearColor(*BACKGROUND)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT)
        return fb_w, fb_h

    def show_text(self, text: str) -> None:
        """One frame with a line of text and nothing else (while the scene loads)."""
        self.poll()
        imgui.new_frame()
        imgui.get_background_draw_list().add_text(imgui.ImVec2(20, 20), 0xFFFFFFFF, text)
        self.clear()
        self.render_imgui()
        self.swap()

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
