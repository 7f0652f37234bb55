"""report.html: one self-contained file per run (config, curves, sample grids, GIF, metrics) that opens in a
browser from disk, with every image inlined as base64 and no scripts or network requests."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ..errors import UserError
from .curves import read_metrics

IMAGES = [("curves.png", "Training curves"), ("progress.gif", "Fixed-noise samples over training"),
          ("figure1.png", "Figure 1 (1D game)"), ("interpolation.png", "Latent interpolation"),
          ("gradients.png", "Generator gradients"),
          ("latent-map.png", "Where G sends its noise (2-D toy runs)")]


def _img(path: Path, alt: str) -> str:
    mime = "image/gif" if path.suffix == ".gif" else "image/png"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:{mime};base64,{data}"><figcaption>{html.escape(alt)} ' \
           f'({html.escape(path.name)})</figcaption></figure>'


def _table(d: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in d.items())
    return f"<table>{rows}</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.5g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items() if not isinstance(x, (list, dict)))
    return str(v)


def write_report(run_dir: Path) -> Path:
    run = Path(run_dir)
    try:
        cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{run / 'config.json'} is not valid JSON ({e}); the run's checkpoints hold its config: "
                        "resume it to write the file again") from None
    rows = read_metrics(run / "metrics.jsonl")
    train_rows = [r for r in rows if "loss/D/total" in r]
    last = train_rows[-1] if train_rows else {}
    monitor = [r for r in rows if any(k.startswith(("parzen/", "toy/")) for k in r)]
    samples = sorted((run / "samples").glob("step-*.png"))
    parts = [f"<h1>{html.escape(cfg.get('name', run.name))}</h1>",
             f"<p>{html.escape(cfg.get('description', ''))}</p>",
             f"<p>Run dir: <code>{html.escape(str(run.resolve()))}</code>; recipe <b>{html.escape(str(cfg.get('model', {}).get('recipe', '?')))}</b> "
             f"on <b>{html.escape(str(cfg.get('data', {}).get('name', '?')))}</b>.</p>"]
    if last:
        parts.append("<h2>Last logged step</h2>" + _table(last))
    if monitor:
        parts.append("<h2>Monitors</h2>" + _table({k: v for k, v in monitor[-1].items()}))
    for p in sorted(run.glob("eval*.json")):
        try:
            parts.append(f"<h2>Evaluation: {html.escape(p.name)}</h2>" + _table(json.loads(p.read_text())))
        except json.JSONDecodeError:
            continue
    for name, alt in IMAGES:
        if (run / name).is_file():
            parts.append(_img(run / name, alt))
    if samples:
        parts.append(_img(samples[-1], f"Samples at the last tick ({samples[-1].stem})"))
    parts.append("<h2>Resolved config</h2><pre>" + html.escape(json.dumps(cfg, indent=2, sort_keys=True)) + "</pre>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222;background:#fff}"
             "img{max-width:100%;border:1px solid #ccc}figure{margin:1.5em 0}table{border-collapse:collapse}"
             "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}pre{background:#f6f6f6;"
             "padding:1em;font-size:12px;overflow:auto}")
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>counterfeit: {html.escape(cfg.get('name', run.name))}"
           f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>")
    out = run / "report.html"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(doc)
    tmp.replace(out)
    return out
