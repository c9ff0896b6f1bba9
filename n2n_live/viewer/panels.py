"""The ImGui side: one small class per panel (stylegan3-visualizer style) and the overlay over the image.

Panels read the `Viewer` (app.py) and call its actions; a user mistake becomes a red line in the Messages panel
(messages.py) and a banner over the image, never a crash.
"""
from __future__ import annotations

import numpy as np
from imgui_bundle import imgui, implot

from ..live import oidn
from ..models import MODEL_CHOICES
from ..numbers import fmt
from .keyframes import KeyframeRecorder
from .modes import MODE_LABELS, MODES, OIDN_SOURCES, SOURCES
from .size_policy import AUTO, FIXED, WINDOW

RED = imgui.ImVec4(1.0, 0.42, 0.38, 1.0)
YELLOW = imgui.ImVec4(1.0, 0.85, 0.35, 1.0)
GREY = imgui.ImVec4(0.65, 0.65, 0.68, 1.0)
OPEN = imgui.TreeNodeFlags_.default_open


def _u32(r, g, b, a=1.0) -> int:
    return imgui.get_color_u32(imgui.ImVec4(r, g, b, a))


def _fit(text: str, width: float) -> str:
    """`text`, shortened with '...' to fit `width` pixels in the current font."""
    if imgui.calc_text_size(text).x <= width:
        return text
    while len(text) > 4 and imgui.calc_text_size(text + "...").x > width:
        text = text[: max(4, int(len(text) * 0.9))]
    return text + "..."


# ---------------------------------------------------------------------------------------------- panels
class StatsPanel:
    def draw(self, v) -> None:
        tr = v.loop.trainer
        st = tr.stats
        r = v.result
        fps = v.history.recent_fps()
        w, h = v.sizing.size
        imgui.text(f"{fmt(fps, 1, ' fps')}   frame {v.rendered}   {w}x{h}   {v.spp()} spp x 2")
        imgui.text(f"render {fmt(getattr(r, 'render_ms', None), 0, ' ms')}   "
                   f"inference {fmt(getattr(r, 'infer_ms', None), 0, ' ms')}   "
                   f"train {fmt(st.get('train_ms'), 0, ' ms')}")
        state = "paused" if tr.paused else "running"
        imgui.text(f"training {state}: {st.get('steps', 0)} steps ({fmt(v.steps_rate.rate(), 1, '/s')}), "
                   f"loss {fmt(st.get('last_loss'), 4)}")
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
        names = [n for n in SOURCES if n not in OIDN_SOURCES or oidn.available()]
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
            rec = v.attempt("load keyframes", KeyframeRecorder.load, self.path_text)
            if rec is not None:
                v.recorder = rec
                v.path_source, v.path_frame, v.playing = "recorded", 0.0, True
                v.messages.info(f"loaded {len(rec)} keyframes from {self.path_text}")


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
        """Model and temporal reuse: changing either starts a new network (the warm start where it fits)."""
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
                start = "warm-started" if v.loop.warm else "fresh"
                v.messages.info(f"{start} '{model}' network, temporal {'on' if temporal else 'off'}")


class ReferencePanel:
    def draw(self, v) -> None:
        ref = v.reference
        imgui.text(f"still for {ref.still_frames} frames: streams A, B {ref.stream_spp} spp each")
        if ref.spp:
            imgui.text(f"progressive reference: {ref.spp} spp ({ref.images} images)")
        else:
            imgui.text("progressive reference: none")
        pin, pden = v.psnr_ref
        imgui.text(f"PSNR input {fmt(pin, 2, ' dB')}   denoised {fmt(pden, 2, ' dB')}")
        if ref.spp and pin is None:
            imgui.text_colored(GREY, f"(PSNR once the reference has {ref.min_ratio:.0f}x the input's samples)")
        r = v.result
        if r is not None and getattr(r, "psnr_input", None) is not None:
            imgui.text(f"vs rendered reference: input {fmt(r.psnr_input, 2, ' dB')}, "
                       f"denoised {fmt(getattr(r, 'psnr_denoised', None), 2, ' dB')}")
            if getattr(r, "psnr_oidn", None) is not None:
                same = getattr(r, "psnr_oidn_same", None)  # --temporal only: OIDN on the histories
                imgui.text(f"OIDN this frame {fmt(r.psnr_oidn, 2, ' dB')}" + (
                    "" if same is None else f", same samples {fmt(same, 2, ' dB')}"))
        imgui.text_colored(GREY, "still camera: the newest frames form the two streams (trained on, denoised),\n"
                                 "older ones the reference: they never share samples")


class ScenePanel:
    def __init__(self):
        self.scene_text = None  # the scene's name or path until the user types another one

    def draw(self, v) -> None:
        if self.scene_text is None:
            self.scene_text = v.cfg.scene
        imgui.set_next_item_width(-60)
        entered, self.scene_text = imgui.input_text("##scene", self.scene_text, imgui.InputTextFlags_.enter_returns_true)
        imgui.same_line()
        if imgui.button("load") or entered:
            v.load_scene(self.scene_text)
        imgui.text_colored(GREY, "bundled name or Mitsuba 3 XML path")
        if not v.rendering and imgui.button("retry rendering"):
            v.retry_rendering()


class RenderSizePanel:
    """The size policy's mode (size_policy.py) and its one setting: target fps, the size, or the scale."""

    MODES = ((AUTO, "auto"), (FIXED, "fixed size"), (WINDOW, "window x scale"))

    def draw(self, v) -> None:
        s = v.sizing
        for i, (mode, label) in enumerate(self.MODES):
            if i:
                imgui.same_line()
            if imgui.radio_button(label, s.mode == mode):
                s.choose(mode)
        imgui.set_next_item_width(-90)
        if s.mode == AUTO:
            changed, fps = imgui.slider_float("target fps", s.auto.target_fps, 0.5, 60.0, "%.1f", imgui.SliderFlags_.logarithmic)
            if changed:
                s.auto.target_fps = fps
            (lw, lh), (hw, hh) = s.auto.bounds
            imgui.text(f"{s.size[0]}x{s.size[1]} (from {lw}x{lh} to {hw}x{hh})")
            imgui.same_line()
            if imgui.small_button("pin"):
                v.pin_size()
                v.messages.info(f"render size pinned at {s.size[0]}x{s.size[1]}")
        elif s.mode == WINDOW:
            _, s.scale = imgui.slider_float("render scale", s.scale, 0.05, 1.0, "%.2f")
        else:
            changed, wh = imgui.input_int2("WxH", list(s.size), imgui.InputTextFlags_.enter_returns_true)
            if changed:
                v.set_render_size(*wh)


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
            ("Scene", ScenePanel(), False),
            ("Render size", RenderSizePanel(), False),
            ("Messages", MessagesPanel(), True),
        ]

    def width(self, window_width: int) -> int:
        return int(min(self.WIDTH, max(240, window_width * 0.4)))

    def draw(self, v) -> None:
        ww, wh = v.window.window_size()
        pw = self.width(ww)
        imgui.set_next_window_pos(imgui.ImVec2(ww - pw, 0), imgui.Cond_.always)
        imgui.set_next_window_size(imgui.ImVec2(pw, wh), imgui.Cond_.always)
        flags = (imgui.WindowFlags_.no_move | imgui.WindowFlags_.no_resize | imgui.WindowFlags_.no_collapse
                 | imgui.WindowFlags_.no_saved_settings)
        imgui.begin("n2n-live: Noise2Noise, trained live", None, flags)
        for title, panel, default_open in self.sections:
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
        w, h = v.sizing.size
        status = (f"{label}   |   {v.preset} preset{' (CUDA)' if v.preset == 'gpu' else ' (no CUDA)' if v.preset_auto else ''}"
                  f"   |   {w}x{h} {v.sizing.label()}   |   training {'paused' if tr.paused else 'on'}, "
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
