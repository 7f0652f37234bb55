"""The README and docs/ cannot rot: every relative link resolves, every `counterfeit ...` command in them parses (a
`train` command also resolves its config: preset, keys and values), and every Python block runs (small steps)."""

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def _blocks(lang: str):
    for page in PAGES:
        for kind, body in BLOCK.findall(page.read_text()):
            if kind == lang:
                yield page, body


def broken_links(pages) -> list[str]:
    bad = []
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor on the page
            if not (page.parent / target.split("#")[0]).exists():
                bad.append(f"{page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name}: {target}")
    return bad


def commands() -> list[tuple[str, list[str]]]:
    """Every counterfeit invocation in a bash block: optional parts ([...]) dropped, the first of a|b alternatives."""
    out = []
    for page, body in _blocks("bash"):
        for line in body.splitlines():
            line = line.split("  #")[0].strip()
            m = re.search(r"(?:^|&& |-m )counterfeit (.*)$", line)
            if not m:
                continue
            text = re.sub(r"\s*\[[^\]]*\]", "", m.group(1))
            args = [a.split("|")[0] for a in shlex.split(text)]
            out.append((f"{page.relative_to(ROOT)}: counterfeit {m.group(1)}", args))
    return out


def command_problem(args: list[str]) -> str | None:
    """None if `counterfeit ARGS` parses (and a train command's config resolves), else what is wrong."""
    from counterfeit.cli.__main__ import build_parser
    from counterfeit.errors import UserError

    ns = None
    try:
        ns = build_parser().parse_args(args)
        if ns.command == "train":
            from counterfeit.cli.train import resolve_config

            resolve_config(ns)
    except (UserError, SystemExit) as e:
        if isinstance(e, UserError) and getattr(ns, "from_run", None) and \
                str(e).startswith(f"no such run dir or checkpoint: {ns.from_run}"):
            return None  # `train encoder --from RUN` names the reader's own run: all else parsed and resolved
        return f"{type(e).__name__}: {e}"
    return None


def test_every_relative_link_in_the_readme_and_docs_resolves():
    assert len(PAGES) > 10
    assert broken_links(PAGES) == []


def test_every_command_in_the_readme_and_docs_parses():
    found = commands()
    assert len(found) >= 25, found  # the pages do show commands: an empty list would check nothing
    assert [where for where, args in found if command_problem(args)] == []


def test_the_checks_fail_on_a_broken_link_and_a_command_that_no_longer_parses(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[there](missing.md) [here](page.md) ![pic](img/x.png) [web](https://example.org) [top](#a)\n")
    assert broken_links([page]) == ["page.md: missing.md", "page.md: img/x.png"]
    assert command_problem(["train", "quickstart", "--steps", "5"]) is None
    assert "unknown preset" in command_problem(["train", "no-such-preset"])
    assert "unknown config key" in command_problem(["train", "quickstart", "--set", "train.bogus=1"])
    assert command_problem(["train", "encoder", "--from", "runs/g"]) is None  # the reader's run, not here
    assert "unknown config key" in command_problem(["train", "encoder", "--from", "runs/g", "--set", "model.bad=1"])
    assert command_problem(["sample", "runs/a", "--n", "4", "--out", "s.npz", "--no-such-flag"]) is not None


# ---------------------------------------------------------------------------------------------- Python blocks


@pytest.fixture
def short_runs(monkeypatch, tmp_path):
    """Each train() of a block at a hundredth of its steps (at least 2): the same calls, in seconds."""
    import counterfeit
    import counterfeit.api as api

    real = api.train

    def short(what, **kw):
        kw["steps"] = max(2, (kw.get("steps") or 200) // 100)
        kw.pop("epochs", None)
        kw.setdefault("progress", False)
        return real(what, **kw)

    monkeypatch.setattr(api, "train", short)
    monkeypatch.setattr(counterfeit, "train", short)
    monkeypatch.chdir(tmp_path)


def _namespace():
    import torch
    from torch import nn

    class MyG(nn.Module):  # the contract the docs state: (B, z_dim) -> (B, C, H, W) in the data's range
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(100, 784), nn.Tanh())

        def forward(self, z):
            return self.net(z).view(-1, 1, 28, 28)

    class MyD(nn.Module):  # (B, C, H, W) -> (B,) logits
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 1))

        def forward(self, x):
            return self.net(x).squeeze(1)

    return {"MyG": MyG, "MyD": MyD, "display": lambda *a, **k: None, "torch": torch}


@pytest.mark.parametrize("page,index", [(p.relative_to(ROOT).as_posix(), i) for p in PAGES
                                        for i, (kind, _) in enumerate(BLOCK.findall(p.read_text()))
                                        if kind == "python"])
def test_every_python_block_runs(page, index, short_runs):
    from counterfeit.data import load_data
    from counterfeit.errors import UserError

    try:
        load_data("mnist", "test")
    except UserError as e:
        pytest.skip(f"the blocks train and score on MNIST ({e})")
    body = BLOCK.findall((ROOT / page).read_text())[index][1]
    exec(compile(body, f"{page}[python block {index}]", "exec"), _namespace())
