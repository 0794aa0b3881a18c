"""The import rules of docs/architecture.md, read from the source: the engine core never
imports app/ (the CLI, the benchmark runner, the datasets), and runtime folders never
import each other, so a missing runtime or app dependency never breaks the library."""

from __future__ import annotations

import ast
from pathlib import Path

import specs_engine

PACKAGE = Path(specs_engine.__file__).parent
RUNTIMES = ("hf", "llamacpp", "vllm", "openai")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def offenders(files: list[Path], forbidden: str) -> list[str]:
    return [f"{path.relative_to(PACKAGE)} imports {name}"
            for path in files for name in sorted(imported_modules(path))
            if name == forbidden or name.startswith(forbidden + ".")]


def test_the_engine_core_never_imports_app():
    core = [p for p in PACKAGE.rglob("*.py") if "app" not in p.relative_to(PACKAGE).parts]
    assert len(core) > 20  # the scan reads the package, not an empty folder
    assert offenders(core, "specs_engine.app") == []


def test_runtime_folders_never_import_each_other():
    for runtime in RUNTIMES:
        files = list((PACKAGE / "backends" / runtime).glob("*.py"))
        assert files, runtime
        for other in set(RUNTIMES) - {runtime}:
            assert offenders(files, f"specs_engine.backends.{other}") == []
