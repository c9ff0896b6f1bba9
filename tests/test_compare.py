"""n2n-compare end to end, in process: one scene, two variants, three tiny frames; its files and the promise that
every variant replays the same recorded frames. (tests/test_live.py checks LiveLoop's replay hook itself.)"""
from __future__ import annotations

import json
import math

import pytest
import torch

from n2n_live.commands import compare
from n2n_live.evaluation.metrics_log import read_metrics
from n2n_live.live import oidn


def test_n2n_compare_writes_its_table_and_every_variant_sees_the_same_frames(tmp_path, monkeypatch, capsys):
    # OIDN is faked (the test holds with or without pyoidn); what it is handed is what the loop's frame was
    oidn_inputs: list[torch.Tensor] = []

    def fake_denoise(colour, albedo=None, normal=None, quality="high"):
        oidn_inputs.append(colour.clone())
        return colour.clone()

    monkeypatch.setattr(oidn, "available", lambda: True)
    monkeypatch.setattr(oidn, "denoise", fake_denoise)
    recorded, runs = [], []
    real_record, real_run = compare.record, compare.run_variant

    def record(cfg):
        recorded.append(real_record(cfg))
        return recorded[-1]

    def run_variant(cfg, pairs, csv_path):
        oidn_inputs.clear()
        rows = real_run(cfg, pairs, csv_path)
        runs.append((cfg.model, cfg.temporal, pairs, list(oidn_inputs)))
        return rows

    from renderer.tracer import PathTracer

    rendered, real_render_pair = [], PathTracer.render_pair

    def render_pair(self, cam, frame, *args, **kw):
        rendered.append(frame)
        return real_render_pair(self, cam, frame, *args, **kw)

    monkeypatch.setattr(PathTracer, "render_pair", render_pair)
    monkeypatch.setattr(compare, "record", record)
    monkeypatch.setattr(compare, "run_variant", run_variant)
    out, cache = tmp_path / "out", tmp_path / "refs"
    compare.main(["--scenes", "cornell-box", "--variants", "paper,kernel+temporal", "--size", "16", "--frames", "3",
                  "--reference-spp", "8", "--iters-per-frame", "1", "--reference-cache", str(cache),
                  "--out", str(out)])

    # one recording, replayed by both variants frame by frame: the loop's raw pair is the recorded one, in order
    assert len(recorded) == 1 and [(m, t) for m, t, _, _ in runs] == [("paper", False), ("kernel", True)]
    pairs = recorded[0][0]
    assert rendered == [0, 1, 2], rendered  # noisy pairs rendered once per scene, never by a variant's loop
    assert len(pairs) == 3 and all(p is pairs for _, _, p, _ in runs)
    # OIDN this frame on every frame; with temporal reuse also OIDN same samples on the evaluated frames (2, 3),
    # right after that frame's own call, on something other than the raw pair (the histories)
    raw = [0.5 * (p.noisy_a + p.noisy_b) for p in pairs]
    for model, temporal, _, inputs in runs:
        this_frame = [inputs[i] for i in ((0, 1, 3) if temporal else (0, 1, 2))]
        assert len(inputs) == (5 if temporal else 3), model
        same = all(torch.equal(x, avg) for x, avg in zip(this_frame, raw))
        assert same, f"{model}: the loop did not replay the recorded frames"
        if temporal:
            assert not any(torch.equal(inputs[i], raw[f]) for i, f in ((2, 1), (4, 2))), "OIDN-same saw the raw pair"
    # the references were rendered once (frames 2 and 3: the evaluated ones) and shared through the cache
    assert len(list(cache.glob("*.npz"))) == 2

    # one metrics CSV per variant, every column, the same input (same frames, same references) in both
    csvs = [read_metrics(out / f"cornell-box_{label}.csv") for label in ("paper", "kernel+temporal")]
    for m in csvs:
        assert list(m) == compare.COLUMNS and m["frame"] == [0, 1, 2]
        assert math.isnan(m["psnr_input"][0]) and all(math.isfinite(v) for v in m["psnr_input"][1:])
    assert csvs[0]["psnr_input"][1:] == csvs[1]["psnr_input"][1:]
    assert csvs[0]["flicker_input"][1:] == csvs[1]["flicker_input"][1:]
    # OIDN same samples: empty without temporal reuse; with it (OIDN faked as the identity) the histories' PSNR
    assert all(math.isnan(v) for v in csvs[0]["psnr_oidn_same"] + csvs[0]["psnr_history"])
    assert csvs[1]["psnr_oidn_same"][1:] == csvs[1]["psnr_history"][1:] != csvs[1]["psnr_oidn"][1:]
    assert all(math.isfinite(v) for v in csvs[1]["psnr_oidn_same"][1:])

    # results.json: per scene and variant, the summary of every column (no "@ frame" figures in a 3-frame run)
    res = json.loads((out / "results.json").read_text())
    assert set(res) == {"args", "results"} and list(res["results"]) == ["cornell-box"]
    summaries = res["results"]["cornell-box"]
    assert list(summaries) == ["paper", "kernel+temporal"]
    for label, s in summaries.items():
        assert set(s) == set(compare.COLUMNS) - {"frame"} | {"ms_per_frame"}, label
        for k in ("psnr_input", "psnr_denoised", "psnr_oidn", "flicker_denoised", "flicker_reference",
                  "reference_floor", "ms_per_frame"):
            assert isinstance(s[k], float) and math.isfinite(s[k]), (label, k)
    assert summaries["paper"]["psnr_history"] is None and summaries["kernel+temporal"]["psnr_history"] > 0
    assert summaries["paper"]["psnr_oidn_same"] is None
    assert summaries["kernel+temporal"]["psnr_oidn_same"] == summaries["kernel+temporal"]["psnr_history"]
    for k in ("psnr_input", "flicker_input", "reference_floor", "flicker_reference"):
        assert summaries["paper"][k] == summaries["kernel+temporal"][k], k

    # table.md (also printed): the header, then one row per variant, as many cells as the header
    text = (out / "table.md").read_text()
    assert text in capsys.readouterr().out
    lines = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()]
    assert lines[0] == ["scene", "variant", "last 10", "OIDN last", "OIDN same last", "history last", "input last",
                        "flicker", "OIDN flicker", "input flicker", "ref flicker", "ms/frame", "ref floor"]
    rows = lines[2:]
    assert [r[:2] for r in rows] == [["cornell-box", "paper"], ["cornell-box", "kernel+temporal"]]
    assert all(len(r) == len(lines[0]) for r in rows) and "-" not in rows[1]
    assert [c for c in rows[0] if c == "-"] == ["-", "-"] and rows[0][4:6] == ["-", "-"]  # no temporal: no same/hist
    assert rows[1][4:6] == [f"{summaries['kernel+temporal']['psnr_oidn_same']:.2f}",
                            f"{summaries['kernel+temporal']['psnr_history']:.2f}"]
    assert rows[0][6] == rows[1][6] == f"{summaries['paper']['psnr_input']:.2f}"  # input last: the same frames


def test_the_table_puts_oidn_same_samples_and_the_history_beside_each_figure():
    """At frames 10/40/80 and over the last 10: OIDN this frame, OIDN same samples and the histories' own PSNR, read
    from the right columns. Mutant caught: the @frame cell's 'same' read from psnr_oidn."""
    nan = float("nan")
    rows = [{k: nan for k in compare.COLUMNS} | {"frame": f, "train_ms": 1.0, "infer_ms": 1.0} for f in range(10)]
    rows[9].update(psnr_denoised=40.0, psnr_oidn=38.0, psnr_oidn_same=39.0, psnr_history=35.0, psnr_input=30.0)
    s = compare.summarise(rows)
    assert (s["oidn_10"], s["oidn_same_10"], s["history_10"], s["input_10"]) == (38.0, 39.0, 35.0, 30.0)
    lines = compare.table({"cornell-box": {"kernel+temporal": s}}, 10).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = dict(zip(head, (c.strip() for c in lines[2].strip("|").split("|"))))
    assert cells["PSNR @10"] == "40.00 (OIDN 38.00, same 39.00, hist 35.00, in 30.00)"
    assert (cells["OIDN last"], cells["OIDN same last"], cells["history last"]) == ("38.00", "39.00", "35.00")


def test_a_variants_settings_reach_its_configuration_and_a_wrong_one_is_one_line():
    from n2n_live.errors import UserError

    assert compare.parse_variant("paper") == ("paper", {"temporal": False})
    model, overrides = compare.parse_variant("kernel+temporal+target=history+blend=off+resample=catmull-rom+clip=off")
    assert model == "kernel" and overrides == {"temporal": True, "temporal_target": "history", "blend": False,
                                               "resample": "catmull-rom", "spike_clip": False}
    for bad in ("kernel+target=clean", "kernel+blend", "kernel+speed=2", "unet+temporal"):
        with pytest.raises(UserError, match="--variants"):
            compare.parse_variant(bad)
