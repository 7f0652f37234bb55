"""The code's shape, checked: functions short enough to read, a loop package without closures, no two modules that
import each other, and tests and benches that use only public names."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "counterfeit"


def _trees(folder: Path):
    for p in sorted(folder.rglob("*.py")):
        yield p, ast.parse(p.read_text())


def _module(p: Path) -> str:
    parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(p: Path, tree) -> set[str]:
    """Every module of the package that p imports, at the top or inside a function."""
    me = _module(p)
    package = me if p.name == "__init__.py" else me.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("counterfeit")}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            mod = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            if not mod or not mod.startswith("counterfeit"):
                continue
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # `from . import x` imports the module x
    return out


def test_no_function_in_the_package_is_longer_than_60_lines():
    long = [f"{p.relative_to(ROOT)}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"
            for p, tree in _trees(SRC) for f in ast.walk(tree)
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.end_lineno - f.lineno + 1 > 60]
    assert long == []


def test_the_loop_package_defines_no_nested_functions():
    nested = []
    for p, tree in _trees(SRC / "loop"):
        for f in ast.walk(tree):
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                nested += [f"{p.name}:{g.lineno} {getattr(g, 'name', 'lambda')} in {f.name}" for g in ast.walk(f)
                           if g is not f and isinstance(g, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
    assert nested == []


def test_no_two_modules_import_each_other():
    modules = {_module(p): p for p in SRC.rglob("*.py")}
    graph = {m: {i for i in _imports(p, ast.parse(p.read_text())) if i in modules and i != m}
             for m, p in modules.items()}
    # a package's __init__ re-exports its own modules: that edge (package -> its module) is not a cycle of concerns
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps
                    if a in graph.get(b, ()) and not (b.startswith(a + ".") or a.startswith(b + "."))})
    assert pairs == []


def test_tests_and_benches_import_no_private_names_from_the_package():
    found = []
    for folder in (ROOT / "tests", ROOT / "bench"):
        for p in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("counterfeit"):
                    found += [f"{p.relative_to(ROOT)}:{node.lineno} {a.name}" for a in node.names
                              if a.name.startswith("_")]
    assert found == []


def test_comments_and_docstrings_in_the_package_carry_no_lab_notes():
    """Timings, seeds and dates go stale as code moves: they live in bench/results, and src/ points there."""
    import io
    import tokenize

    note = re.compile(r"\d+(\.\d+)?-\d+(\.\d+)?x\b|\b\d+(\.\d+)? ?ms\b|\bseeds? \d|\b20\d\d-\d\d-\d\d\b|\bissue \d+|"
                      r"page faults|\bFID \d")
    found = []
    for p in SRC.rglob("*.py"):
        for tok in tokenize.generate_tokens(io.StringIO(p.read_text()).readline):
            text = tok.string
            if tok.type == tokenize.COMMENT or (tok.type == tokenize.STRING and text.startswith(('"""', "'''"))):
                found += [f"{p.relative_to(ROOT)}:{tok.start[0]} {m.group(0)!r}" for m in note.finditer(text)
                          if "inception" not in text.lower()]  # the FID graph is named by its date
    assert found == []


def test_the_layers_import_downwards_only():
    """The hooks never import the loop; data, networks, losses, recipes and metrics know neither (DESIGN.md)."""
    below = {"counterfeit.hooks": ("counterfeit.loop",),
             **{f"counterfeit.{m}": ("counterfeit.loop", "counterfeit.hooks", "counterfeit.cli")
                for m in ("data", "nets", "losses", "recipes", "metrics", "dist", "checkpoint", "errors", "registry")}}
    wrong = []
    for p in SRC.rglob("*.py"):
        me = _module(p)
        banned = next((v for k, v in below.items() if me == k or me.startswith(k + ".")), ())
        wrong += [f"{me} imports {i}" for i in sorted(_imports(p, ast.parse(p.read_text())))
                  if any(i == b or i.startswith(b + ".") for b in banned)]
    assert wrong == []


def test_the_benches_are_a_package_that_edits_no_import_path_and_indexes_every_record():
    import subprocess
    import sys

    edits = [f"{p.name}:{n}" for p in (ROOT / "bench").rglob("*.py")
             for n, line in enumerate(p.read_text().splitlines(), 1) if "sys.path" in line]
    assert edits == []
    index = (ROOT / "bench" / "README.md").read_text()
    from bench.__main__ import records as found

    records = [p.relative_to(ROOT / "bench").as_posix() for p in found()]
    assert records and [r for r in records if f"]({r})" not in index] == []
    listed = subprocess.run([sys.executable, "-m", "bench"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "speed" in listed.stdout and "gan2014_long" in listed.stdout
