"""Draws a Grafana dashboard's panels from a real Prometheus, as one HTML page of SVG charts.

Grafana itself cannot be installed on these machines (neither its packages nor its Go modules
are reachable), so the Prometheus test draws what the dashboards would show: each panel of
the JSON at its ``gridPos``, each target's ``expr`` over the test's time range
(``/api/v1/query_range``), named by its ``legendFormat``, in the panel's unit. A screenshot of
this page is a preview of the data, not of Grafana's look; the dashboards' JSON is what users
load (deploy/grafana/).
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

import httpx

ROW_PX = 34
"""Height of one grid row (Grafana's is 30 px plus margins)."""
GAP_PX = 8
PALETTE = ["#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff", "#ca95e5"]


def query_range(
    url: str, expr: str, start: float, end: float, step: float
) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
    """Each series of ``expr`` between ``start`` and ``end``: its labels and its points."""
    r = httpx.get(
        f"{url}/api/v1/query_range",
        params={"query": expr, "start": start, "end": end, "step": step},
        timeout=30,
    )
    r.raise_for_status()
    out = []
    for s in r.json()["data"]["result"]:
        points = [(float(t), float(v)) for t, v in s["values"] if math.isfinite(float(v))]
        if points:
            out.append((s["metric"], points))
    return out


def legend(fmt: str, labels: dict[str, str]) -> str:
    """Grafana's ``{{label}}`` substitution; the labels themselves without a format."""
    if fmt:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)
    shown = {k: v for k, v in labels.items() if k not in ("__name__", "instance", "job")}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "value"


def with_unit(value: float, unit: str) -> str:
    """A value as the panel's unit shows it (the units our dashboards use)."""
    if unit == "s":
        return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"
    if unit == "bytes":
        return f"{value / 1e6:.0f} MB"
    if unit == "percentunit":
        return f"{value * 100:.0f} %"
    if unit == "reqps":
        return f"{value:.1f}/s"
    return f"{value:.3g}"


def panel_svg(
    series: list[tuple[str, list[tuple[float, float]]]], unit: str, width: int, height: int
) -> str:
    """Lines of ``series`` (name, points) with their extremes on the axis, in SVG."""
    left, bottom = 64, 18
    plot_w, plot_h = width - left - 8, height - bottom - 6
    times = [t for _, pts in series for t, _ in pts]
    values = [v for _, pts in series for _, v in pts]
    t0, t1 = min(times), max(times)
    v0, v1 = min(0.0, min(values)), max(values)
    if v1 == v0:
        v1 = v0 + 1
    span_t = (t1 - t0) or 1

    def xy(t: float, v: float) -> str:
        x = left + (t - t0) / span_t * plot_w
        y = 6 + plot_h - (v - v0) / (v1 - v0) * plot_h
        return f"{x:.1f},{y:.1f}"

    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for frac in (0, 0.5, 1):
        y = 6 + plot_h - frac * plot_h
        label = html.escape(with_unit(v0 + frac * (v1 - v0), unit))
        parts.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{label}</text>'
        )
    minutes = span_t / 60
    parts.append(f'<text x="{left}" y="{height - 3}" class="axis">-{minutes:.1f} min</text>')
    parts.append(
        f'<text x="{width - 8}" y="{height - 3}" class="axis" text-anchor="end">now</text>'
    )
    for i, (_, pts) in enumerate(series):
        line = " ".join(xy(t, v) for t, v in pts)
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<polyline points="{line}" stroke="{colour}" class="series"/>')
    parts.append("</svg>")
    return "".join(parts)


def render(
    dashboard: dict[str, Any], url: str, start: float, end: float, variables: dict[str, str]
) -> str:
    """The whole dashboard as an HTML page (``variables``: ``$name`` substitutions)."""
    step = max(1.0, (end - start) / 200)
    cells = []
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        named: list[tuple[str, list[tuple[float, float]]]] = []
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(f"${name}", value)
            for labels, points in query_range(url, expr, start, end, step):
                named.append((legend(target.get("legendFormat", ""), labels), points))
        # The cell spans its rows and the gaps between them; the title and legend take 56 px.
        width, height = g["w"] * 1400 // 24 - 16, g["h"] * (ROW_PX + GAP_PX) - GAP_PX - 56
        chart = panel_svg(named, unit, width, height) if named else '<p class="empty">No data</p>'
        keys = "".join(
            f'<span><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{html.escape(n)}</span>'
            for i, (n, _) in enumerate(named[:8])
        )
        cells.append(
            f'<section class="panel" data-series="{len(named)}" style="grid-column:{g["x"] + 1}'
            f' / span {g["w"]};grid-row:{g["y"] + 1} / span {g["h"]}">'
            f"<h2>{html.escape(panel['title'])}</h2>{chart}<div class=legend>{keys}</div></section>"
        )
    title = html.escape(dashboard.get("title", "dashboard"))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body {{ background:#111217; color:#ccccdc; font:13px system-ui, sans-serif; margin:12px; }}
header {{ margin-bottom:10px; }} header b {{ font-size:17px; color:#fff; }}
.grid24 {{ display:grid; grid-template-columns:repeat(24, 1fr); grid-auto-rows:{ROW_PX}px;
  gap:{GAP_PX}px; width:1400px; }}
.panel {{ background:#181b1f; border:1px solid #2c3235; border-radius:3px; padding:6px 8px;
  overflow:hidden; }}
h2 {{ font-size:13px; margin:0 0 4px; color:#fff; font-weight:500; }}
.series {{ fill:none; stroke-width:1.6; }} .grid {{ stroke:#2c3235; }}
.axis {{ fill:#8e8e8e; font-size:10px; }} .empty {{ color:#8e8e8e; }}
.legend span {{ margin-right:12px; font-size:11px; white-space:nowrap; }}
.legend i {{ display:inline-block; width:12px; height:3px; margin-right:4px;
  vertical-align:middle; }}
</style></head><body><header><b>{title}</b> &nbsp;preview drawn from the test's Prometheus
(the panels' queries, not Grafana)</header><div class="grid24">{"".join(cells)}</div>
</body></html>"""
