"""One live frame inside a UI frame: pick the camera -> LiveLoop.step -> progressive reference and PSNR -> stats.

`LiveLoop.step` renders on the calling (main) thread, submits the pair to the trainer thread without waiting and
denoises with the latest published weights, so by default the display never waits for training. With pacing on
(`--pace`, or the Training panel's checkbox) a new frame is rendered only once the trainer has finished the
previous frame's iterations, as in the paper's fly-through; the UI keeps drawing, and never blocks, meanwhile.
"""
from __future__ import annotations

import time

from ..errors import UserError


def trainer_ready(v) -> bool:
    """May a new frame be rendered now? Always without pacing; with it, once the trainer is idle (non-blocking)."""
    if not v.pace:
        return True
    tr = v.loop.trainer
    return tr.paused or tr.wait_idle(timeout=0.0)


def step(v) -> bool:
    """Render, submit and denoise one frame for the viewer `v`; False if nothing was rendered (an error)."""
    if v.playing:
        try:
            cam = v.active_path().at(v.path_frame)
        except UserError as e:
            v.messages.error(str(e))
            v.playing = False
            cam = v.fly.camera()
        else:
            v.fly.reset(cam)  # pausing continues from here
    else:
        cam = v.fly.camera()
    v.camera = cam
    spp = v.spp()

    def accumulate(pair):  # a still camera: the two streams keep accumulating, each its own samples (reference.py)
        h, w = pair.noisy_a.shape[:2]
        v.reference.follow((cam.key(), (w, h), spp, id(v.loop.loaded)))
        return v.reference.add(pair, spp)

    try:
        result = v.loop.step(cam, pair_filter=accumulate)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # a failing renderer or scene must not take the UI down
        v.rendering = False
        v.messages.error(f"rendering stopped: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        return False
    now = time.perf_counter()
    v.frame_ms = None if v.last_render_t is None else (now - v.last_render_t) * 1000.0
    v.last_render_t = now
    v.result, v.result_id = result, v.result_id + 1
    v.rendered += 1
    if v.playing:
        v.path_frame += 1

    # PSNR of the streams' pair average and of the denoised image against the reference of the frames the streams
    # no longer hold (disjoint samples; None until the reference is clearly cleaner)
    pair = result.pair
    v.psnr_ref = v.reference.measure(0.5 * (pair.noisy_a + pair.noisy_b), result.denoised, v.exposure)
    return True


def stats_row(v, stepped: bool) -> dict:
    """One line of the per-frame log (FrameHistory, --stats-jsonl). Timings of this UI frame's live frame only."""
    r = v.result if stepped else None
    tr = v.loop.trainer
    st = tr.stats
    v.steps_rate.add(time.perf_counter(), st.get("steps") or 0)
    return {
        "frame": v.rendered, "ui_frame": v.frames, "rendered": stepped, "mode": v.mode,
        "frame_ms": v.frame_ms if stepped else None,  # since the previous live frame: 1000 / live fps
        "ui_ms": v.ui_ms,  # since the previous UI frame
        "render_ms": getattr(r, "render_ms", None), "infer_ms": getattr(r, "infer_ms", None),
        "train_ms": st.get("train_ms"), "train_steps": st.get("steps"), "paused": bool(tr.paused),
        "train_steps_per_s": v.steps_rate.rate(), "t": round(time.perf_counter(), 3),
        "loss": st.get("last_loss"), "pace": v.pace,
        "psnr_input_ref": v.psnr_ref[0] if stepped else None,
        "psnr_denoised_ref": v.psnr_ref[1] if stepped else None,
        "psnr_input": getattr(r, "psnr_input", None), "psnr_denoised": getattr(r, "psnr_denoised", None),
        "reference_spp": v.reference.spp, "playing": v.playing,
        "origin": [round(float(c), 5) for c in v.camera.origin],
        "size": list(v.sizing.size), "auto_size": v.sizing.is_auto,
        "stream_spp": v.reference.stream_spp,
    }
