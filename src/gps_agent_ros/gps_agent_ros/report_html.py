"""The run report: one static, self-contained OUT/report.html, rewritten every iteration.

It opens from disk with no server and no network (next to a robot, offline): charts are inline
SVG drawn here, the 3-D end-effector views are inline SVG projected here and made rotatable by a
few lines of inline JavaScript (drag to rotate all views together, double-click to reset); without
JavaScript the views still show the default projection. Nothing is fetched from anywhere.

Content, per iteration of the metrics records (the trainer's ``metrics.json``): mean cost and the
samples' final end-effector distance per condition; per condition the achieved KL, its bound ε
(``kl_step``), η and the step-size multiplier; for the network algorithms the policy alone on the
training conditions (how many it reaches) and on the test conditions (success rate, worst
distance); other per-condition lists an algorithm adds (e.g. BADMM's ``pol_wt_mean``); and the
seconds each phase took. Every number is in a table cell whose ``data-value`` attribute holds
the exact value (``repr``) next to the rounded text, so the report can be checked (or scraped).

End-effector paths: ``paths`` maps an iteration number to per-condition arrays ``[N, T, 3]`` (the
N samples' positions of the end-effector point whose distance defines success, base frame, m);
normally the first and the latest iteration. ``targets [M, 3]`` are those points' targets.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from gps_agent_ros.svg_chart import esc, finite, fmt, line_chart, points

# Per-condition colors (matplotlib's tab20, dark shades first): distinct for up to 20 conditions.
_COLORS = ('#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f',
           '#bcbd22', '#17becf', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94',
           '#f7b6d2', '#c7c7c7', '#dbdb8d', '#9edae5')
_PER_CONDITION = ('final_ee_distance', 'kl', 'kl_step', 'eta', 'step_mult')
_POLICY = ('policy_final_ee_distance', 'policy_test_final_ee_distance', 'policy_test_success_rate')
_KNOWN = frozenset({'iteration', 'samples', 'mean_cost', 'seconds', *_PER_CONDITION, *_POLICY})
_AZIMUTH, _ELEVATION = -60.0, 25.0      # default 3-D view [deg]
_VIEW = 250                             # 3-D panel size [px]
_TRIAD = 24                             # axes triad: corner offset [px] (its arms are 0.8 of it)


def write_report(path: Path | str, metrics: Mapping[str, Any], *, threshold: float,
                 targets: np.ndarray | Sequence[Sequence[float]] | None = None,
                 paths: Mapping[int, Sequence[np.ndarray]] | None = None,
                 condition_names: Sequence[str] | None = None, algorithm: str = '') -> Path:
    """Write the report for `metrics` to `path` atomically (a temporary file in the same
    directory, then a rename: a reader never sees half a report).

    metrics: what the trainer writes to metrics.json (``experiment``, ``agent``, ``iterations``:
    the per-iteration records, ``solved_at_iteration``, ``policy_solved_at_iteration``).
    threshold: success distance [m]. targets [M, 3], paths {iteration: [[N, T, 3]] * M}: see the
    module doc. condition_names: M labels (default '0'..'M-1'). Returns `path`.
    """
    path = Path(path)
    text = render_report(metrics, threshold=threshold, targets=targets, paths=paths,
                         condition_names=condition_names, algorithm=algorithm)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')    # open(): the umask's file mode
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def render_report(metrics: Mapping[str, Any], *, threshold: float,
                  targets: np.ndarray | Sequence[Sequence[float]] | None = None,
                  paths: Mapping[int, Sequence[np.ndarray]] | None = None,
                  condition_names: Sequence[str] | None = None, algorithm: str = '') -> str:
    """The report's HTML text (see write_report)."""
    records = list(metrics.get('iterations', []))
    n_cond = max((len(r.get('final_ee_distance', [])) for r in records), default=0)
    if paths:
        n_cond = max(n_cond, *(len(p) for p in paths.values()))
    names = [str(n) for n in condition_names] if condition_names is not None else [str(m) for m in range(n_cond)]
    if len(names) < n_cond:
        raise ValueError(f'{len(names)} condition names for {n_cond} conditions')
    title = str(metrics.get('experiment', 'GPS run'))
    body = [f'<h1>{esc(title)}</h1>', _summary(metrics, records, threshold, algorithm)]
    body.append(_cost_section(records, names, threshold))
    if paths:
        body.append(_paths_section(paths, targets, names))
    body.append(_traj_opt_section(records, names))
    if any(k in r for r in records for k in _POLICY):
        body.append(_policy_section(records, names, threshold))
    body.append(_extra_section(records))
    body.append(_seconds_section(records))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{esc(title)}: GPS report</title><style>{_CSS}</style></head>\n<body>\n'
            + '\n'.join(b for b in body if b) + f'\n<script>{_JS}</script>\n</body></html>\n')


# ------------------------------------------------------------------------------ sections
def _summary(metrics: Mapping[str, Any], records: list[dict], threshold: float, algorithm: str) -> str:
    last = records[-1] if records else {}
    items = [('agent', metrics.get('agent')), ('algorithm', algorithm or None),
             ('iterations', len(records)), ('success distance [m]', threshold),
             ('samples solved at iteration', metrics.get('solved_at_iteration'))]
    if any(k in r for r in records for k in _POLICY):
        items.append(('network solved at iteration', metrics.get('policy_solved_at_iteration')))
    if last.get('final_ee_distance'):
        d = last['final_ee_distance']
        items.append((f'conditions within {threshold} m, iteration {last.get("iteration")}',
                      f'{sum(_le(x, threshold) for x in d)}/{len(d)}'))
    rows = ''.join(f'<tr><th>{esc(k)}</th>{_cell("not yet" if v is None else v)}</tr>' for k, v in items
                   if v is not None or k.endswith('solved at iteration'))
    return f'<table id="summary" class="summary">{rows}</table>'


def _cost_section(records: list[dict], names: list[str], threshold: float) -> str:
    its = [r.get('iteration') for r in records]
    cost_chart = line_chart('mean trajectory cost', its, [('mean cost', [r.get('mean_cost') for r in records],
                                                           _COLORS[0], '')], ylabel='cost')
    dist_series = [(f'condition {n}', _column(records, 'final_ee_distance', m), _color(m), '')
                   for m, n in enumerate(names)]
    if any('policy_final_ee_distance' in r for r in records):
        dist_series += [(f'network, condition {n}', _column(records, 'policy_final_ee_distance', m),
                         _color(m), '4 3') for m, n in enumerate(names)]
    dist_chart = line_chart('final end-effector distance', its, dist_series, ylabel='m', log=True,
                            hline=(threshold, f'success {threshold} m'))
    summary_cols = [('samples', lambda r: r.get('samples')), ('mean cost', lambda r: r.get('mean_cost')),
                    ('mean final distance [m]', lambda r: _mean(r.get('final_ee_distance'))),
                    ('worst final distance [m]', lambda r: _max(r.get('final_ee_distance'))),
                    (f'conditions within {threshold} m',
                     lambda r: _count_within(r.get('final_ee_distance'), threshold))]
    return ('<section id="cost"><h2>Cost and distance to target</h2>'
            f'<div class="charts">{cost_chart}{dist_chart}</div>{_legend(names)}'
            + _table('per-iteration', 'Per iteration (controllers\' samples)', records, summary_cols)
            + _condition_table('final_ee_distance', 'Final end-effector distance per condition [m] '
                               '(mean over the samples)', records, names)
            + '</section>')


def _traj_opt_section(records: list[dict], names: list[str]) -> str:
    its = [r.get('iteration') for r in records]
    kl_series = [(f'KL, condition {n}', _column(records, 'kl', m), _color(m), '') for m, n in enumerate(names)]
    kl_series += [(f'ε, condition {n}', _column(records, 'kl_step', m), _color(m), '4 3')
                  for m, n in enumerate(names)]
    def per_condition(key: str) -> list:
        return [(f'condition {n}', _column(records, key, m), _color(m), '') for m, n in enumerate(names)]

    charts = [line_chart('KL(p_new ‖ p_old) (solid) and its bound ε (dashed)', its, kl_series, ylabel='nats',
                         log=True),
              line_chart('η (Lagrange multiplier of the KL bound)', its, per_condition('eta'), log=True),
              line_chart('step-size multiplier', its, per_condition('step_mult'), log=True)]
    tables = [_condition_table('kl', 'Achieved KL per condition', records, names),
              _condition_table('kl_step', 'KL bound ε per condition', records, names),
              _condition_table('eta', 'η per condition', records, names),
              _condition_table('step_mult', 'Step-size multiplier per condition', records, names)]
    return ('<section id="traj-opt"><h2>Trajectory optimization</h2>'
            f'<div class="charts">{"".join(charts)}</div>{_legend(names)}{"".join(tables)}</section>')


def _policy_section(records: list[dict], names: list[str], threshold: float) -> str:
    its = [r.get('iteration') for r in records]
    train_rate = [_rate_within(r.get('policy_final_ee_distance'), threshold) for r in records]
    test_rate = [r.get('policy_test_success_rate') for r in records]
    chart = line_chart(f'network alone: share of conditions within {threshold} m', its,
                       [('training conditions', train_rate, _COLORS[0], ''),
                        ('test conditions', test_rate, _COLORS[1], '4 3')], ylabel='share', ylim=(0.0, 1.0))
    cols = [('training conditions reached', lambda r: _count_within(r.get('policy_final_ee_distance'), threshold)),
            ('training success rate', lambda r: _rate_within(r.get('policy_final_ee_distance'), threshold)),
            ('test success rate', lambda r: r.get('policy_test_success_rate')),
            ('test conditions reached', lambda r: _count_within(r.get('policy_test_final_ee_distance'), threshold)),
            ('worst test distance [m]', lambda r: _max(r.get('policy_test_final_ee_distance'))),
            ('mean test distance [m]', lambda r: _mean(r.get('policy_test_final_ee_distance')))]
    n_test = max((len(r.get('policy_test_final_ee_distance') or []) for r in records), default=0)
    return ('<section id="policy"><h2>Neural-network policy (alone, noiseless)</h2>'
            f'<div class="charts">{chart}</div>'
            + _table('policy-success', 'Policy success per iteration', records, cols)
            + _condition_table('policy_final_ee_distance', 'Network\'s final distance per training '
                               'condition [m]', records, names)
            + (_condition_table('policy_test_final_ee_distance', 'Network\'s final distance per test '
                                'condition [m]', records, [str(i) for i in range(n_test)]) if n_test else '')
            + '</section>')


def _extra_section(records: list[dict]) -> str:
    keys = sorted({k for r in records for k, v in r.items()
                   if k not in _KNOWN and isinstance(v, (list, tuple))})
    if not keys:
        return ''
    tables = []
    for k in keys:
        width = max(len(r.get(k) or []) for r in records)
        tables.append(_condition_table(k, k, records, [str(i) for i in range(width)]))
    return f'<section id="algorithm-extra"><h2>Algorithm-specific values</h2>{"".join(tables)}</section>'


def _seconds_section(records: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in records for k in (r.get('seconds') or {})))
    if not keys:
        return ''
    cols = [(k, lambda r, k=k: (r.get('seconds') or {}).get(k)) for k in keys]
    cols.append(('total', lambda r: sum(v for v in (r.get('seconds') or {}).values()
                                        if isinstance(v, (int, float)))))
    return ('<section id="time"><h2>Time per iteration [s]</h2>'
            + _table('seconds', 'Seconds per phase', records, cols) + '</section>')


# ------------------------------------------------------------------------------ 3-D paths
def _paths_section(paths: Mapping[int, Sequence[np.ndarray]], targets, names: list[str]) -> str:
    iters = sorted(int(i) for i in paths)
    tgt = None if targets is None else np.asarray(targets, dtype=np.float64).reshape(-1, 3)
    n_cond = max(len(paths[i]) for i in iters)
    data, panels = [], []
    for m in range(n_cond):
        cond = {'name': names[m], 'color': _color(m), 'target': None, 'iterations': []}
        pts, drawn = [], []          # drawn: (role, [N, T, 3]) for the static view
        if tgt is not None and m < len(tgt):
            cond['target'] = _rounded(tgt[m])
            pts.append(tgt[m][None])
        for k, it in enumerate(iters):
            if m >= len(paths[it]):
                continue
            p = np.asarray(paths[it][m], dtype=np.float64)
            if p.ndim != 3 or p.shape[2] != 3:
                raise ValueError(f'paths[{it}][{m}] must be [N, T, 3], got {list(p.shape)}')
            cond['iterations'].append({'iteration': it, 'role': _role(k, len(iters)), 'paths': _rounded(p)})
            drawn.append((_role(k, len(iters)), np.round(p, 4)))    # what the script redraws
            pts.append(p.reshape(-1, 3))
        allp = np.concatenate(pts) if pts else np.zeros((0, 3))
        allp = allp[np.isfinite(allp).all(axis=1)]
        if not len(allp):
            allp = np.zeros((1, 3))
        center = (allp.min(axis=0) + allp.max(axis=0)) / 2
        radius = float(np.max(np.linalg.norm(allp - center, axis=1))) or 1e-3
        cond['center'], cond['radius'] = _rounded(center), radius
        data.append(cond)
        panels.append(_panel_svg(m, cond, drawn))
    roles = ''.join(f'<span class="key"><svg width="28" height="10"><line x1="0" y1="5" x2="28" y2="5" '
                    f'class="path {_role(k, len(iters))}" stroke="#444"/></svg> iteration {it}</span>'
                    for k, it in enumerate(iters))
    return ('<section id="paths"><h2>End-effector paths</h2>'
            f'<p class="hint">Each sample\'s end-effector path, base frame; ○ start, ✕ target. {roles} '
            '<span class="key"><span class="axis x">x</span> <span class="axis y">y</span> '
            '<span class="axis z">z</span></span>. Drag a view to rotate all; double-click to reset.</p>'
            f'<div class="views">{"".join(panels)}</div>'
            f'<script type="application/json" id="paths-data">{_json(data)}</script></section>')


def _role(k: int, n: int) -> str:
    return 'last' if k == n - 1 else ('first' if k == 0 else 'middle')


def _panel_svg(m: int, cond: dict, drawn: list[tuple[str, np.ndarray]]) -> str:
    """The condition's view at the default angles; the inline script redraws it when rotated."""
    center, scale = np.asarray(cond['center']), 0.45 * _VIEW / cond['radius']
    R = _rotation(_AZIMUTH, _ELEVATION)

    def project(p: np.ndarray) -> np.ndarray:     # [K, 3] -> [K, 2] pixels
        q = (np.asarray(p, dtype=np.float64).reshape(-1, 3) - center) @ R.T
        return np.stack([_VIEW / 2 + scale * q[:, 0], _VIEW / 2 - scale * q[:, 1]], axis=1)

    parts = []
    for role, samples in drawn:
        color = cond['color'] if role == 'last' else '#777'
        for sample in samples:
            xy = project(sample)
            xy = xy[np.isfinite(xy).all(axis=1)]
            if not len(xy):
                continue
            pts = points(xy)
            parts.append(f'<polyline class="path {role}" stroke="{color}" points="{pts}"/>'
                         f'<circle class="start" cx="{xy[0, 0]:.1f}" cy="{xy[0, 1]:.1f}" r="2.5" '
                         f'stroke="{color}"/>')
    if cond['target'] is not None:
        x, y = project(np.array(cond['target']))[0]
        parts.append(f'<path class="target" d="M{x - 5:.1f},{y - 5:.1f}L{x + 5:.1f},{y + 5:.1f}'
                     f'M{x - 5:.1f},{y + 5:.1f}L{x + 5:.1f},{y - 5:.1f}"/>')
    axes = ''                       # the base frame's axes, drawn in the lower left corner
    for i, c in enumerate('xyz'):
        axes += (f'<line class="axis {c}" x1="{_TRIAD}" y1="{_VIEW - _TRIAD}" '
                 f'x2="{_TRIAD + 0.8 * _TRIAD * R[0, i]:.1f}" y2="{_VIEW - _TRIAD - 0.8 * _TRIAD * R[1, i]:.1f}"/>')
    return (f'<figure class="view"><svg class="view3d" data-index="{m}" width="{_VIEW}" height="{_VIEW}" '
            f'viewBox="0 0 {_VIEW} {_VIEW}"><g class="axes">{axes}</g><g class="scene">{"".join(parts)}</g></svg>'
            f'<figcaption>condition {esc(cond["name"])}</figcaption></figure>')


def _rotation(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """World -> view rotation [3, 3]: rows are the screen right, screen up and depth axes, for a
    camera turned `azimuth` about the world z axis (up) and tilted `elevation` above the horizon.
    The inline script uses the same formula."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    ca, sa, ce, se = math.cos(a), math.sin(a), math.cos(e), math.sin(e)
    return np.array([[ca, -sa, 0.0],
                     [se * sa, se * ca, ce],
                     [-ce * sa, -ce * ca, se]])


# ------------------------------------------------------------------------------ tables
def _table(table_id: str, caption: str, records: list[dict], cols) -> str:
    head = '<tr><th>iteration</th>' + ''.join(f'<th>{esc(name)}</th>' for name, _ in cols) + '</tr>'
    rows = ''.join('<tr>' + _cell(r.get('iteration'), header=True) + ''.join(_cell(f(r)) for _, f in cols)
                   + '</tr>' for r in records)
    return (f'<div class="table"><table id="{table_id}"><caption>{esc(caption)}</caption>'
            f'<thead>{head}</thead><tbody>{rows}</tbody></table></div>')


def _condition_table(key: str, caption: str, records: list[dict], names: list[str]) -> str:
    """Rows: iterations; columns: one per condition (record[key][m])."""
    cols = [(n, lambda r, m=m: _at(r.get(key), m)) for m, n in enumerate(names)]
    return _table(key.replace('_', '-'), caption, records, cols)


def _cell(value: Any, header: bool = False) -> str:
    tag = 'th' if header else 'td'
    if value is None:
        return f'<{tag}></{tag}>'
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return f'<{tag}>{esc(value)}</{tag}>'
    if isinstance(value, (int, np.integer)):
        return f'<{tag} class="num" data-value="{int(value)}">{int(value)}</{tag}>'
    v = float(value)
    return f'<{tag} class="num" data-value="{v!r}">{fmt(v)}</{tag}>'


def _legend(names: list[str]) -> str:
    return ('<p class="legend">' + ''.join(f'<span class="key"><span class="swatch" style="background:'
                                           f'{_color(m)}"></span>{esc(n)}</span>' for m, n in enumerate(names))
            + ' <span class="muted">(dashed: the bound ε, or the network alone)</span></p>')


# ------------------------------------------------------------------------------ helpers
def _color(m: int) -> str:
    return _COLORS[m % len(_COLORS)]


def _json(data: Any) -> str:
    """JSON safe inside <script>: '</' cannot close the element."""
    return json.dumps(data, separators=(',', ':'), allow_nan=False).replace('</', '<\\/')


def _rounded(a: np.ndarray) -> list:
    """Positions rounded to 0.1 mm, non-finite values as null (JSON has no NaN)."""
    a = np.round(np.asarray(a, dtype=np.float64), 4)
    out = a.tolist()
    if not np.isfinite(a).all():
        out = _nulls(out)
    return out


def _nulls(v):
    if isinstance(v, list):
        return [_nulls(x) for x in v]
    return v if math.isfinite(v) else None


def _column(records: list[dict], key: str, m: int) -> list:
    return [_at(r.get(key), m) for r in records]


def _at(values: Sequence | None, m: int) -> Any:
    return values[m] if values is not None and m < len(values) else None


def _finite_values(values: Iterable | None) -> list[float]:
    return [float(v) for v in (values or []) if finite(v)]


def _mean(values: Sequence | None) -> float | None:
    v = _finite_values(values)
    return float(np.mean(v)) if v else None


def _max(values: Sequence | None) -> float | None:
    v = _finite_values(values)
    return max(v) if v else None


def _le(v: Any, threshold: float) -> bool:
    return finite(v) and float(v) <= threshold


def _count_within(values: Sequence | None, threshold: float) -> str | None:
    if not values:
        return None
    return f'{sum(_le(v, threshold) for v in values)}/{len(values)}'


def _rate_within(values: Sequence | None, threshold: float) -> float | None:
    if not values:
        return None
    return sum(_le(v, threshold) for v in values) / len(values)


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;max-width:1400px;
 padding:0 1em;color:#222}
h1{font-size:1.5em;margin:.2em 0 .6em}h2{font-size:1.2em;border-bottom:1px solid #ddd;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding:.2em 0}
th,td{border:1px solid #ddd;padding:2px 7px;text-align:right;white-space:nowrap}
thead th{background:#f4f4f4}table.summary th{text-align:left;background:#f8f8f8}
.table{overflow-x:auto}.charts,.views{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0}figcaption{font-size:12px;color:#555;text-align:center}
svg text{font-size:10px;fill:#444}.muted{color:#777;fill:#777}
.frame{fill:none;stroke:#bbb}.grid{stroke:#eee}.hline{stroke:#000;stroke-dasharray:6 4}
.series{fill:none;stroke-width:1.6}
.view3d{border:1px solid #ddd;background:#fcfcfc;cursor:grab;touch-action:none}
.path{fill:none;stroke-width:1.3}.path.first{stroke-dasharray:3 3;opacity:.7}.path.middle{opacity:.5}
.start{fill:#fff;stroke-width:1.2}.target{stroke:#000;stroke-width:2;fill:none}
.axis{stroke-width:1.5}.axis.x{stroke:#d62728;color:#d62728}.axis.y{stroke:#2ca02c;color:#2ca02c}
.axis.z{stroke:#1f77b4;color:#1f77b4}span.axis{font-weight:700}
.legend .key,.hint .key{margin-right:.9em;white-space:nowrap}
.swatch{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-1px}
"""

# Rotates every 3-D view together: the same projection as _panel_svg / _rotation.
_JS = """
(function(){
var el=document.getElementById('paths-data');if(!el)return;
var data=JSON.parse(el.textContent),A0=%(az)s,E0=%(el)s,az=A0,elv=E0,S=%(size)s,D=%(triad)s;
var NS='http://www.w3.org/2000/svg';  // the SVG namespace name, not a fetch
function rot(a,e){a*=Math.PI/180;e*=Math.PI/180;var ca=Math.cos(a),sa=Math.sin(a),ce=Math.cos(e),se=Math.sin(e);
 return [[ca,-sa,0],[se*sa,se*ca,ce]];}
function mk(t,at){var n=document.createElementNS(NS,t);for(var k in at)n.setAttribute(k,at[k]);return n;}
function draw(){var R=rot(az,elv);
 document.querySelectorAll('svg.view3d').forEach(function(svg){
  var c=data[+svg.getAttribute('data-index')],s=0.45*S/c.radius,o=c.center;
  function pr(p){if(p==null||p[0]==null||p[1]==null||p[2]==null)return null;
   var d=[p[0]-o[0],p[1]-o[1],p[2]-o[2]];
   return [S/2+s*(R[0][0]*d[0]+R[0][1]*d[1]+R[0][2]*d[2]),S/2-s*(R[1][0]*d[0]+R[1][1]*d[1]+R[1][2]*d[2])];}
  var g=svg.querySelector('g.scene'),ax=svg.querySelector('g.axes');g.textContent='';ax.textContent='';
  c.iterations.forEach(function(it){var col=it.role==='last'?c.color:'#777';
   it.paths.forEach(function(sm){var xy=sm.map(pr).filter(function(q){return q;});if(!xy.length)return;
    g.appendChild(mk('polyline',{'class':'path '+it.role,stroke:col,points:xy.map(function(q){
     return q[0].toFixed(1)+','+q[1].toFixed(1);}).join(' ')}));
    g.appendChild(mk('circle',{'class':'start',cx:xy[0][0].toFixed(1),cy:xy[0][1].toFixed(1),r:2.5,stroke:col}));});});
  if(c.target){var t=pr(c.target);if(t)g.appendChild(mk('path',{'class':'target',d:'M'+(t[0]-5)+','+(t[1]-5)+
   'L'+(t[0]+5)+','+(t[1]+5)+'M'+(t[0]-5)+','+(t[1]+5)+'L'+(t[0]+5)+','+(t[1]-5)}));}
  ['x','y','z'].forEach(function(n,i){ax.appendChild(mk('line',{'class':'axis '+n,x1:D,y1:S-D,
   x2:(D+0.8*D*R[0][i]).toFixed(1),y2:(S-D-0.8*D*R[1][i]).toFixed(1)}));});});}
var drag=null;
document.querySelectorAll('svg.view3d').forEach(function(svg){
 svg.addEventListener('pointerdown',function(ev){drag=[ev.clientX,ev.clientY,az,elv];
  svg.setPointerCapture(ev.pointerId);});
 svg.addEventListener('pointermove',function(ev){if(!drag)return;az=drag[2]-(ev.clientX-drag[0])*0.5;
  elv=Math.max(-90,Math.min(90,drag[3]+(ev.clientY-drag[1])*0.5));draw();});
 svg.addEventListener('pointerup',function(){drag=null;});
 svg.addEventListener('dblclick',function(){az=A0;elv=E0;draw();});});
})();
""" % {'az': _AZIMUTH, 'el': _ELEVATION, 'size': _VIEW, 'triad': _TRIAD}
