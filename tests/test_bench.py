"""n2n-bench runs end to end on a tiny frame and reports every part of the frame time."""
import json

from n2n_live.commands.bench import main


def test_bench_reports_both_loops(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--size", "32", "--crop", "32", "--frames", "1", "--repeats", "1", "--device", "cpu",
                 "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "render pair ms" in table and "train iteration ms" in table and "optimised" in table
    report = json.loads(out.read_text())
    for loop in ("fp32", "optimised"):
        r = report["loops"][loop]
        assert r["train_iter_ms"] > 0 and r["infer_ms"] > 0 and r["train_iter_gflop"] > r["infer_gflop"] / 2
        assert r["frame_ms"] > report["render_pair_ms"]
    assert report["ceilings"]["matmul_fp32_tflops"] > 0
