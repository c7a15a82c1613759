"""Line charts as inline SVG, for a page that opens with no server and no network
(gps_agent_ros.report_html): no plotting library, no script, every point a <circle> whose
<title> shows its exact value on hover.

    line_chart('mean cost', [1, 2, 3], [('cost', [5.0, 3.0, 2.5], '#1f77b4', '')], log=True)
"""
from __future__ import annotations

import html
import math
from typing import Any, Sequence

import numpy as np


def line_chart(title: str, xs: Sequence, series: Sequence[tuple[str, Sequence, str, str]], *,
               ylabel: str = '', log: bool = False, hline: tuple[float, str] | None = None,
               ylim: tuple[float, float] | None = None) -> str:
    """A line chart as inline SVG. series: (label, ys, color, dash pattern ('' solid)); points
    that are missing, non-finite (or <= 0 on a log axis) are left out."""
    W, H, L, R, T, B = 440, 250, 62, 12, 26, 34
    pts = []
    for label, ys, color, dash in series:
        p = [(float(x), float(y)) for x, y in zip(xs, ys)
             if x is not None and finite(y) and (not log or float(y) > 0)]
        pts.append((label, p, color, dash))
    allx = [x for _, p, _, _ in pts for x, _ in p]
    ally = [y for _, p, _, _ in pts for _, y in p]
    if hline is not None and (not log or hline[0] > 0):
        ally.append(hline[0])
    if not allx:
        return (f'<figure class="chart"><svg width="{W}" height="{H}"><text x="{W / 2}" y="{H / 2}" '
                f'text-anchor="middle" class="muted">no data</text></svg><figcaption>{esc(title)}'
                f'</figcaption></figure>')
    x0, x1 = min(allx), max(allx)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if ylim is not None:
        y0, y1 = ylim
    else:
        y0, y1 = min(ally), max(ally)
    f = math.log10 if log else (lambda v: v)
    fy0, fy1 = f(y0), f(y1)
    if fy1 - fy0 < 1e-12:
        fy0, fy1 = fy0 - (0.5 if log else max(abs(fy0) * 0.1, 0.5)), fy1 + (0.5 if log else max(abs(fy1) * 0.1, 0.5))
    pad = 0.05 * (fy1 - fy0)
    fy0, fy1 = fy0 - pad, fy1 + pad

    def sx(x: float) -> float:
        return L + (x - x0) / (x1 - x0) * (W - L - R)

    def sy(y: float) -> float:
        return T + (fy1 - f(y)) / (fy1 - fy0) * (H - T - B)

    out = [f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" class="frame"/>']
    for tv in _yticks(fy0, fy1, log):
        y = sy(tv)
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{L - 4}" y="{y + 3:.1f}" text-anchor="end">{tv:.4g}</text>')
    for tx in _xticks(x0, x1):
        x = sx(tx)
        out.append(f'<text x="{x:.1f}" y="{H - B + 14}" text-anchor="middle">{tx:g}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 4}" text-anchor="middle" class="muted">iteration</text>')
    if ylabel:
        out.append(f'<text x="12" y="{(T + H - B) / 2}" transform="rotate(-90 12 {(T + H - B) / 2})" '
                   f'text-anchor="middle" class="muted">{esc(ylabel)}</text>')
    if hline is not None and (not log or hline[0] > 0):
        y = sy(hline[0])
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" class="hline">'
                   f'<title>{esc(hline[1])}</title></line>')
    for label, p, color, dash in pts:
        if not p:
            continue
        d = ' '.join(f'{sx(x):.1f},{sy(y):.1f}' for x, y in p)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ''
        out.append(f'<polyline points="{d}" stroke="{color}"{dash_attr} class="series">'
                   f'<title>{esc(label)}</title></polyline>')
        out.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{color}">'
                   f'<title>{esc(label)}, iteration {fmt(x)}: {fmt(y)}</title></circle>' for x, y in p)
    return (f'<figure class="chart"><svg width="{W}" height="{H}" viewBox="0 0 {W} {H}">{"".join(out)}</svg>'
            f'<figcaption>{esc(title)}</figcaption></figure>')


def _yticks(f0: float, f1: float, log: bool) -> list[float]:
    """Tick values (data units) inside the transformed range [f0, f1]."""
    if log:
        lo, hi = math.ceil(f0), math.floor(f1)
        if hi >= lo:
            step = max(1, math.ceil((hi - lo + 1) / 6))
            return [10.0 ** e for e in range(lo, hi + 1, step)]
        return [10.0 ** ((f0 + f1) / 2)]
    step = _nice_step((f1 - f0) / 5)
    start = math.ceil(f0 / step) * step
    return [start + i * step for i in range(int((f1 - start) / step) + 1)]


def _xticks(x0: float, x1: float) -> list[float]:
    step = max(1, math.ceil((x1 - x0) / 10))
    return [float(v) for v in range(math.ceil(x0), math.floor(x1) + 1, step)]


def _nice_step(raw: float) -> float:
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def fmt(v: float) -> str:
    """4 significant digits, plain notation where that stays short."""
    if not math.isfinite(v):
        return str(v)
    if v == 0 or 1e-3 <= abs(v) < 1e5:
        return f'{v:.4g}'
    return f'{v:.3e}'


def points(xy: np.ndarray) -> str:
    """[K, 2] pixels -> an SVG points list, 0.1 px."""
    return ('%.1f,%.1f ' * len(xy) % tuple(xy.ravel().tolist())).rstrip()


def esc(v: Any) -> str:
    """Text for HTML/SVG content or a quoted attribute."""
    return html.escape(str(v), quote=True)


def finite(v: Any) -> bool:
    """A finite real number (not a bool, None, or a missing value)."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)
