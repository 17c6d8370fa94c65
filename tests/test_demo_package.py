"""The demo tools live apart from the library, and their small helpers do what they say."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import musiclime
from musiclime_demo.corpus import read_corpus_manifest
from musiclime_demo.train_classifier import mix_stems, segment_bounds


def _module_level_demo_imports(path: Path) -> list[int]:
    """Line numbers of ``musiclime_demo`` imports outside any function body in ``path``."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        if not in_function and any(n.split(".")[0] == "musiclime_demo" for n in names):
            found.append(node.lineno)
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def test_library_never_imports_the_demo_tools_at_import_time():
    package = Path(musiclime.__file__).parent
    offenders = {
        str(p.relative_to(package)): lines
        for p in sorted(package.rglob("*.py"))
        if (lines := _module_level_demo_imports(p))
    }
    assert offenders == {}
    assert not (package / "demo").exists(), "the demo tools moved to musiclime_demo"


def test_mix_stems_gates_each_stem_per_segment():
    stems = np.array([[1, 1, 1, 1, 1, 1], [10, 20, 30, 40, 50, 60]], dtype=np.float32)
    bounds = segment_bounds(6, n_segments=3)  # [0, 2, 4, 6]
    gains = np.array([[1, 0, 1], [0, 1, 1]])
    # segment 0: stem 0 only; segment 1: stem 1 only; segment 2: both
    expected = np.array([1, 1, 30, 40, 51, 61], dtype=np.float32)
    np.testing.assert_array_equal(mix_stems(stems, gains, bounds), expected)


def test_read_corpus_manifest_names_missing_columns(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text("song_id,split\ndemo_0000,test\n", encoding="utf-8")
    assert read_corpus_manifest(path) == [{"song_id": "demo_0000", "split": "test"}]
    with pytest.raises(ValueError, match=r"lacks columns \['stems_dir'\]"):
        read_corpus_manifest(path, ("song_id", "stems_dir"))
