"""name -> builder tables for nets, recipes and metrics, so presets can name them as strings."""

from __future__ import annotations

from typing import Callable

from .errors import UserError

_TABLES: dict[str, dict[str, Callable]] = {"net": {}, "translation-net": {}, "recipe": {}, "metric": {}}


def register(kind: str, name: str):
    def deco(fn):
        table = _TABLES[kind]
        if name in table:
            raise ValueError(f"{kind} '{name}' registered twice")
        table[name] = fn
        return fn

    return deco


def get(kind: str, name: str) -> Callable:
    table = _TABLES[kind]
    if name not in table:
        raise UserError(f"unknown {kind} '{name}' (known: {', '.join(sorted(table))})")
    return table[name]


def names(kind: str) -> list[str]:
    return sorted(_TABLES[kind])
