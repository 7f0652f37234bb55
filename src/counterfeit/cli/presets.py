"""List the named presets, one line each."""

from __future__ import annotations

from .. import config


def build_parser(p):
    return p


def run(args) -> int:
    names = config.preset_names()
    width = max(len(n) for n in names)
    for n in names:
        print(f"{n:<{width}}  {config.describe_preset(n)}")
    return 0
