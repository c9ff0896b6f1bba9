"""The warm start: --init none is the seed's fresh network, --init warm loads exactly the bundled weights where they
fit (else fresh, with a notice), the file is read with weights_only, and its recipe trains the live network on noisy
pairs only."""
from __future__ import annotations

import pytest
import torch

from n2n_live import models
from n2n_live.checkpoint import FORMAT, read_checkpoint, save_checkpoint
from n2n_live.errors import UserError
from n2n_live.live import config as live_config, warm_start
from n2n_live.live.config import LiveConfig, model_inputs
from n2n_live.live.loop import LiveLoop


def tiny(**kw) -> LiveConfig:
    """The live default architecture (kernel, temporal) on 16x16 frames, one thread."""
    return LiveConfig(**{**dict(scene="cornell-box", width=16, height=16, crop=16, spp=1, iters_per_frame=1,
                                sync=True, reference_spp=0, compare=()), **kw})


def fresh(cfg: LiveConfig) -> dict:
    """The weights `--init none` must give: cfg's network drawn right after seeding with cfg.seed."""
    torch.manual_seed(cfg.seed)
    return models.build(cfg.model, **model_inputs(cfg)).state_dict()


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """A warm start for the live default architecture, drawn from another seed than any fresh network here."""
    torch.manual_seed(1234)
    net = models.build(LiveConfig().model, **model_inputs(LiveConfig()))
    path = tmp_path / "warm_start.pt"
    save_checkpoint(path, net, meta={"trained_on": "noisy pairs only"})
    monkeypatch.setattr(warm_start, "WEIGHTS", path)
    return net.state_dict()


def test_init_none_is_the_seeds_fresh_network(bundled):
    cfg = tiny(init="none")
    with LiveLoop(cfg) as loop:
        assert not loop.warm and same(loop.trainer.net.state_dict(), fresh(tiny()))


def test_init_warm_loads_exactly_the_bundled_weights_into_trainer_and_denoiser(bundled, tmp_path):
    with LiveLoop(tiny()) as loop:
        assert loop.warm and same(loop.trainer.net.state_dict(), bundled)
        assert same(loop.denoiser.net.state_dict(), bundled)
    # --load wins over --init warm
    torch.manual_seed(99)
    other = models.build(LiveConfig().model, **model_inputs(LiveConfig()))
    save_checkpoint(tmp_path / "mine.pt", other)
    with LiveLoop(tiny(load=str(tmp_path / "mine.pt"))) as loop:
        assert not loop.warm and same(loop.trainer.net.state_dict(), other.state_dict())


def test_another_architecture_starts_fresh_with_one_notice_and_a_switch_back_warms(bundled, capfd):
    cfg = tiny(model="paper", temporal=False)
    with LiveLoop(cfg) as loop:
        err = capfd.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "warm start" in err[0] and "'paper'" in err[0] and "fresh" in err[0], err
        assert not loop.warm and same(loop.trainer.net.state_dict(), fresh(cfg))
        loop.set_denoiser("kernel", True)  # the viewer's model switch: back to the bundled architecture
        assert loop.warm and same(loop.trainer.net.state_dict(), bundled)


def test_a_missing_file_starts_fresh_with_a_notice(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(warm_start, "WEIGHTS", tmp_path / "absent.pt")
    with LiveLoop(tiny()) as loop:
        assert not loop.warm and same(loop.trainer.net.state_dict(), fresh(tiny()))
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "absent.pt" in err[0] and "fresh" in err[0], err


class Payload:
    """Any Python object: unpickling it would mean the file can run code."""


def test_a_weights_file_with_a_python_object_is_refused_in_one_line(tmp_path, monkeypatch):
    net = models.build(LiveConfig().model, **model_inputs(LiveConfig()))
    path = tmp_path / "warm_start.pt"
    torch.save({"format": FORMAT, "n_in": net.n_in, "m_out": net.m_out, "model": models.spec(net), "kind": "mc",
                "net": net.state_dict(), "train_state": None, "meta": {"x": Payload()}}, path)
    monkeypatch.setattr(warm_start, "WEIGHTS", path)
    with pytest.raises(UserError) as e:
        warm_start.load_into(models.rebuild(net))
    assert "warm_start.pt" in str(e.value) and "refused" in str(e.value) and "\n" not in str(e.value)


def test_n2n_train_builds_the_live_architecture_whatever_it_is(tmp_path, monkeypatch):
    """--model live follows LiveConfig() (here with blend: 13 inputs, raw colour read beside the history); one step
    trains it, and the result is accepted as --init."""
    from test_batch_train import TINY, make_dataset, run_main
    from offline_experiments.train_config import init_network

    monkeypatch.setattr(live_config, "LiveConfig", lambda: LiveConfig(blend=True))
    want = models.spec(models.build("kernel", **model_inputs(LiveConfig(blend=True))))
    assert want["n_in"] == 13
    data = make_dataset(tmp_path / "data", views=2, size=(16, 16))
    run = tmp_path / "run"
    assert run_main(["--data", data, "--out", run, "--model", "live", "--iters", "1", "--val-fraction", "0",
                     "--lr", "1e-2", *TINY]) == 0
    state = read_checkpoint(run / "checkpoint.pt")
    assert state["model"] == want and state["train_state"]["step"] == 1
    torch.manual_seed(0)
    assert not same(state["net"], models.build("kernel", **model_inputs(LiveConfig(blend=True))).state_dict())
    assert models.spec(init_network(run / "checkpoint.pt")) == want


def test_the_recipe_never_renders_a_reference_and_writes_loadable_weights(tmp_path, monkeypatch):
    pytest.importorskip("mitsuba")
    from renderer.tracer import PathTracer

    from offline_experiments import warm_start as recipe

    def clean_data(*a, **k):
        raise AssertionError("the warm start's recipe rendered a reference")

    monkeypatch.setattr(PathTracer, "render_reference", clean_data)
    monkeypatch.setattr(PathTracer, "render_reference_features", clean_data)
    out = tmp_path / "w.pt"
    argv = ["--scenes", "cornell-box", "--views", "2", "--size", "16", "--spp", "1", "--iters", "1", "--crop", "16",
            "--threads", "1", "--work", str(tmp_path / "work"), "--weights", str(out), "--quiet"]
    meta = recipe.run(argv)
    data = tmp_path / "work" / "data"
    assert list(data.glob("*spp.hdr.exr")) and not list(data.glob("*_ref*"))
    state = read_checkpoint(out)
    assert state["train_state"] is None and "no reference" in state["meta"]["trained_on"] and meta == state["meta"]
    monkeypatch.setattr(warm_start, "WEIGHTS", out)
    net = models.build(LiveConfig().model, **model_inputs(LiveConfig()))
    assert warm_start.load_into(net) is None and same(net.state_dict(), state["net"])
    # the live default changed since: the run folder must not resume the old network
    monkeypatch.setattr(live_config, "LiveConfig", lambda: LiveConfig(blend=False))
    with pytest.raises(UserError, match="another network"):
        recipe.run(argv)


def test_init_reaches_n2n_live_and_n2n_compare():
    from n2n_live.commands import cli, compare

    for argv, want in (([], "warm"), (["--init", "none"], "none")):
        args = cli.build_parser().parse_args(["--headless", "--preset", "cpu", *argv])
        assert cli.build_config(args, headless=True).init == want
        bases = compare.configs(compare.parse_args(["--scenes", "cornell-box", *argv]))
        assert [c.init for c in bases.values()] == [want]
    with pytest.raises(UserError, match="--init"):
        LiveConfig(init="cold").validate()


def test_the_committed_weights_fit_the_live_default_network():
    # a change to the default architecture (an option included) must come with weights retrained by
    # scripts/warm_start.sh: else every default run silently starts from scratch
    net = models.build(LiveConfig().model, **model_inputs(LiveConfig()))
    assert warm_start.load_into(net) is None
    assert "noisy pairs only" in read_checkpoint(warm_start.WEIGHTS)["meta"]["trained_on"]
    # emission changes what the filter reads at run time, not the weights: its ablation starts from the same ones
    off = models.build("kernel", **model_inputs(LiveConfig(emission=False)))
    assert warm_start.load_into(off) is None and same(off.state_dict(), net.state_dict())
