"""Keyboard and mouse, read from ImGui's IO once per UI frame.

    Esc quit   F12 screenshot   1-7 display mode   T pause/resume training   P or Space play/pause the path
    K add keyframe   R reset view   WASD move, Q/E down/up (Shift x4)   drag in the image: look around
    mouse wheel over the image: fly speed   split view: drag the divider

Keys go to the viewer only while no ImGui widget wants the keyboard (typing a path must not move the camera).
Moving or turning the camera stops the fly-through: the user took the camera.
"""
from __future__ import annotations

from imgui_bundle import imgui

from .modes import MODES

SHIFT_BOOST = 4.0  # Shift multiplies the fly speed
WHEEL_STEP = 1.25  # one wheel notch multiplies or divides the fly speed by this
DIVIDER_GRAB_PX = 8.0  # how close to the split divider a click grabs it
MAX_DT_S = 0.5  # a slow frame moves the camera at most this many seconds' worth


class Controls:
    """Turns key and mouse state into viewer actions. Keeps only the state of a drag in progress."""

    def __init__(self):
        self.looking = False  # a mouse-look drag is in progress (continues when the cursor leaves the image)
        self.dragging_divider = False

    def hotkeys(self, v, io) -> None:
        if imgui.is_key_pressed(imgui.Key.escape, False) and not io.want_text_input:
            v.quit = True
        if imgui.is_key_pressed(imgui.Key.f12, False):
            v.request_screenshot()
        if io.want_capture_keyboard:
            return
        for i, mode in enumerate(MODES):
            if imgui.is_key_pressed(getattr(imgui.Key, f"_{i + 1}"), False):
                v.set_mode(mode)
        if imgui.is_key_pressed(imgui.Key.t, False):
            v.toggle_training()
        if imgui.is_key_pressed(imgui.Key.p, False) or imgui.is_key_pressed(imgui.Key.space, False):
            v.toggle_playing()
        if imgui.is_key_pressed(imgui.Key.k, False):
            v.add_keyframe()
        if imgui.is_key_pressed(imgui.Key.r, False):
            v.reset_view()

    def camera(self, v, io) -> None:
        dt = min(max(io.delta_time, 1e-3), MAX_DT_S)  # seconds since the last UI frame
        moved = False
        if not io.want_capture_keyboard:
            def axis(pos, neg):
                return float(imgui.is_key_down(pos)) - float(imgui.is_key_down(neg))

            fwd, right = axis(imgui.Key.w, imgui.Key.s), axis(imgui.Key.d, imgui.Key.a)
            up = axis(imgui.Key.e, imgui.Key.q)
            moved = v.fly.move(fwd, right, up, dt * (SHIFT_BOOST if io.key_shift else 1.0))

        x, y, w, h = v.image_rect
        mx, my = io.mouse_pos.x, io.mouse_pos.y
        inside = x <= mx < x + w and y <= my < y + h and not io.want_capture_mouse
        if inside and io.mouse_wheel:
            v.fly.speed = min(1e3, max(1e-4, v.fly.speed * WHEEL_STEP ** io.mouse_wheel))

        # the split divider: grab it near the line, follow the mouse while the button is held
        left_click = imgui.is_mouse_clicked(imgui.MouseButton_.left)
        if v.mode == "split" and inside and left_click and abs(mx - (x + v.split_pos * w)) < DIVIDER_GRAB_PX:
            self.dragging_divider = True
        if self.dragging_divider:
            if imgui.is_mouse_down(imgui.MouseButton_.left):
                v.split_pos = min(1.0, max(0.0, (mx - x) / max(w, 1.0)))
            else:
                self.dragging_divider = False
        # mouse-look: drag with either button, starting inside the image
        elif (inside or self.looking) and (imgui.is_mouse_down(imgui.MouseButton_.left)
                                           or imgui.is_mouse_down(imgui.MouseButton_.right)):
            self.looking = True
            d = io.mouse_delta
            if abs(d.x) < 1e4 and abs(d.y) < 1e4:  # the first event after the cursor entered gives a huge delta
                moved |= v.fly.look(d.x, d.y)
        else:
            self.looking = False
        if moved and v.playing:
            v.playing = False  # the user took the camera
