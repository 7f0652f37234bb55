"""name -> builder tables for nets, recipes and metrics, so presets can name them as strings; and the doors for a
user's own code.

Plugins: a module that registers its own entries (`@registry.register("net", "my-g")` on a builder
`(cfg, shape, data) -> nn.Module`) is named in a run's `imports` (`counterfeit train ... --import MODULE`, or
`counterfeit.train(..., imports=[...])`): the run records it, and `sample`, `evaluate` and `load` import it again.

Networks by class: a net named "py:MODULE:QUALNAME" (what `counterfeit.train(..., nets={"G": MyG()})` records) is
the module given to that call while it trains, and is rebuilt later as QUALNAME() from MODULE; where that cannot be
done (a class defined in a notebook, one that needs arguments) loading says so in one line and asks for it again.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from typing import Callable

from .errors import UserError

_TABLES: dict[str, dict[str, Callable]] = {"net": {}, "translation-net": {}, "recipe": {}, "metric": {}}
_PROVIDED: dict[str, object] = {}  # "py:..." name -> the module a caller handed in, while it is being used


def register(kind: str, name: str):
    def deco(fn):
        table = _TABLES[kind]
        if name in table:
            raise ValueError(f"{kind} '{name}' registered twice")
        table[name] = fn
        return fn

    return deco


def get(kind: str, name: str) -> Callable:
    if kind == "net" and name.startswith("py:"):
        return functools.partial(build_python_net, name)
    table = _TABLES[kind]
    if name not in table:
        raise UserError(f"unknown {kind} '{name}' (known: {', '.join(sorted(table))}; a plugin's own: name its "
                        "module with --import)")
    return table[name]


def names(kind: str) -> list[str]:
    return sorted(_TABLES[kind])


def class_name(module) -> str:
    """The name a run records for a network given as a module: py:MODULE:QUALNAME."""
    return f"py:{type(module).__module__}:{type(module).__qualname__}"


@contextlib.contextmanager
def provided(named: dict):
    """While open, the nets named in `named` ({"py:...": module}) are these very modules (a caller's own)."""
    _PROVIDED.update(named)
    try:
        yield
    finally:
        for k in named:
            _PROVIDED.pop(k, None)


def build_python_net(name: str, cfg=None, shape=None, data=None):
    if name in _PROVIDED:
        return _PROVIDED[name]
    _, module, qual = name.split(":", 2)
    again = f"pass it again: counterfeit.load(RUN, nets={{'G' or 'D': {qual}(...)}})"
    try:
        obj = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise UserError(f"this run's network {module}.{qual} cannot be imported here ({e}); make {module} "
                        f"importable or {again}") from None
    try:
        return obj()
    except TypeError as e:
        raise UserError(f"this run's network {module}.{qual} cannot be built without arguments ({e}); {again}") \
            from None


def import_plugins(modules) -> None:
    """Import the modules a run names in `imports` (they register nets, recipes or datasets)."""
    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError as e:
            raise UserError(f"plugin module '{m}' (the config's imports) cannot be imported: {e}") from None
