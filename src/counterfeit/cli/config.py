"""Print every config key of a preset: its value, type, default, allowed range and what it does."""

from __future__ import annotations

import json
import textwrap

from .. import config


def build_parser(p):
    p.add_argument("preset", nargs="?", default=None, help="a preset name or a YAML file (default: the built-in "
                   "defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key, as for train (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per key instead of the table")
    return p


def rows(cfg: config.Config) -> list[dict]:
    """Every leaf setting of cfg: key, value, default, type, range, resumable, doc."""
    defaults = config.Config()
    return [{"key": key, "value": config.get(cfg, key), "default": config.get(defaults, key), "type": tp.__name__,
             "range": config.describe_range(f), "resumable": bool(f.metadata.get("resumable")),
             "doc": f.metadata.get("doc", "")}
            for key, f, tp in config.settings()]


def run(args) -> int:
    if args.preset is None:
        cfg = config.from_dict(config.apply_overrides({}, args.overrides))
    else:
        cfg = config.load_config(args.preset, args.overrides)
    table = rows(cfg)
    if args.json:
        for r in table:
            print(json.dumps(r))
        return 0
    width = max(len(r["key"]) for r in table)
    for r in table:
        changed = "" if r["value"] == r["default"] else f"  (default {r['default']!r})"
        where = f"  [{r['range']}]" if r["range"] else ""
        resume = "  may change on --resume" if r["resumable"] else ""
        print(f"{r['key']:<{width}}  {r['value']!r}  {r['type']}{where}{changed}{resume}")
        for line in textwrap.wrap(r["doc"], 110 - width):
            print(f"{'':<{width}}    {line}")
    return 0
