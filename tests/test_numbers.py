"""n2n_live.numbers: the one finite test, mean, JSON form and formatter."""
import json
import math

from n2n_live.numbers import finite, finite_mean, fmt, json_safe


def test_finite_mean_skips_missing_values_and_keeps_the_last():
    values = [1.0, None, float("nan"), 3.0, float("inf"), 5, 7.0]
    assert finite_mean(values) == 4.0
    assert finite_mean(values, last=2) == 6.0
    assert math.isnan(finite_mean([None, float("nan")]))
    assert not finite(True) and not finite("1") and finite(2)


def test_json_safe_is_valid_json_and_keeps_numbers():
    obj = {"a": float("nan"), "b": [1.5, float("-inf"), (2, None)], "c": "x", "d": 3}
    safe = json_safe(obj)
    assert safe == {"a": None, "b": [1.5, None, [2, None]], "c": "x", "d": 3}
    json.loads(json.dumps(safe, allow_nan=False))


def test_fmt():
    assert fmt(3.14159) == "3.14" and fmt(3.14159, 1, " dB") == "3.1 dB"
    assert fmt(None) == "-" and fmt(float("nan"), missing="") == "" and fmt(float("inf")) == "-"
    assert fmt(7) == "7" and fmt("x") == "x"
