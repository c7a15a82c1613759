"""The static run report, parsed back with html.parser: the numbers it shows are the inputs, it
needs nothing from a network, it is replaced atomically, and its rotating 3-D views (run in node
against a minimal DOM) draw what the static page shows."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from gps_agent_ros import report_html
from gps_agent_ros.report_html import write_report

THRESHOLD = 0.05


class _Page(HTMLParser):
    """Tables by id (rows of cells: (text, data-value or None)), every tag's attributes, the
    text of <script> elements by id (or '' for the inline script), and the 3-D views' polylines."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.tags: list[tuple[str, dict]] = []
        self.scripts: dict[str, str] = {}
        self.views: dict[int, list[dict]] = {}
        self._table = self._cell = self._script = self._view = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == 'table' and 'id' in a:
            self._table = self.tables.setdefault(a['id'], [])
        elif tag == 'tr' and self._table is not None:
            self._table.append([])
        elif tag in ('td', 'th') and self._table is not None:
            self._cell = ['', a.get('data-value')]
        elif tag == 'script':
            self._script = a.get('id', '')
            self.scripts[self._script] = ''
        elif tag == 'svg' and 'view3d' in a.get('class', ''):
            self._view = self.views.setdefault(int(a['data-index']), [])
        elif tag in ('polyline', 'path', 'circle') and self._view is not None:
            self._view.append({'tag': tag, **a})

    def handle_endtag(self, tag):
        if tag == 'table':
            self._table = None
        elif tag in ('td', 'th') and self._cell is not None:
            self._table[-1].append((self._cell[0].strip(), self._cell[1]))
            self._cell = None
        elif tag == 'script':
            self._script = None
        elif tag == 'svg':
            self._view = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data
        if self._script is not None:
            self.scripts[self._script] += data

    def column(self, table: str, header: str) -> list[tuple[str, str | None]]:
        rows = self.tables[table]
        j = [h for h, _ in rows[0]].index(header)
        return [row[j] for row in rows[1:]]


def _records(rng: np.random.Generator, n_it: int = 4, M: int = 3, n_test: int = 5, policy: bool = True) -> list[dict]:
    records = []
    for it in range(1, n_it + 1):
        r = {'iteration': it, 'samples': 5 * M, 'mean_cost': float(rng.normal(-10 * it, 3)),
             'final_ee_distance': (0.2 / it * rng.uniform(0.3, 1.5, M)).tolist(),
             'seconds': {'sampling': float(rng.uniform(1, 4)), 'dynamics': float(rng.uniform(0, 1)),
                         'traj_opt': float(rng.uniform(0, 1))},
             'kl': rng.uniform(0.1, 2, M).tolist(), 'kl_step': rng.uniform(0.1, 2, M).tolist(),
             'eta': (10 ** rng.uniform(-5, 3, M)).tolist(), 'step_mult': rng.uniform(0.1, 10, M).tolist()}
        if policy:
            r['policy_final_ee_distance'] = (0.15 / it * rng.uniform(0.3, 1.5, M)).tolist()
            test = 0.15 / it * rng.uniform(0.3, 1.5, n_test)
            r['policy_test_final_ee_distance'] = test.tolist()
            r['policy_test_success_rate'] = float(np.mean(test <= THRESHOLD))
            r['pol_wt_mean'] = rng.uniform(0, 1, M).tolist()
            r['seconds']['policy'] = float(rng.uniform(0, 2))
        records.append(r)
    return records


def _shown(cell: tuple[str, str | None], value: float) -> None:
    """The cell shows `value` rounded to 4 significant digits and carries it exactly."""
    text, exact = cell
    assert exact is not None and float(exact) == value
    assert math.isclose(float(text), value, rel_tol=5e-4, abs_tol=0.0), (text, value)


@pytest.fixture()
def report(tmp_path):
    rng = np.random.default_rng(3)
    records = _records(rng)
    M, N, T = 3, 4, 20
    targets = rng.uniform(-0.5, 0.5, (M, 3))
    paths = {1: [targets[m] + np.cumsum(rng.normal(0, 0.02, (N, T, 3)), axis=1) for m in range(M)],
             4: [targets[m] + np.cumsum(rng.normal(0, 0.005, (N, T, 3)), axis=1) for m in range(M)]}
    metrics = {'experiment': 'ur5e_reach', 'agent': 'inprocess', 'iterations': records,
               'solved_at_iteration': 3, 'policy_solved_at_iteration': None}
    path = write_report(tmp_path / 'report.html', metrics, threshold=THRESHOLD, targets=targets,
                        paths=paths, algorithm='badmm')
    return _Page(path.read_text()), records, targets, paths


def test_per_iteration_tables_show_the_records(report):
    page, records, _, _ = report
    assert [int(c[0]) for c in page.column('per-iteration', 'iteration')] == [1, 2, 3, 4]
    for cell, r in zip(page.column('per-iteration', 'mean cost'), records):
        _shown(cell, r['mean_cost'])
    for cell, r in zip(page.column('per-iteration', 'worst final distance [m]'), records):
        _shown(cell, max(r['final_ee_distance']))
    for cell, r in zip(page.column('per-iteration', f'conditions within {THRESHOLD} m'), records):
        assert cell[0] == f'{sum(d <= THRESHOLD for d in r["final_ee_distance"])}/3'
    for table, key in (('final-ee-distance', 'final_ee_distance'), ('kl', 'kl'), ('kl-step', 'kl_step'),
                       ('eta', 'eta'), ('step-mult', 'step_mult'),
                       ('policy-final-ee-distance', 'policy_final_ee_distance'),
                       ('policy-test-final-ee-distance', 'policy_test_final_ee_distance'),
                       ('pol-wt-mean', 'pol_wt_mean')):
        width = len(records[0][key])
        assert [h for h, _ in page.tables[table][0]] == ['iteration'] + [str(m) for m in range(width)]
        for m in range(width):
            for cell, r in zip(page.column(table, str(m)), records):
                _shown(cell, r[key][m])
    for cell, r in zip(page.column('seconds', 'sampling'), records):
        _shown(cell, r['seconds']['sampling'])
    for cell, r in zip(page.column('seconds', 'total'), records):
        _shown(cell, sum(r['seconds'].values()))
    summary = {row[0][0]: row[1][0] for row in page.tables['summary']}
    assert summary['samples solved at iteration'] == '3' and summary['network solved at iteration'] == 'not yet'
    assert summary['algorithm'] == 'badmm' and summary['iterations'] == '4'


def test_policy_training_and_test_success_per_iteration(report):
    page, records, _, _ = report
    for row_reached, row_rate, row_test, r in zip(page.column('policy-success', 'training conditions reached'),
                                                  page.column('policy-success', 'training success rate'),
                                                  page.column('policy-success', 'test success rate'), records):
        reached = sum(d <= THRESHOLD for d in r['policy_final_ee_distance'])
        assert row_reached[0] == f'{reached}/3'
        _shown(row_rate, reached / 3)
        _shown(row_test, r['policy_test_success_rate'])
    for cell, r in zip(page.column('policy-success', 'worst test distance [m]'), records):
        _shown(cell, max(r['policy_test_final_ee_distance']))


def test_paths_are_embedded_and_drawn_per_condition_with_targets(report):
    page, _, targets, paths = report
    data = json.loads(page.scripts['paths-data'])
    assert [c['name'] for c in data] == ['0', '1', '2']
    for m, cond in enumerate(data):
        np.testing.assert_allclose(cond['target'], targets[m], atol=5.1e-5)
        assert [e['iteration'] for e in cond['iterations']] == [1, 4]
        assert [e['role'] for e in cond['iterations']] == ['first', 'last']
        for entry in cond['iterations']:
            np.testing.assert_allclose(entry['paths'], paths[entry['iteration']][m], atol=5.1e-5)
        drawn = page.views[m]
        lines = [e for e in drawn if e['tag'] == 'polyline']
        assert sorted(e['class'] for e in lines) == ['path first'] * 4 + ['path last'] * 4
        assert all(len(e['points'].split()) == 20 for e in lines)
        assert sum(e['tag'] == 'path' and e['class'] == 'target' for e in drawn) == 1


def test_z_is_up_on_the_screen_at_the_default_view(tmp_path):
    """The base frame's z axis (up) is drawn up the screen: a vertical path is one screen column,
    rising with z, foreshortened by the cosine of the view's elevation."""
    z = np.linspace(0, 0.3, 7)
    vertical = np.stack([np.full(7, 0.4), np.full(7, -0.1), z], axis=1)[None]
    page = _Page(report_html.render_report({'iterations': []}, threshold=THRESHOLD,
                                           targets=[[0.4, -0.1, 0.3]], paths={1: [vertical]}))
    (line,) = [e for e in page.views[0] if e['tag'] == 'polyline']
    xy = np.array([[float(v) for v in p.split(',')] for p in line['points'].split()])
    assert np.ptp(xy[:, 0]) < 0.11                       # one screen column (0.1 px rounding)
    assert np.all(np.diff(xy[:, 1]) < 0)                 # higher z: higher on screen (smaller y)
    # the screen height of a z step is cos(elevation) of its length, at the panel's scale
    scale = 0.45 * report_html._VIEW / 0.15
    np.testing.assert_allclose(xy[0, 1] - xy[-1, 1], 0.3 * scale * math.cos(math.radians(25)), atol=0.2)


def test_report_is_self_contained(report):
    page, _, _, _ = report
    for tag, attrs in page.tags:
        for key in ('src', 'href', 'xlink:href', 'data', 'action'):
            if key in attrs:
                assert attrs[key].startswith(('#', 'data:')), (tag, key, attrs[key])
        assert tag not in ('link', 'iframe', 'object', 'embed', 'img')
    text = ''.join(page.scripts.values())
    assert 'fetch(' not in text and 'XMLHttpRequest' not in text and 'import(' not in text


def test_records_without_policy_or_paths_and_with_nan(tmp_path):
    rng = np.random.default_rng(0)
    records = _records(rng, n_it=2, policy=False)
    records[1]['kl'][2] = float('nan')
    path = write_report(tmp_path / 'r.html', {'experiment': 'x', 'iterations': records}, threshold=THRESHOLD)
    page = _Page(path.read_text())
    assert 'policy-success' not in page.tables and 'paths-data' not in page.scripts
    assert page.column('kl', '2')[1] == ('nan', 'nan')
    _shown(page.column('kl', '2')[0], records[0]['kl'][2])


def test_the_report_is_replaced_atomically(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    target = tmp_path / 'report.html'
    write_report(target, {'iterations': _records(rng, n_it=1)}, threshold=THRESHOLD)
    old = target.read_text()
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((Path(src), Path(dst), Path(src).read_text(), Path(dst).read_text()))
        real_replace(src, dst)

    monkeypatch.setattr(report_html.os, 'replace', spy)
    write_report(target, {'iterations': _records(rng, n_it=3)}, threshold=THRESHOLD)
    (src, dst, src_text, dst_text), = seen
    assert dst == target and src.parent == target.parent and src != target
    assert dst_text == old                               # the old report stays until the rename
    assert src_text == target.read_text() and src_text.rstrip().endswith('</html>')
    new = target.read_text()

    def fail(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(report_html.os, 'replace', fail)
    with pytest.raises(OSError, match='disk full'):
        write_report(target, {'iterations': _records(rng, n_it=5)}, threshold=THRESHOLD)
    assert target.read_text() == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ['report.html']


_FAKE_DOM = r"""
const fs = require('fs');
const [script, data] = [fs.readFileSync(process.argv[2], 'utf8'), fs.readFileSync(process.argv[3], 'utf8')];
function node(tag) {
  return {tag, attrs: {}, children: [], listeners: {},
    setAttribute(k, v) { this.attrs[k] = String(v); }, getAttribute(k) { return this.attrs[k]; },
    appendChild(c) { this.children.push(c); },
    set textContent(v) { this.children = []; }, get textContent() { return ''; },
    addEventListener(t, f) { this.listeners[t] = f; }, setPointerCapture() {}};
}
const n = JSON.parse(data).length, svgs = [];
for (let i = 0; i < n; i++) {
  const svg = node('svg'); svg.attrs['data-index'] = String(i);
  svg.scene = node('g'); svg.axes = node('g');
  svg.querySelector = (s) => s === 'g.scene' ? svg.scene : svg.axes;
  svgs.push(svg);
}
global.document = {
  getElementById: (id) => id === 'paths-data' ? {textContent: data} : null,
  querySelectorAll: () => svgs,
  createElementNS: (ns, tag) => node(tag),
};
eval(script);
svgs[0].listeners['dblclick']();
const lines = (s) => s.scene.children.filter(c => c.tag === 'polyline').map(c => c.attrs.points);
console.log(JSON.stringify(svgs.map(lines)));
"""


@pytest.mark.skipif(shutil.which('node') is None, reason='node.js is not installed')
def test_inline_script_redraws_the_same_views_as_the_static_page(report, tmp_path):
    page, _, _, _ = report
    (tmp_path / 'view.js').write_text(page.scripts[''])
    (tmp_path / 'data.json').write_text(page.scripts['paths-data'])
    (tmp_path / 'dom.js').write_text(_FAKE_DOM)
    out = subprocess.run(['node', str(tmp_path / 'dom.js'), str(tmp_path / 'view.js'), str(tmp_path / 'data.json')],
                         capture_output=True, text=True, check=True, timeout=60)
    redrawn = json.loads(out.stdout)
    for m, lines in enumerate(redrawn):
        static = [e['points'] for e in page.views[m] if e['tag'] == 'polyline']
        assert len(lines) == len(static) == 8
        for js, py in zip(lines, static):
            a = np.array([[float(v) for v in p.split(',')] for p in js.split()])
            b = np.array([[float(v) for v in p.split(',')] for p in py.split()])
            np.testing.assert_allclose(a, b, atol=0.11)
