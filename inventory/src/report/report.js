(function () {
  'use strict';

  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function fmt(ms) {
    var d = new Date(ms);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) +
      ' ' + pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes());
  }

  // Filter terms: whitespace or comma separated; key=value (or key==value, key!=value)
  // terms match labels exactly, other terms match the name, hostname, host id or labels.
  function parse(query) {
    return query.toLowerCase().split(/[\s,]+/).filter(Boolean).map(function (t) {
      var i = t.indexOf('=');
      if (i <= 0) return { text: t };
      var not = t.charAt(i - 1) === '!';
      var key = t.slice(0, not ? i - 1 : i);
      var value = t.slice(i + 1);
      if (value.charAt(0) === '=') value = value.slice(1);
      if (!key) return { text: t };
      return { key: key, value: value, not: not };
    });
  }

  function matches(row, term) {
    if (term.text !== undefined) return row.hay.indexOf(term.text) >= 0;
    var has = Object.prototype.hasOwnProperty.call(row.labels, term.key) &&
      row.labels[term.key] === term.value;
    return term.not ? !has : has;
  }

  function setupFilter() {
    var input = document.getElementById('filter');
    var svg = document.getElementById('timeline');
    var shown = document.getElementById('shown-count');
    var noMatch = document.getElementById('no-match');
    if (!input || !svg) return;
    var rowHeight = Number(svg.getAttribute('data-row-height')) || 18;
    var width = svg.getAttribute('width');
    var rows = Array.prototype.map.call(svg.querySelectorAll('.host-row'), function (g) {
      var raw = g.getAttribute('data-labels') || '';
      var labels = Object.create(null);
      raw.split(',').forEach(function (kv) {
        if (!kv) return;
        var i = kv.indexOf('=');
        if (i < 0) labels[kv.toLowerCase()] = '';
        else labels[kv.slice(0, i).toLowerCase()] = kv.slice(i + 1).toLowerCase();
      });
      var hay = [g.getAttribute('data-name'), g.getAttribute('data-hostname'),
        g.getAttribute('data-host-id'), raw].join('\n').toLowerCase();
      return { g: g, bg: g.querySelector('.row-bg'), labels: labels, hay: hay, y: null, odd: null };
    });

    function apply(query) {
      var terms = parse(query || '');
      var n = 0;
      rows.forEach(function (row) {
        var ok = terms.every(function (t) { return matches(row, t); });
        if (!ok) {
          row.g.style.display = 'none';
          return;
        }
        row.g.style.display = '';
        var y = n * rowHeight;
        if (row.y !== y) {
          row.g.setAttribute('transform', 'translate(0,' + y + ')');
          row.y = y;
        }
        var odd = n % 2 === 1;
        if (row.bg && row.odd !== odd) {
          row.bg.setAttribute('class', odd ? 'row-bg odd' : 'row-bg');
          row.odd = odd;
        }
        n += 1;
      });
      var h = rows.length ? Math.max(n, 1) * rowHeight : 0;
      svg.setAttribute('height', h);
      svg.setAttribute('viewBox', '0 0 ' + width + ' ' + h);
      if (shown) shown.textContent = String(n);
      if (noMatch) noMatch.hidden = !(rows.length > 0 && n === 0);
    }

    function fromHash() {
      var h = location.hash.replace(/^#/, '');
      if (!h) return '';
      try {
        return new URLSearchParams(h).get('filter') || '';
      } catch (e) {
        return '';
      }
    }

    function toHash(value) {
      try {
        var base = location.href.split('#')[0];
        history.replaceState(null, '', value ? base + '#filter=' + encodeURIComponent(value) : base);
      } catch (e) { /* file: URLs may refuse; the filter still works */ }
    }

    var pending = false;
    input.addEventListener('input', function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () {
        pending = false;
        apply(input.value);
        toHash(input.value);
      });
    });
    input.addEventListener('keydown', function (e) {
      if (e.key === 'Escape') { input.value = ''; apply(''); toHash(''); }
    });
    document.addEventListener('keydown', function (e) {
      if (e.key === '/' && document.activeElement !== input) { e.preventDefault(); input.focus(); }
    });
    window.addEventListener('hashchange', function () {
      var q = fromHash();
      if (q !== input.value) { input.value = q; apply(q); }
    });

    var initial = fromHash();
    input.value = initial;
    if (initial) input.setAttribute('value', initial);
    apply(initial);
  }

  function setupChart() {
    var chart = document.getElementById('fleet-chart');
    var data = document.getElementById('fleet-data');
    var tip = document.getElementById('fleet-tip');
    if (!chart || !data || !tip) return;
    var points;
    try { points = JSON.parse(data.textContent); } catch (e) { return; }
    if (!points.length) return;
    var line = chart.querySelector('.hover-line');
    var t0 = Number(chart.getAttribute('data-t0')), t1 = Number(chart.getAttribute('data-t1'));
    var x0 = Number(chart.getAttribute('data-x0')), x1 = Number(chart.getAttribute('data-x1'));

    function hide() { tip.hidden = true; if (line) line.style.display = 'none'; }
    chart.addEventListener('mouseleave', hide);
    chart.addEventListener('mousemove', function (e) {
      var ctm = chart.getScreenCTM();
      if (!ctm) return;
      var pt = chart.createSVGPoint();
      pt.x = e.clientX; pt.y = e.clientY;
      var p = pt.matrixTransform(ctm.inverse());
      var t = t0 + (p.x - x0) / (x1 - x0) * (t1 - t0);
      if (p.x < x0 || p.x > x1 || t < points[0][0]) { hide(); return; }
      var lo = 0, hi = points.length - 1;
      while (lo < hi) {
        var mid = (lo + hi + 1) >> 1;
        if (points[mid][0] <= t) lo = mid; else hi = mid - 1;
      }
      if (line) {
        line.setAttribute('x1', p.x); line.setAttribute('x2', p.x); line.style.display = '';
      }
      tip.textContent = fmt(t) + ' UTC: ' + points[lo][1] + ' in service';
      tip.hidden = false;
      tip.style.left = (e.pageX + 12) + 'px';
      tip.style.top = (e.pageY - 30) + 'px';
    });
  }

  function init() {
    setupFilter();
    setupChart();
    document.body.setAttribute('data-ready', 'true');
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
