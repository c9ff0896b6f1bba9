"""The ImGui side: one small class per panel (stylegan3-visualizer style), the image overlay and the message log.

Panels read the `Viewer` (app.py) and call its actions; a user mistake becomes a red line in the Messages panel
(and a banner over the image), never a crash.
"""
from __future__ import annotations

import math
import sys
import time
from collections import deque

import numpy as np
from imgui_bundle import imgui, implot

from ..live import oidn
from ..models import MODEL_CHOICES
from .modes import MODE_LABELS, MODES, SOURCES

RED = imgui.ImVec4(1.0, 0.42, 0.38, 1.0)
YELLOW = imgui.ImVec4(1.0, 0.85, 0.35, 1.0)
GREY = imgui.ImVec4(0.65, 0.65, 0.68, 1.0)
OPEN = imgui.TreeNodeFlags_.default_open


def _u32(r, g, b, a=1.0) -> int:
    return imgui.get_color_u32(imgui.ImVec4(r, g, b, a))


def _fmt(v, unit: str = "", digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}{unit}"


def _fit(text: str, width: float) -> str:
    """`text`, shortened with '...' to fit `width` pixels in the current font."""
    if imgui.calc_text_size(text).x <= width:
        return text
    while len(text) > 4 and imgui.calc_text_size(text + "...").x > width:
        text = text[: max(4, int(len(text) * 0.9))]
    return text + "..."


class Messages:
    """Recent info/warning/error lines for the UI."""

    def __init__(self, keep: int = 50):
        self.items: deque[tuple[float, str, str]] = deque(maxlen=keep)

    def _add(self, level: str, text: str) -> None:
        self.items.append((time.monotonic(), level, text))
        if level != "info":  # also on the terminal: a log survives the window
            print(f"n2n-live: {'error' if level == 'error' else 'warning'}: {text}", file=sys.stderr, flush=True)

    def info(self, text: str) -> None:
        self._add("info", text)

    def warn(self, text: str) -> None:
        self._add("warn", text)

    def error(self, text: str) -> None:
        self._add("error", text)

    def last_error(self, within_s: float) -> str | None:
        now = time.monotonic()
        for t, level, text in reversed(self.items):
            if level == "error" and now - t <= within_s:
                return text
        return None


# ---------------------------------------------------------------------------------------------- panels
class StatsPanel:
    def draw(self, v) -> None:
        tr = v.loop.trainer
        st = tr.stats
        r = v.result
        fps = v.history.recent_fps()
        imgui.text(f"{_fmt(fps, ' fps')}   frame {v.rendered}   {v.render_size[0]}x{v.render_size[1]}   "
                   f"{v.spp()} spp x 2")
        imgui.text(f"render {_fmt(getattr(r, 'render_ms', None), ' ms', 0)}   "
                   f"inference {_fmt(getattr(r, 'infer_ms', None), ' ms', 0)}   "
                   f"train {_fmt(st.get('train_ms'), ' ms', 0)}")
        state = "paused" if tr.paused else "running"
        imgui.text(f"training {state}: {st.get('steps', 0)} steps ({_fmt(v.steps_rate.rate(), '/s')}), "
                   f"loss {_fmt(st.get('last_loss'), '', 4)}")
        if st.get("skipped"):
            imgui.same_line()
            imgui.text_colored(YELLOW, f"({st['skipped']} skipped)")
        avail = imgui.get_content_region_avail().x
        hist = st.get("loss_history") or []
        flags = implot.Flags_.no_menus | implot.Flags_.no_box_select
        if implot.begin_plot("##loss", imgui.ImVec2(avail, 110), flags | implot.Flags_.no_legend):
            implot.setup_axes("step", "loss (L_HDR)", implot.AxisFlags_.auto_fit, implot.AxisFlags_.auto_fit)
            implot.setup_axis_scale(implot.ImAxis_.y1, implot.Scale_.log10)
            if hist:
                a = np.asarray(hist, dtype=np.float64)
                a = a[np.isfinite(a[:, 1]) & (a[:, 1] > 0)]
                if len(a):
                    implot.plot_line("loss", np.ascontiguousarray(a[:, 0]), np.ascontiguousarray(a[:, 1]))
            implot.end_plot()
        if implot.begin_plot("##psnr", imgui.ImVec2(avail, 120), flags):
            implot.setup_axes("frame", "PSNR (dB)", implot.AxisFlags_.auto_fit, implot.AxisFlags_.auto_fit)
            implot.setup_legend(implot.Location_.south_east)
            for key, label in (("psnr_input_ref", "input (pair)"), ("psnr_denoised_ref", "denoised"),
                               ("psnr_input", "input (ref render)"), ("psnr_denoised", "denoised (ref render)")):
                xs, ys = v.history.series(key)
                if len(xs):
                    implot.plot_line(label, xs, ys)
            implot.end_plot()


class DisplayPanel:
    def draw(self, v) -> None:
        imgui.set_next_item_width(-90)
        changed, idx = imgui.combo("mode (1-7)", MODES.index(v.mode), [MODE_LABELS[m] for m in MODES])
        if changed:
            v.set_mode(MODES[idx])
        names = [n for n in SOURCES if n != "oidn" or oidn.available()]
        labels = [SOURCES[n].label for n in names]
        if v.mode == "split":
            for side in ("split_left", "split_right"):
                cur = getattr(v, side)
                imgui.set_next_item_width(-90)
                changed, idx = imgui.combo("left" if side == "split_left" else "right", names.index(cur) if cur in names else 0, labels)
                if changed:
                    setattr(v, side, names[idx])
            imgui.set_next_item_width(-90)
            _, v.split_pos = imgui.slider_float("divider", v.split_pos, 0.0, 1.0, "%.2f")
            if not oidn.available():
                imgui.text_colored(GREY, "OIDN: pip install pyoidn to compare")
        imgui.set_next_item_width(-90)
        _, v.exposure_ev = imgui.slider_float("exposure", v.exposure_ev, -8.0, 8.0, "%+.1f EV")
        if v.mode == "error" or (v.mode == "split" and "error" in (v.split_left + v.split_right)):
            imgui.set_next_item_width(-90)
            _, v.heat_gain = imgui.slider_float("heat gain", v.heat_gain, 0.5, 32.0, "x%.1f", imgui.SliderFlags_.logarithmic)
        _, v.smooth = imgui.checkbox("bilinear", v.smooth)
        imgui.same_line()
        if imgui.button("screenshot (F12)"):
            v.request_screenshot()


class CameraPanel:
    def __init__(self):
        self.path_text = "out/keyframes.json"

    def draw(self, v) -> None:
        if imgui.button("pause path (P)" if v.playing else "play path (P)"):
            v.toggle_playing()
        imgui.same_line()
        if imgui.button("reset view (R)"):
            v.reset_view()
        imgui.same_line()
        imgui.text(f"frame {v.path_frame:.0f}")
        if imgui.radio_button("scene fly-through", v.path_source == "scene"):
            v.path_source = "scene"
        imgui.same_line()
        if imgui.radio_button(f"recorded ({len(v.recorder)} keys)", v.path_source == "recorded"):
            v.path_source = "recorded"
        imgui.set_next_item_width(-90)
        _, v.fly.speed = imgui.slider_float("speed", v.fly.speed, 1e-3, 100.0, "%.3f /s", imgui.SliderFlags_.logarithmic)
        imgui.set_next_item_width(-90)
        changed, fov = imgui.slider_float("fov", v.fly.fov_deg, 5.0, 120.0, "%.0f deg")
        if changed:
            v.fly.fov_deg = fov
            v.playing = False
        imgui.text_colored(GREY, "WASD/QE move (Shift x4), drag to look")
        if imgui.button("add keyframe (K)"):
            v.add_keyframe()
        imgui.same_line()
        if imgui.button("undo"):
            v.recorder.remove_last()
        imgui.same_line()
        if imgui.button("clear"):
            v.recorder.clear()
        imgui.set_next_item_width(-90)
        _, v.recorder.frames_per_loop = imgui.slider_int("frames/loop", v.recorder.frames_per_loop, 10, 2000)
        imgui.set_next_item_width(-90)
        _, self.path_text = imgui.input_text("path file", self.path_text)
        if imgui.button("save path"):
            if v.attempt("save keyframes", lambda: (v.recorder.save(self.path_text), True)[1]):
                v.messages.info(f"saved {len(v.recorder)} keyframes to {self.path_text}")
        imgui.same_line()
        if imgui.button("load path"):
            rec = v.attempt("load keyframes", _load_keyframes, self.path_text)
            if rec is not None:
                v.recorder = rec
                v.path_source, v.path_frame, v.playing = "recorded", 0.0, True
                v.messages.info(f"loaded {len(rec)} keyframes from {self.path_text}")


def _load_keyframes(path):
    from .keyframes import KeyframeRecorder

    return KeyframeRecorder.load(path)


class TrainingPanel:
    def __init__(self):
        self.ckpt_text = "out/viewer.ckpt"

    def draw(self, v) -> None:
        tr = v.loop.trainer
        if imgui.button("resume training (T)" if tr.paused else "pause training (T)"):
            v.toggle_training()
        imgui.same_line()
        if imgui.button("reset network"):
            v.attempt("reset", tr.reset)
            v.messages.info("network reset to a fresh initialisation")
        imgui.set_next_item_width(-110)
        changed, n = imgui.slider_int("iters/frame", int(tr.iters_per_frame), 0, 32)
        if changed:
            tr.iters_per_frame = n
        _, v.pace = imgui.checkbox("pace: next frame when its iterations are done", v.pace)
        if imgui.is_item_hovered():
            imgui.set_tooltip("every frame gets iters/frame training steps (the paper's fly-through);\n"
                              "off: render continuously, the display never waits for training")
        imgui.set_next_item_width(-110)
        changed, c = imgui.slider_int("crop", int(tr.crop), 32, 512)
        if changed:
            tr.crop = c
        imgui.set_next_item_width(-110)
        changed, lr = imgui.slider_float("learning rate", float(tr.lr), 1e-5, 1e-2, "%.1e", imgui.SliderFlags_.logarithmic)
        if changed:
            tr.set_lr(lr)
        imgui.set_next_item_width(-110)
        changed, spp = imgui.slider_int("spp", v.spp(), 1, 64)
        if changed:
            v.set_spp(spp)
        self._draw_model(v)
        imgui.set_next_item_width(-110)
        _, self.ckpt_text = imgui.input_text("checkpoint", self.ckpt_text)
        if imgui.button("save network"):
            if v.attempt("save network", lambda: (tr.save(self.ckpt_text), True)[1]):
                v.messages.info(f"saved the network to {self.ckpt_text}")
        imgui.same_line()
        if imgui.button("load network"):
            if v.attempt("load network", lambda: (tr.load(self.ckpt_text), True)[1]):
                v.messages.info(f"loaded the network from {self.ckpt_text}")


    @staticmethod
    def _draw_model(v) -> None:
        """Model and temporal reuse (issue 10): changing either starts a fresh network."""
        cfg = v.loop.cfg
        names = list(MODEL_CHOICES)
        imgui.set_next_item_width(-110)
        changed, i = imgui.combo("model", names.index(cfg.model), names)
        model = names[i] if changed else cfg.model
        imgui.same_line()
        t_changed, temporal = imgui.checkbox("temporal", cfg.temporal)
        if imgui.is_item_hovered():
            imgui.set_tooltip("accumulate each noisy image over frames in its own reprojected history")
        if (changed and model != cfg.model) or t_changed:
            if v.attempt("switch model", lambda: (v.loop.set_denoiser(model, temporal), True)[1]):
                v.messages.info(f"fresh '{model}' network, temporal {'on' if temporal else 'off'}")


class ReferencePanel:
    def draw(self, v) -> None:
        ref = v.reference
        imgui.text(f"still for {ref.still_frames} frames: streams A, B {ref.stream_spp} spp each")
        if ref.spp:
            imgui.text(f"progressive reference: {ref.spp} spp ({ref.images} images)")
        else:
            imgui.text("progressive reference: none")
        pin, pden = v.psnr_ref
        imgui.text(f"PSNR input {_fmt(pin, ' dB', 2)}   denoised {_fmt(pden, ' dB', 2)}")
        if ref.spp and pin is None:
            imgui.text_colored(GREY, f"(PSNR once the reference has {ref.min_ratio:.0f}x the input's samples)")
        r = v.result
        if r is not None and getattr(r, "psnr_input", None) is not None:
            imgui.text(f"vs rendered reference: input {_fmt(r.psnr_input, ' dB', 2)}, "
                       f"denoised {_fmt(getattr(r, 'psnr_denoised', None), ' dB', 2)}")
            if getattr(r, "psnr_oidn", None) is not None:
                imgui.text(f"OIDN {_fmt(r.psnr_oidn, ' dB', 2)}")
        imgui.text_colored(GREY, "still camera: the newest frames form the two streams (trained on, denoised),\n"
                                 "older ones the reference: they never share samples")


class ScenePanel:
    def __init__(self, scene: str = ""):
        self.scene_text = scene

    def draw(self, v) -> None:
        imgui.set_next_item_width(-60)
        entered, self.scene_text = imgui.input_text("##scene", self.scene_text, imgui.InputTextFlags_.enter_returns_true)
        imgui.same_line()
        if imgui.button("load") or entered:
            v.load_scene(self.scene_text)
        imgui.text_colored(GREY, "bundled name or Mitsuba 3 XML path")
        auto = v.auto_size and not v.render_follow
        if imgui.radio_button("auto", auto):
            v.auto_size, v.render_follow = True, False
            v.autosize.hold()
        imgui.same_line()
        if imgui.radio_button("fixed size", not auto and not v.render_follow):
            v.pin_size()
        imgui.same_line()
        if imgui.radio_button("window x scale", v.render_follow):
            v.render_follow = True
        if auto:
            a = v.autosize
            imgui.set_next_item_width(-90)
            changed, fps = imgui.slider_float("target fps", a.target_fps, 0.5, 60.0, "%.1f", imgui.SliderFlags_.logarithmic)
            if changed:
                a.target_fps = fps
            (lw, lh), (hw, hh) = a.bounds
            imgui.text(f"{v.render_size[0]}x{v.render_size[1]} (from {lw}x{lh} to {hw}x{hh})")
            imgui.same_line()
            if imgui.small_button("pin"):
                v.pin_size()
                v.messages.info(f"render size pinned at {v.render_size[0]}x{v.render_size[1]}")
        elif v.render_follow:
            imgui.set_next_item_width(-90)
            _, v.render_scale = imgui.slider_float("render scale", v.render_scale, 0.05, 1.0, "%.2f")
        else:
            imgui.set_next_item_width(-90)
            changed, wh = imgui.input_int2("WxH", list(v.render_size), imgui.InputTextFlags_.enter_returns_true)
            if changed:
                v.set_render_size(*wh)
        if not v.rendering and imgui.button("retry rendering"):
            v.retry_rendering()


class MessagesPanel:
    def draw(self, v) -> None:
        items = list(v.messages.items)[-8:]
        if not items:
            imgui.text_colored(GREY, "no messages")
        for _, level, text in items:
            col = RED if level == "error" else YELLOW if level == "warn" else GREY
            imgui.push_text_wrap_pos(0.0)
            imgui.text_colored(col, text)
            imgui.pop_text_wrap_pos()
        if items and imgui.small_button("clear messages"):
            v.messages.items.clear()


class SidePanel:
    """The controls, docked to the right edge of the window, full height, scrolling when needed."""

    WIDTH = 400

    def __init__(self):
        self.sections = [
            ("Statistics", StatsPanel(), True),
            ("Display", DisplayPanel(), True),
            ("Training", TrainingPanel(), True),
            ("Camera", CameraPanel(), True),
            ("Reference", ReferencePanel(), True),
            ("Scene and render size", None, False),
            ("Messages", MessagesPanel(), True),
        ]
        self._scene_panel = None

    def width(self, window_width: int) -> int:
        return int(min(self.WIDTH, max(240, window_width * 0.4)))

    def draw(self, v) -> None:
        if self._scene_panel is None:
            self._scene_panel = ScenePanel(v.cfg.scene)
        ww, wh = v.window.window_size()
        pw = self.width(ww)
        imgui.set_next_window_pos(imgui.ImVec2(ww - pw, 0), imgui.Cond_.always)
        imgui.set_next_window_size(imgui.ImVec2(pw, wh), imgui.Cond_.always)
        flags = (imgui.WindowFlags_.no_move | imgui.WindowFlags_.no_resize | imgui.WindowFlags_.no_collapse
                 | imgui.WindowFlags_.no_saved_settings)
        imgui.begin("n2n-live: Noise2Noise, trained live", None, flags)
        for title, panel, default_open in self.sections:
            panel = panel or self._scene_panel
            if imgui.collapsing_header(title, OPEN if default_open else 0):
                imgui.push_id(title)
                panel.draw(v)
                imgui.pop_id()
        imgui.end()


class Overlay:
    """Labels drawn over the image: what is shown, the split divider, and the latest error as a banner."""

    def draw(self, v, typing: bool = False) -> None:
        dl = imgui.get_background_draw_list()
        x, y, w, h = v.image_rect
        ax, ay, aw, ah = v.image_area
        if v.result is None:
            dl.add_text(imgui.ImVec2(ax + 12, ay + 12), _u32(1, 1, 1), "rendering the first frame ...")
        if v.mode == "split":
            dx = x + v.split_pos * w
            dl.add_line(imgui.ImVec2(dx, y), imgui.ImVec2(dx, y + h), _u32(1, 1, 1, 0.9), 2.0)
            dl.add_circle_filled(imgui.ImVec2(dx, y + h / 2), 6.0, _u32(1, 1, 1, 0.9))
            self._label(dl, x + 8, y + 8, SOURCES[v.split_left].label)
            right = SOURCES[v.split_right].label
            tw = imgui.calc_text_size(right).x
            self._label(dl, x + w - tw - 16, y + 8, right)
        label = MODE_LABELS[v.mode][2:]
        tr = v.loop.trainer
        w, h = v.render_size
        sizing = (f"auto {v.autosize.target_fps:g} fps" if v.auto_size and not v.render_follow else
                  "window x scale" if v.render_follow else "pinned")
        status = (f"{label}   |   {v.preset} preset{' (CUDA)' if v.preset == 'gpu' else ' (no CUDA)' if v.preset_auto else ''}"
                  f"   |   {w}x{h} {sizing}   |   training {'paused' if tr.paused else 'on'}, "
                  f"{tr.stats.get('steps', 0)} steps")
        if v.playing:
            status += "   |   fly-through"
        if typing:
            status += "   |   rendering paused while typing"
        if not v.rendering:
            status += "   |   rendering stopped"
        elif v.waiting_for_training:
            status += "   |   paced: waiting for training"
        self._label(dl, ax + 8, ay + ah - 26, status)
        err = v.messages.last_error(within_s=8.0)
        if err:
            err = _fit(err, aw - 24)  # the panel would hide the rest: the Messages panel has the full text
            self._label(dl, ax + 8, ay + 36 if v.mode == "split" else ay + 8, err, fg=_u32(1, 0.5, 0.45), bg=_u32(0.2, 0, 0, 0.85))

    @staticmethod
    def _label(dl, x, y, text, fg=None, bg=None) -> None:
        size = imgui.calc_text_size(text)
        dl.add_rect_filled(imgui.ImVec2(x - 4, y - 2), imgui.ImVec2(x + size.x + 4, y + size.y + 2),
                           bg if bg is not None else _u32(0, 0, 0, 0.6), 3.0)
        dl.add_text(imgui.ImVec2(x, y), fg if fg is not None else _u32(1, 1, 1), text)
