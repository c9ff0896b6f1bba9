"""The layout shows the design (docs/architecture.md): imports point down, and every module reads in one sitting.

commands and viewer -> live -> models and the flat core; evaluation beside live (live reads it, it reads no live);
renderer knows nothing of n2n_live; scenes are data for the renderer, in its camera types.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for d in ("n2n_live", "renderer", "scenes", "offline_experiments", "scripts")
                 for p in (ROOT / d).rglob("*.py"))


def _module(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute names of the modules `path` imports (relative imports resolved), at any depth of the file."""
    mod = _module(path, root)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            name = node.module or ""
            full = (f"{base}.{name}" if name else base) if node.level else name
            found.add(full)
            found.update(f"{full}.{a.name}" for a in node.names)
    return found


def _layer(mod: str) -> str:
    parts = mod.split(".")
    if parts[0] != "n2n_live":
        return parts[0]
    if len(parts) > 1 and parts[1] in ("models", "live", "evaluation", "commands", "viewer"):
        return parts[1]
    return "entry" if mod == "n2n_live.__main__" else "core"


# what each layer may import of n2n_live's layers (its own layer always)
ALLOWED = {
    "core": {"core", "models"},
    "models": {"core", "models"},
    "evaluation": {"core", "models", "evaluation"},
    "live": {"core", "models", "evaluation", "live"},
    "commands": {"core", "models", "evaluation", "live", "commands"},
    "viewer": {"core", "models", "evaluation", "live", "commands", "viewer"},
}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    mod = _module(path)
    layer = _layer(mod)
    targets = {t for t in _imports(path) if t.split(".")[0] in ("n2n_live", "renderer", "scenes", "offline_experiments")}
    if layer == "renderer":
        assert not {t for t in targets if t.startswith(("n2n_live", "offline_experiments"))}, f"{mod}: {targets}"
    elif layer == "scenes":  # data for the renderer, in the renderer's types (cameras, paths, its error)
        assert not {t for t in targets if not t.startswith(("scenes", "renderer.camera", "renderer.errors"))}, \
            f"{mod}: {targets}"
    elif layer in ALLOWED:
        wrong = {t for t in targets if t.startswith("n2n_live") and _layer(t) not in ALLOWED[layer]
                 and t != "n2n_live"}
        wrong |= {t for t in targets if t.startswith("offline_experiments")}
        assert not wrong, f"{mod} ({layer}) imports {sorted(wrong)}"


@pytest.mark.parametrize("path", SOURCES + sorted((ROOT / "tests").glob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_above_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400, f"{path.relative_to(ROOT)}: split it"


def test_the_layer_check_catches_a_wrong_way_import(tmp_path):
    """The rule itself: a core module importing the live pipeline (relatively, inside a function) is found."""
    p = tmp_path / "n2n_live" / "x.py"
    p.parent.mkdir()
    p.write_text("def f():\n    from .live.loop import LiveLoop\n    from . import features\n")
    found = _imports(p, tmp_path)
    assert {"n2n_live.live.loop", "n2n_live.features"} <= found
    assert _layer(_module(p, tmp_path)) == "core" and "live" not in ALLOWED["core"]
    assert _layer("n2n_live.live.loop") == "live" and _layer("n2n_live.commands.cli") == "commands"
