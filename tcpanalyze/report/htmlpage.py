"""The style and script of the HTML report page (``report/html.py`` inlines them).

The script reads the report's JSON block (``#tcpa-data``), writes the sections, and draws
the charts with plotly.js (``Plotly.newPlot``): the TIME_WAIT chart when the page opens, a
connection's graphs when its row is clicked.  ``window.tcpa`` exposes the data and the
functions (``showDetail``, ``sortBy``, ``applyFilters``) for scripted use and tests.
"""

PAGE_CSS = r"""
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 0; color: #222;
       background: #f6f7f9; font-size: 14px; }
header { background: #1f2d3d; color: #fff; padding: 14px 24px; }
header h1 { margin: 0 0 4px 0; font-size: 20px; }
header .sub { color: #c9d3de; font-size: 12px; }
main { padding: 12px 24px 40px 24px; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; margin: 14px 0; padding: 10px 16px; }
h2 { font-size: 16px; margin: 6px 0 10px 0; }
h3 { font-size: 14px; margin: 10px 0 6px 0; }
table { border-collapse: collapse; }
td, th { padding: 3px 8px; text-align: left; vertical-align: top; }
table.grid td, table.grid th { border-bottom: 1px solid #eceff3; }
th.sortable { cursor: pointer; user-select: none; white-space: nowrap; }
th.sortable::after { content: ' \2195'; color: #aaa; }
th.asc::after { content: ' \25B2'; color: #333; } th.desc::after { content: ' \25BC'; color: #333; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.sev { display: inline-block; padding: 1px 7px; border-radius: 9px; font-size: 12px; font-weight: 600; }
.sev-error { background: #fdecea; color: #b71c1c; } .sev-warning { background: #fff4e5; color: #a85a00; }
.sev-info { background: #e8f1fb; color: #1d4f91; } .sev-none { color: #999; }
.pass { color: #1b5e20; font-weight: 600; } .fail { color: #b71c1c; font-weight: 600; }
.skip { color: #777; } .error { color: #b71c1c; font-weight: 600; }
details { margin: 3px 0; } details > summary { cursor: pointer; }
details.kind > summary { font-weight: 600; }
details.finding { margin-left: 18px; } details.finding > summary { font-weight: normal; }
.evidence { margin: 4px 0 8px 18px; padding: 6px 10px; background: #fafbfc; border-left: 3px solid #cfd6de; }
.evidence .expl { color: #555; font-style: italic; margin-bottom: 4px; }
.frames { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
.filters { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; margin-bottom: 8px; }
.filters input, .filters select { padding: 3px 6px; font-size: 13px; }
#conns-wrap { max-height: 520px; overflow: auto; border: 1px solid #eceff3; }
#conns thead th { position: sticky; top: 0; background: #f0f3f6; z-index: 1; }
#conns tbody tr { cursor: pointer; } #conns tbody tr:hover { background: #f3f8ff; }
#conns tbody tr.selected { background: #dceafe; }
#conns tbody tr.detailed td.stream { font-weight: 700; }
.mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
.note { color: #666; font-size: 12px; }
.chart { width: 100%; min-height: 200px; }
.ladder { overflow-x: auto; border: 1px solid #eceff3; max-height: 460px; overflow-y: auto; }
.badge { font-size: 11px; color: #fff; background: #3b7dd8; border-radius: 8px; padding: 0 6px; }
button.link { background: none; border: none; color: #1d5fbf; cursor: pointer; padding: 0; font-size: 13px;
              text-decoration: underline; }
"""

PAGE_JS = r"""
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('tcpa-data').textContent);
  var CONFIG = {displaylogo: false, responsive: true, scrollZoom: true,
                modeBarButtonsToRemove: ['sendDataToCloud']};
  var SEVS = ['error', 'warning', 'info'];
  function esc(s) {
    return String(s === null || s === undefined ? '' : s).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  }
  function num(n) { return n === null || n === undefined ? '-' : Number(n).toLocaleString('en-US'); }
  function bytes(n) {
    if (n === null || n === undefined) return '-';
    var u = ['B', 'kB', 'MB', 'GB', 'TB'], i = 0, v = n;
    while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
    return (i ? v.toFixed(v < 10 ? 2 : 1) : v) + ' ' + u[i];
  }
  function secs(v) { return v === null || v === undefined ? '-' : Number(v).toFixed(3) + ' s'; }
  function sev(s) { return s ? '<span class="sev sev-' + esc(s) + '">' + esc(s) + '</span>' : '<span class="sev-none">-</span>'; }
  function base(p) { return String(p || '').split('/').pop(); }
  function el(tag, attrs, html) {
    var e = document.createElement(tag);
    for (var k in (attrs || {})) e.setAttribute(k, attrs[k]);
    if (html !== undefined) e.innerHTML = html;
    return e;
  }
  var app = document.getElementById('app');
  var multi = D.files.length > 1;

  // ---------------------------------------------------------------- header
  var S = D.summary;
  var h = el('header', {id: 'header'});
  h.innerHTML = '<h1>' + esc(D.title || 'tcpanalyze report') + '</h1><div class="sub">' +
    esc(D.files.map(function (f) { return base(f.source); }).join(', ')) + ' &middot; tcpanalyze ' + esc(D.version) +
    ' &middot; generated ' + esc(D.generated) + '</div>';
  app.appendChild(h);
  var main = el('main');
  app.appendChild(main);
  var sec = el('section', {id: 'summary'});
  var rows = [['Files', num(D.files.length) + (S.files_failed ? ' (' + num(S.files_failed) + ' unreadable)' : '')],
              ['Packets', num(S.packets) + ' (' + num(S.tcp_segments) + ' TCP segments)'],
              ['Connections', num(S.connections) + ' (' + num(S.connections_with_findings) + ' with findings)'],
              ['Bytes', bytes(S.bytes) + ' of TCP payload'],
              ['Duration', secs(S.duration) + (S.start ? ' from ' + new Date(S.start * 1000).toISOString() : '')],
              ['Findings', num(D.findings_total) + ': ' + SEVS.map(function (s) {
                 return sev(s) + ' ' + num(D.by_severity[s] || 0); }).join(' ')],
              ['Worst severity', sev(S.worst_severity)]];
  var t = '<h2>Summary</h2><table>' + rows.map(function (r) {
    return '<tr><th>' + r[0] + '</th><td>' + r[1] + '</td></tr>'; }).join('') + '</table>';
  t += '<h3>Files</h3><table class="grid" id="files"><thead><tr><th>file</th><th>format</th>' +
       '<th class="num">frames</th><th class="num">connections</th><th class="num">bytes</th>' +
       '<th class="num">duration</th><th>worst</th><th>error</th></tr></thead><tbody>' +
       D.files.map(function (f) {
         var s = f.summary || {};
         return '<tr><td class="mono">' + esc(f.source) + '</td><td>' + esc(f.format || '-') + '</td><td class="num">' +
           num(f.frames) + '</td><td class="num">' + num(s.connections) + '</td><td class="num">' + bytes(s.bytes) +
           '</td><td class="num">' + secs(s.duration) + '</td><td>' + sev(s.worst_severity) + '</td><td class="error">' +
           esc(f.error || f.damage || '') + '</td></tr>'; }).join('') + '</tbody></table>';
  sec.innerHTML = t;
  main.appendChild(sec);

  // ---------------------------------------------------------------- policy (check --html)
  if (D.policy) {
    var ps = el('section', {id: 'policy'});
    var pt = '<h2>Policy checks</h2>';
    D.policy.forEach(function (fr) {
      pt += '<h3>' + esc(fr.file) + ': <span class="' + esc(fr.status) + '">' + esc(fr.status.toUpperCase()) +
        '</span>' + (fr.error ? ' <span class="error">' + esc(fr.error) + '</span>' : '') + '</h3>';
      pt += '<table class="grid"><thead><tr><th>rule</th><th>status</th><th>measured</th><th>limit</th>' +
        '<th>message</th></tr></thead><tbody>' + (fr.results || []).map(function (r) {
          return '<tr><td class="mono">' + esc(r.rule) + '</td><td class="' + esc(r.status) + '">' + esc(r.status) +
            '</td><td class="num">' + esc(r.measured) + '</td><td class="num">' + esc(r.limit) + '</td><td>' +
            esc(r.message) + '</td></tr>'; }).join('') + '</tbody></table>';
    });
    ps.innerHTML = pt;
    main.appendChild(ps);
  }

  // ---------------------------------------------------------------- findings
  var rowByKey = {};
  D.rows.forEach(function (r) { rowByKey[r.fid + ':' + r.stream] = r; });
  var fs = el('section', {id: 'findings'});
  fs.appendChild(el('h2', {}, 'Findings'));
  if (!D.findings.length) fs.appendChild(el('p', {'class': 'note'}, 'No findings.'));
  SEVS.forEach(function (s) {
    var list = D.findings.filter(function (f) { return f.severity === s; });
    if (!list.length) return;
    var box = el('div', {'class': 'severity', 'data-severity': s});
    box.appendChild(el('h3', {}, sev(s) + ' ' + num(D.by_severity[s] || list.length)));
    var kinds = {};
    list.forEach(function (f) { (kinds[f.kind] = kinds[f.kind] || []).push(f); });
    Object.keys(kinds).sort().forEach(function (k) {
      var bk = D.by_kind[k] || {};
      var d = el('details', {'class': 'kind', 'data-kind': k});
      var total = bk[s] !== undefined ? bk[s] : kinds[k].length;
      d.innerHTML = '<summary>' + esc(k) + ' &mdash; ' + num(total) + (total > kinds[k].length ?
        ' <span class="note">(' + kinds[k].length + ' listed)</span>' : '') + '</summary>' +
        '<div class="evidence"><div class="expl">' + esc(D.explanations[k] || '') + '</div></div>';
      kinds[k].forEach(function (f) {
        var fd = el('details', {'class': 'finding'});
        var key = f.fid + ':' + f.stream;
        var vals = f.data ? Object.keys(f.data).map(function (n) {
          var v = f.data[n];
          if (v !== null && typeof v === 'object') v = JSON.stringify(v);
          return '<tr><th class="mono">' + esc(n) + '</th><td class="mono">' + esc(v) + '</td></tr>'; }).join('') : '';
        var where = [];
        if (multi) where.push('file ' + esc(base(f.file)));
        if (f.stream !== null && f.stream !== undefined) {
          where.push('tcp.stream ' + f.stream + (rowByKey[key] ? ' <button class="link" data-show="' + esc(key) +
            '">show connection</button>' : ''));
        }
        if (f.host) where.push('host ' + esc(f.host) + (f.port ? ':' + esc(f.port) : ''));
        else if (f.port) where.push('port ' + esc(f.port));
        if (f.time) where.push('at ' + new Date(f.time * 1000).toISOString());
        fd.innerHTML = '<summary>' + esc(f.message) + '</summary><div class="evidence">' +
          '<div class="expl">' + esc(f.kind + (f.subkind ? '/' + f.subkind : '')) + ': ' +
          esc(D.explanations[f.kind] || '') + (f.cause ? ' (cause: ' + esc(f.cause) + ')' : '') + '</div>' +
          '<div>' + where.join(' &middot; ') + '</div>' +
          (f.frames && f.frames.length ? '<div>frames: <span class="frames">' + f.frames.map(esc).join(' ') +
            '</span></div>' : '') +
          (vals ? '<table class="values">' + vals + '</table>' : '') + '</div>';
        d.appendChild(fd);
      });
      box.appendChild(d);
    });
    fs.appendChild(box);
  });
  if (D.findings_total > D.findings.length) {
    fs.appendChild(el('p', {'class': 'note'}, 'At most ' + D.per_kind_listed +
      ' findings per kind are listed; the counts include them all.'));
  }
  main.appendChild(fs);

  // ---------------------------------------------------------------- TIME_WAIT
  var tws = el('section', {id: 'time-wait'});
  tws.appendChild(el('h2', {}, 'TIME_WAIT per host'));
  var twdiv = el('div', {id: 'tw-chart', 'class': 'chart'});
  tws.appendChild(twdiv);
  if (D.time_wait.empty) {
    twdiv.innerHTML = '<p class="note">No connection entered TIME_WAIT in ' + (multi ? 'these captures' : 'this capture') + '.</p>';
  }
  main.appendChild(tws);

  // ---------------------------------------------------------------- connections
  var cs = el('section', {id: 'connections'});
  cs.appendChild(el('h2', {}, 'Connections'));
  var nDetail = D.rows.filter(function (r) { return r.detail; }).length;
  cs.appendChild(el('p', {'class': 'note'}, num(D.rows_listed) + ' of ' + num(D.rows_total) +
    ' connections listed (the worst by findings, then bytes). ' + nDetail +
    ' carry per-packet detail (bold stream number): the worst by findings and the longest transfers, up to ' +
    D.detail_limit + ' of each. Click a row to open it.'));
  function options(vals) {
    return '<option value="">any</option>' + vals.map(function (v) { return '<option>' + esc(v) + '</option>'; }).join('');
  }
  function uniq(f) {
    var s = {};
    D.rows.forEach(function (r) { [].concat(f(r)).forEach(function (v) { if (v !== '' && v !== null) s[v] = 1; }); });
    return Object.keys(s).sort();
  }
  var filt = el('div', {'class': 'filters'});
  filt.innerHTML = '<label>host <input id="f-host" size="16" placeholder="address"></label>' +
    '<label>port <input id="f-port" size="6"></label>' +
    '<label>state <select id="f-state">' + options(uniq(function (r) { return r.state; })) + '</select></label>' +
    '<label>finding <select id="f-kind">' + options(uniq(function (r) { return r.findings; })) + '</select></label>' +
    '<label>limited by <select id="f-limited">' + options(uniq(function (r) { return r.limited_by; })) + '</select></label>' +
    '<span id="conn-count" class="note"></span>';
  cs.appendChild(filt);
  var COLS = [['stream', 'stream', 'num'], ['client', 'client'], ['server', 'server'], ['state', 'state'],
              ['bytes', 'bytes', 'num'], ['packets', 'packets', 'num'], ['duration', 'duration', 'num'],
              ['transfer', 'transfer', 'num'], ['rtx', 'retrans.', 'num'], ['rtt_ms', 'hs RTT ms', 'num'],
              ['severity', 'severity'], ['findings', 'findings'], ['limited_by', 'limited by'], ['end', 'end']];
  if (multi) COLS.unshift(['file', 'file']);
  var wrap = el('div', {id: 'conns-wrap'});
  var table = el('table', {id: 'conns', 'class': 'grid'});
  table.innerHTML = '<thead><tr>' + COLS.map(function (c) {
    return '<th class="sortable' + (c[2] ? ' num' : '') + '" data-key="' + c[0] + '">' + c[1] + '</th>'; }).join('') +
    '</tr></thead><tbody></tbody>';
  wrap.appendChild(table);
  cs.appendChild(wrap);
  main.appendChild(cs);
  var tbody = table.tBodies[0];
  function cell(r, k) {
    switch (k) {
      case 'file': return esc(base(r.file));
      case 'client': return '<span class="mono">' + esc(r.client) + ':' + r.cport + '</span>';
      case 'server': return '<span class="mono">' + esc(r.server) + ':' + r.sport + '</span>';
      case 'state': return esc(r.state) + ' <span class="note">' + esc(r.states) + '</span>';
      case 'bytes': return bytes(r.bytes);
      case 'packets': return num(r.packets);
      case 'duration': return secs(r.duration);
      case 'transfer': return secs(r.transfer);
      case 'severity': return sev(r.severity);
      case 'findings': return esc(r.findings.join(', '));
      case 'rtt_ms': return r.rtt_ms === null ? '-' : esc(r.rtt_ms);
      default: return esc(r[k]);
    }
  }
  var SEVRANK = {'': 0, 'info': 1, 'warning': 2, 'error': 3};
  D.rows.forEach(function (r) {
    var tr = document.createElement('tr');
    tr.dataset.key = r.fid + ':' + r.stream;
    if (r.detail) tr.className = 'detailed';
    tr.innerHTML = COLS.map(function (c) {
      return '<td class="' + c[0] + (c[2] ? ' num' : '') + '">' + cell(r, c[0]) + '</td>'; }).join('');
    r._tr = tr;
    tbody.appendChild(tr);
  });
  var sortKey = null, sortDir = 1;
  function sortVal(r, k) {
    if (k === 'severity') return SEVRANK[r.severity || ''];
    if (k === 'findings') return r.findings.length;
    if (k === 'client') return r.client + ':' + ('00000' + r.cport).slice(-5);
    if (k === 'server') return r.server + ':' + ('00000' + r.sport).slice(-5);
    var v = r[k];
    return v === null || v === undefined ? -1 : v;
  }
  function sortBy(k, dir) {
    sortDir = dir !== undefined ? dir : (sortKey === k ? -sortDir : (typeof sortVal(D.rows[0] || {}, k) === 'number' ? -1 : 1));
    sortKey = k;
    var sorted = D.rows.slice().sort(function (a, b) {
      var x = sortVal(a, k), y = sortVal(b, k);
      return (x < y ? -1 : x > y ? 1 : (a.fid - b.fid) || (a.stream - b.stream)) * sortDir;
    });
    sorted.forEach(function (r) { tbody.appendChild(r._tr); });
    table.querySelectorAll('th.sortable').forEach(function (th) {
      th.classList.remove('asc', 'desc');
      if (th.dataset.key === k) th.classList.add(sortDir > 0 ? 'asc' : 'desc');
    });
    return sorted.map(function (r) { return r.fid + ':' + r.stream; });
  }
  table.querySelectorAll('th.sortable').forEach(function (th) {
    th.addEventListener('click', function () { sortBy(th.dataset.key); });
  });
  function applyFilters() {
    var host = document.getElementById('f-host').value.trim().toLowerCase();
    var port = document.getElementById('f-port').value.trim();
    var st = document.getElementById('f-state').value;
    var kind = document.getElementById('f-kind').value;
    var lim = document.getElementById('f-limited').value;
    var n = 0;
    D.rows.forEach(function (r) {
      var ok = (!host || r.client.toLowerCase().indexOf(host) >= 0 || r.server.toLowerCase().indexOf(host) >= 0) &&
        (!port || String(r.cport) === port || String(r.sport) === port) && (!st || r.state === st) &&
        (!kind || r.findings.indexOf(kind) >= 0) && (!lim || r.limited_by === lim);
      r._tr.style.display = ok ? '' : 'none';
      if (ok) n++;
    });
    document.getElementById('conn-count').textContent = n + ' shown';
    return n;
  }
  ['f-host', 'f-port'].forEach(function (id) { document.getElementById(id).addEventListener('input', applyFilters); });
  ['f-state', 'f-kind', 'f-limited'].forEach(function (id) {
    document.getElementById(id).addEventListener('change', applyFilters); });
  applyFilters();

  // ---------------------------------------------------------------- one connection
  var ds = el('section', {id: 'detail'});
  ds.innerHTML = '<h2>Connection</h2><p class="note">Click a row of the table (or "show connection" under a finding).</p>';
  main.appendChild(ds);
  var FIGS = [['states', 'Endpoint states'], ['tseq', 'Time-sequence (Stevens)'],
              ['window', 'Window and bytes in flight'], ['rtt', 'RTT'], ['throughput', 'Throughput']];
  function showDetail(key) {
    var r = rowByKey[key];
    tbody.querySelectorAll('tr.selected').forEach(function (tr) { tr.classList.remove('selected'); });
    if (r) r._tr.classList.add('selected');
    var d = D.details[key];
    ds.querySelectorAll('.js-plotly-plot').forEach(function (p) { Plotly.purge(p); });
    if (!d) {
      ds.innerHTML = '<h2>Connection ' + esc(key) + '</h2><p class="note">Summary only: this connection is not among ' +
        'those with per-packet detail (--html-connections).</p>' + (r ? '<table>' + COLS.map(function (c) {
          return '<tr><th>' + c[1] + '</th><td>' + cell(r, c[0]) + '</td></tr>'; }).join('') + '</table>' : '');
      ds.dataset.key = key;
      return false;
    }
    var html = '<h2>' + esc(d.title) + (multi && r ? ' <span class="note">(' + esc(base(r.file)) + ')</span>' : '') +
      '</h2><p class="note">' + num(d.segments) + ' segments. Graphs: drag to zoom, shift-drag or the toolbar to pan, ' +
      'double-click to reset; hover a point for its frame and verdict.</p>';
    html += '<h3>Ladder diagram</h3><div class="ladder">' + d.ladder + '</div>';
    FIGS.forEach(function (f) { html += '<h3>' + f[1] + '</h3><div class="chart" id="fig-' + f[0] + '"></div>'; });
    ds.innerHTML = html;
    ds.dataset.key = key;
    FIGS.forEach(function (f) {
      var fig = d.figures[f[0]];
      Plotly.newPlot('fig-' + f[0], fig.data, fig.layout, CONFIG);
    });
    ds.scrollIntoView();
    return true;
  }
  tbody.addEventListener('click', function (ev) {
    var tr = ev.target.closest('tr');
    if (tr) showDetail(tr.dataset.key);
  });
  fs.addEventListener('click', function (ev) {
    var b = ev.target.closest('button[data-show]');
    if (b) { ev.preventDefault(); showDetail(b.dataset.show); }
  });
  if (!D.time_wait.empty) Plotly.newPlot(twdiv, D.time_wait.data, D.time_wait.layout, CONFIG);
  window.tcpa = {data: D, showDetail: showDetail, sortBy: sortBy, applyFilters: applyFilters};
  document.body.dataset.ready = '1';
})();
"""
