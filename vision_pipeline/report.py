"""The HTML report: one self-contained file (inline CSS, thumbnails as data
URIs, no script, no external reference). Every value that came from outside
(query, descriptions, file names, EXIF, a model's answer) is escaped."""
from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

METRIC_ROWS = (
    ("Dimensions", lambda m: f"{m.get('width')} × {m.get('height')} px ({m.get('megapixels')} MP)"),
    ("Format", lambda m: f"{m.get('format')}, {m.get('size_bytes', 0) / 1024:.0f} KB"),
    ("Sharpness index", lambda m: f"{m.get('sharpness_index')} (Laplacian variance {m.get('laplacian_variance')})"),
    ("Noise σ", lambda m: m.get("noise_sigma")),
    ("Brightness / contrast", lambda m: f"{m.get('brightness')} / {m.get('contrast')}"),
    ("Clipped highlights / shadows", lambda m: f"{100 * (m.get('clipped_highlights') or 0):.1f}% / "
                                               f"{100 * (m.get('clipped_shadows') or 0):.1f}%"),
    ("Colour cast (Lab)", lambda m: f"{m.get('colour_cast')} {m.get('cast_hue') or ''}".strip()),
    ("Rust-coloured area", lambda m: f"{100 * (m.get('rust_share') or 0):.2f}%"),
    ("Crack-like segments", lambda m: f"{m.get('crack_segments')} (length {m.get('crack_length_ratio')} diagonals)"),
    ("Edge density", lambda m: f"{100 * (m.get('edge_density') or 0):.2f}%"),
    ("Text (OCR)", lambda m: _ocr_row(m.get("ocr"))),
)


def _ocr_row(reading: Any) -> str:
    if not isinstance(reading, dict):
        raise ValueError("not read")
    lines = reading.get("lines") or []
    if not lines:
        return "none found"
    return f"{len(lines)} line{'s' if len(lines) != 1 else ''}, confidence {100 * float(reading['confidence']):.0f}%"

CSS = """
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
background:#f4f5f7;color:#1f2328}header{background:#1f2d3d;color:#fff;padding:20px 28px}h1{margin:0 0 6px;
font-size:22px}header dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0 0}
header dt{opacity:.7}header dd{margin:0}main{padding:20px 28px;max-width:1200px}
.summary{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:18px}.stat{background:#fff;border-radius:8px;
padding:10px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}.stat b{display:block;font-size:22px}
.answer{background:#fff;border-left:4px solid #1565c0;padding:12px 16px;margin-bottom:18px;white-space:pre-wrap}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:16px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 2px rgba(0,0,0,.08);overflow:hidden}
.card img{width:100%;height:220px;object-fit:cover;background:#ddd;display:block}.card .body{padding:12px 14px}
.card h2{font-size:15px;margin:0 0 4px;word-break:break-all}.desc{color:#57606a;margin:0 0 8px}
.flag{display:inline-block;background:#fdecea;color:#b3261e;border-radius:10px;padding:1px 8px;margin:0 4px 4px 0;
font-size:12px}.ok{background:#e6f4ea;color:#1e6b34}table{width:100%;border-collapse:collapse;font-size:12px;
margin-top:8px}td{padding:3px 4px;border-top:1px solid #eee;vertical-align:top}td:first-child{color:#57606a;
width:45%}.error{color:#b3261e}.finding{margin:8px 0 0}footer{color:#57606a;padding:0 28px 24px;font-size:12px}
.ocr{margin:8px 0 0;padding:6px 10px;background:#f6f8fa;border-left:3px solid #8c959f;white-space:pre-wrap;
font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;max-height:180px;overflow:auto}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def render_report(*, batch_id: str, run_code: str, organization: str, user_query: str, model: str,
                  created: datetime, images: list[dict[str, Any]], answer: dict[str, Any] | None = None) -> str:
    """``images``: dicts with filename, description, status, metrics, flags, findings, thumbnail, error."""
    analysed = [image for image in images if image.get("status") == "done"]
    failed = [image for image in images if image.get("status") == "failed"]
    flag_counts: dict[str, int] = {}
    for image in analysed:
        for flag in image.get("flags") or []:
            flag_counts[flag] = flag_counts.get(flag, 0) + 1
    flagged = sum(1 for image in analysed if image.get("flags"))
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        # No script, no remote anything: the report is read where it lands.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">",
        f"<title>Vision analysis report {_e(run_code or batch_id)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>Vision analysis report</h1><dl>"
        f"<dt>Run</dt><dd>{_e(run_code or '—')}</dd>"
        f"<dt>Organization</dt><dd>{_e(organization or '—')}</dd>"
        f"<dt>Query</dt><dd>{_e(user_query or '—')}</dd>"
        f"<dt>Model</dt><dd>{_e(model)}</dd>"
        f"<dt>Created</dt><dd>{_e(created.strftime('%Y-%m-%d %H:%M:%S %Z').strip())}</dd>"
        f"<dt>Batch</dt><dd>{_e(batch_id)}</dd></dl></header><main>",
        "<section class=\"summary\">",
        f"<div class=\"stat\"><b>{len(images)}</b>images</div>",
        f"<div class=\"stat\"><b>{len(analysed)}</b>analysed</div>",
        f"<div class=\"stat\"><b>{flagged}</b>with findings</div>",
        f"<div class=\"stat\"><b>{len(failed)}</b>failed</div>",
    ]
    for flag, count in sorted(flag_counts.items(), key=lambda item: (-item[1], item[0])):
        parts.append(f"<div class=\"stat\"><b>{count}</b>{_e(flag.replace('_', ' '))}</div>")
    parts.append("</section>")
    if answer and answer.get("answer"):
        parts.append(f"<h2>Model answer ({_e(answer.get('model', model))})</h2>"
                     f"<div class=\"answer\">{_e(answer['answer'])}</div>")
    parts.append("<section class=\"cards\">")
    for image in images:
        thumbnail = image.get("thumbnail") or ""
        if not thumbnail.startswith("data:image/jpeg;base64,"):
            thumbnail = ""
        parts.append("<article class=\"card\">")
        if thumbnail:
            parts.append(f"<img alt=\"{_e(image.get('filename'))}\" src=\"{_e(thumbnail)}\">")
        parts.append(f"<div class=\"body\"><h2>{_e(image.get('filename'))}</h2>")
        if image.get("description"):
            parts.append(f"<p class=\"desc\">{_e(image['description'])}</p>")
        if image.get("status") == "failed":
            parts.append(f"<p class=\"error\">Not analysed: {_e(image.get('error'))}</p></div></article>")
            continue
        flags = image.get("flags") or []
        parts.append("".join(f"<span class=\"flag\">{_e(flag.replace('_', ' '))}</span>" for flag in flags)
                     or "<span class=\"flag ok\">no findings</span>")
        for finding in image.get("findings") or []:
            parts.append(f"<p class=\"finding\">{_e(finding)}</p>")
        metrics = image.get("metrics") or {}
        reading = metrics.get("ocr")
        if isinstance(reading, dict) and reading.get("text"):
            parts.append(f"<blockquote class=\"ocr\" title=\"Text read by OCR\">{_e(reading['text'])}</blockquote>")
        rows = []
        for label, value in METRIC_ROWS:
            try:
                rows.append(f"<tr><td>{_e(label)}</td><td>{_e(value(metrics))}</td></tr>")
            except (TypeError, ValueError):
                continue
        colours = metrics.get("dominant_colours") or []
        if colours:
            swatches = " ".join(
                f"<span style=\"display:inline-block;width:12px;height:12px;border-radius:2px;"
                f"background:{_e(c['hex'])}\"></span> {_e(c['hex'])} {100 * c['share']:.0f}%"
                for c in colours if isinstance(c, dict) and str(c.get("hex", "")).startswith("#")
                and len(str(c["hex"])) == 7
            )
            rows.append(f"<tr><td>Dominant colours</td><td>{swatches}</td></tr>")
        for key, value in (metrics.get("exif") or {}).items():
            rows.append(f"<tr><td>EXIF {_e(key)}</td><td>{_e(value)}</td></tr>")
        parts.append(f"<table>{''.join(rows)}</table></div></article>")
    parts.append("</section></main>")
    parts.append("<footer>Generated by jobsite's vision pipeline. Thresholds: see README, \"Vision analysis\"."
                 "</footer></body></html>")
    return "".join(parts)
