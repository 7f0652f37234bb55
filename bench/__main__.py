"""python -m bench [SUITE [ARGS...] | index]: list the suites, run one, or rewrite bench/README.md's index."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import sys
from pathlib import Path

import bench
from bench.harness import RESULTS, ROOT

NOT_SUITES = {"harness", "__main__"}


def suites() -> dict[str, str]:
    """Every suite module and the first line of its docstring."""
    out = {}
    for m in pkgutil.iter_modules(bench.__path__):
        if m.name in NOT_SUITES or m.ispkg:
            continue
        text = (Path(bench.__path__[0]) / f"{m.name}.py").read_text()
        doc = text.split('"""')[1].strip().splitlines()[0] if text.startswith('"""') else ""
        out[m.name] = doc
    return out


def record_lines(path: Path) -> tuple[str, str]:
    """(command, machine) of a JSON record, wherever in it they are given; ('', '') for a picture."""
    if path.suffix != ".json":
        return "", ""
    found = {"command": "", "machine": ""}

    def walk(d):
        if isinstance(d, dict):
            for k, v in d.items():
                if k in ("command", "machine") and not found[k]:
                    found[k] = v if isinstance(v, str) else (f"{v.get('cpu', '?')}, {v.get('cores', '?')} cores, "
                                                            f"{v.get('native_bf16', v.get('cpu_capability', ''))}"
                                                            if isinstance(v, dict) else str(v))
                walk(v)
        elif isinstance(d, list):
            for v in d:
                walk(v)

    walk(json.loads(path.read_text()))
    return found["command"], found["machine"]


def records() -> list[Path]:
    """The files under bench/results/, less record_row's lock files (gitignored: no record, absent from a clone)."""
    return sorted(q for q in RESULTS.rglob("*") if q.is_file() and q.suffix != ".lock")


def index() -> str:
    lines = ["# Benchmarks: the index", "",
             "Every suite is a module of this package; run one from the repository root with `python -m bench SUITE "
             "[ARGS]` (or `python -m bench.SUITE`). `python -m bench index` rewrites this page from the records.", "",
             "## Suites", "", "| suite | what |", "| --- | --- |"]
    lines += [f"| `{name}` | {doc.replace('|', chr(92) + '|')} |" for name, doc in sorted(suites().items())]
    lines += ["", "## Records", "", "Each record under `bench/results/`, with the command and the machine it gives "
              "(a picture stands beside the record it belongs to).", "", "| record | command | machine |",
              "| --- | --- | --- |"]
    for p in records():
        cmd, mach = record_lines(p)
        rel = p.relative_to(ROOT / "bench").as_posix()
        lines.append(f"| [{rel}]({rel}) | {f'`{cmd}`' if cmd else ''} | {mach} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if not argv:
        for name, doc in sorted(suites().items()):
            print(f"{name:<22}{doc}")
        return 0
    if argv[0] == "index":
        (ROOT / "bench" / "README.md").write_text(index())
        print(f"wrote {ROOT / 'bench' / 'README.md'}")
        return 0
    if argv[0] not in suites():
        print(f"unknown suite {argv[0]!r} (python -m bench lists them)", file=sys.stderr)
        return 2
    sys.argv = [f"bench.{argv[0]}", *argv[1:]]  # the suites that read sys.argv themselves see their own arguments
    module = importlib.import_module(f"bench.{argv[0]}")
    takes_argv = bool(inspect.signature(module.main).parameters)
    return (module.main(argv[1:]) if takes_argv else module.main()) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
