/**
 * The dashboard's browser script, served inline in the page (no build step, no libraries). It only
 * calls the agent's own REST API — `GET /cluster`, `/patroni`, `/history`, `/config`, and the writes
 * `POST /switchover`, `DELETE /switchover`, `PATCH /config` — plus `/ui/members/<name>/...`, which
 * forwards a restart or reinitialize to the member it is meant for (the page cannot call another
 * origin), and `/ui/routers`.
 *
 * Kept as plain ES2020 text: no template literals, so it can live in this string untouched. The DOM is
 * built with textContent only, so nothing read from etcd is ever parsed as HTML.
 */
export const CLIENT_JS = String.raw`
(function () {
  'use strict';
  var POLL_MS = 1000;
  var SLOW_EVERY = 5; // /history and /config every 5 polls: /config is a fresh etcd read
  var ROUTER_EVERY = 2;
  var WINDOW_MS = 5 * 60 * 1000;
  var COLORS = ['#2563eb', '#d97706', '#059669', '#dc2626', '#7c3aed', '#0891b2', '#be185d', '#4d7c0f'];

  /** HTTP Basic credentials, in this variable only: never stored, gone when the page is closed. */
  var creds = null;
  var st = { cluster: null, patroni: null, config: null, history: null, routers: null, lastOk: 0, error: null, busy: 0 };
  var series = {}; // member name -> [[time ms, lag bytes or null]]
  var tick = 0;
  var timer = null;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (attrs[k] === undefined || attrs[k] === null || attrs[k] === false) continue;
      if (k === 'text') e.textContent = String(attrs[k]);
      else if (k === 'onclick') e.addEventListener('click', attrs[k]);
      else e.setAttribute(k, attrs[k] === true ? '' : String(attrs[k]));
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }

  function svg(tag, attrs) {
    var e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (var k in attrs) {
      if (k === 'text') e.textContent = String(attrs[k]);
      else e.setAttribute(k, String(attrs[k]));
    }
    return e;
  }

  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }

  function fmtBytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return String(n);
    var units = ['B', 'kB', 'MB', 'GB', 'TB'];
    var i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
  }

  function fmtAge(sec) {
    if (sec < 1) return 'just now';
    if (sec < 90) return Math.round(sec) + ' s ago';
    if (sec < 5400) return Math.round(sec / 60) + ' min ago';
    return Math.round(sec / 3600) + ' h ago';
  }

  function titleRole(role) {
    return String(role || '').split('_').map(function (w) { return w.charAt(0).toUpperCase() + w.slice(1); }).join(' ');
  }

  function base64(s) {
    var bytes = new TextEncoder().encode(s);
    var bin = '';
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin);
  }

  /** One request to the API; resolves with status, text and parsed JSON (when it is JSON). */
  async function call(method, path, body) {
    var headers = { 'Accept': 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (creds) headers['Authorization'] = 'Basic ' + base64(creds.username + ':' + creds.password);
    // credentials 'omit': no browser login prompt and no cached credentials; the page sends its own.
    var res = await fetch(path, {
      method: method, headers: headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    var text = await res.text();
    var json = null;
    try { json = JSON.parse(text); } catch (e) { json = null; }
    return { status: res.status, text: text, json: json };
  }

  async function getJson(path) {
    var ctl = new AbortController();
    var t = setTimeout(function () { ctl.abort(); }, 4000);
    try {
      var res = await fetch(path, { cache: 'no-store', credentials: 'omit', signal: ctl.signal, headers: { 'Accept': 'application/json' } });
      var text = await res.text();
      var json = JSON.parse(text);
      if (!res.ok && path !== '/patroni') throw new Error(path + ': HTTP ' + res.status + (json && json.error ? ': ' + json.error : ''));
      return json;
    } finally { clearTimeout(t); }
  }

  /** The reason text the API gave: Patroni's plain text, or the "error" of a JSON answer. */
  function reasonOf(r) {
    if (r.json && typeof r.json === 'object' && typeof r.json.error === 'string') return r.json.error;
    var t = (r.text || '').trim();
    return t || ('HTTP ' + r.status);
  }

  function logLine(kind, text) {
    var list = $('activity');
    var now = new Date();
    var li = el('li', { 'class': kind }, [el('time', { text: now.toLocaleTimeString() }), ' ', el('span', { text: text })]);
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 50) list.removeChild(list.lastChild);
    $('activity-empty').hidden = true;
    if (kind !== 'pending') {
      var flash = $('flash');
      flash.className = 'flash ' + kind;
      $('flash-text').textContent = text;
      flash.hidden = false;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Dialogs: one promise per opening, resolved by its buttons.

  function openDialog(id) {
    var d = $(id);
    return new Promise(function (resolve) {
      function done(v) {
        d.removeEventListener('close', onClose);
        form.removeEventListener('submit', onSubmit);
        cancel.removeEventListener('click', onCancel);
        if (d.open) d.close();
        resolve(v);
      }
      function onSubmit(ev) { ev.preventDefault(); done(true); }
      function onCancel() { done(false); }
      function onClose() { done(false); }
      var form = d.querySelector('form');
      var cancel = d.querySelector('.cancel');
      form.addEventListener('submit', onSubmit);
      cancel.addEventListener('click', onCancel);
      d.addEventListener('close', onClose);
      d.showModal();
    });
  }

  async function confirmAction(text, withForce) {
    $('confirm-text').textContent = text;
    $('confirm-force-row').hidden = !withForce;
    $('confirm-force').checked = false;
    var ok = await openDialog('confirm-dialog');
    return ok ? { force: $('confirm-force').checked } : null;
  }

  async function login(why) {
    $('login-why').textContent = why || '';
    $('login-user').value = creds ? creds.username : ($('login-user').value || '');
    $('login-pass').value = '';
    setTimeout(function () { ($('login-user').value ? $('login-pass') : $('login-user')).focus(); }, 0);
    var ok = await openDialog('login-dialog');
    if (ok) creds = { username: $('login-user').value, password: $('login-pass').value };
    $('login-pass').value = '';
    renderAuth();
    return ok;
  }

  /** Runs one write; on 401 asks for credentials and tries once more; logs the answer either way. */
  async function act(label, method, path, body) {
    st.busy++;
    logLine('pending', label + ' ...');
    render();
    try {
      var r = await call(method, path, body);
      if (r.status === 401 && await login(label + ' needs the REST API credentials (' + reasonOf(r) + ')')) {
        r = await call(method, path, body);
      }
      var ok = r.status >= 200 && r.status < 300;
      logLine(ok ? 'ok' : 'error', label + (ok ? ': ' : ' refused (HTTP ' + r.status + '): ') + reasonOf(r));
      if (r.status === 401) { creds = null; renderAuth(); }
      return ok;
    } catch (e) {
      logLine('error', label + ' failed: ' + (e && e.message ? e.message : String(e)));
      return false;
    } finally {
      st.busy--;
      refreshSoon();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Actions

  function leaderName() {
    var m = (st.cluster && st.cluster.members || []).find(function (x) { return /leader$/.test(x.role); });
    return m ? m.name : null;
  }

  async function switchover() {
    var leader = leaderName();
    var sel = clear($('so-candidate'));
    sel.appendChild(el('option', { value: '', text: 'any healthy replica' }));
    (st.cluster && st.cluster.members || []).forEach(function (m) {
      if (m.name !== leader) sel.appendChild(el('option', { value: m.name, text: m.name + ' (' + m.state + ')' }));
    });
    if (sel.options.length > 1) sel.selectedIndex = 1;
    $('so-leader').textContent = leader || '(no leader)';
    $('so-when').value = '';
    if (!(await openDialog('switchover-dialog'))) return;
    var body = { leader: leader };
    if ($('so-candidate').value) body.candidate = $('so-candidate').value;
    var when = $('so-when').value;
    if (when) body.scheduled_at = new Date(when).toISOString();
    var label = 'switchover from ' + leader + (body.candidate ? ' to ' + body.candidate : '') + (when ? ' at ' + body.scheduled_at : '');
    await act(label, 'POST', '/switchover', body);
  }

  async function restartMember(name) {
    if (!(await confirmAction('Restart PostgreSQL on ' + name + ' now?', false))) return;
    await act('restart ' + name, 'POST', '/ui/members/' + encodeURIComponent(name) + '/restart', {});
  }

  async function reinitMember(name) {
    var answer = await confirmAction('Reinitialize ' + name + '? Its data directory is removed and cloned again from the leader.', true);
    if (!answer) return;
    await act('reinitialize ' + name, 'POST', '/ui/members/' + encodeURIComponent(name) + '/reinitialize', { force: answer.force });
  }

  async function cancelRestart(name) {
    await act('cancel the scheduled restart of ' + name, 'DELETE', '/ui/members/' + encodeURIComponent(name) + '/restart');
  }

  async function cancelSwitchover() {
    await act('cancel the scheduled switchover', 'DELETE', '/switchover');
  }

  async function setPause(on) {
    // As patronictl: pause writes true, resume removes the key.
    await act(on ? 'pause' : 'resume', 'PATCH', '/config', { pause: on ? true : null });
  }

  // ---------------------------------------------------------------------------------------------
  // Rendering

  function isPaused() {
    if (st.cluster && st.cluster.pause) return true;
    if (st.patroni && st.patroni.pause) return true;
    return false;
  }

  function renderAuth() {
    $('auth-state').textContent = creds ? 'signed in as ' + creds.username : 'not signed in';
    $('login-btn').hidden = !!creds;
    $('logout-btn').hidden = !creds;
  }

  function renderHeader() {
    var c = st.cluster, p = st.patroni;
    $('scope').textContent = (c && c.scope) || (p && p.patroni && p.patroni.scope) || '';
    document.title = 'pgha: ' + ($('scope').textContent || 'cluster');
    var paused = isPaused();
    $('pause-state').hidden = !paused;
    $('pause-btn').hidden = paused;
    $('resume-btn').hidden = !paused;
    if (p && p.patroni) {
      var last = p.dcs_last_seen ? fmtAge(Date.now() / 1000 - p.dcs_last_seen) : 'never';
      $('served-by').textContent = 'this page is served by ' + p.patroni.name + ' (' + (p.role || '?') + ', ' + p.state +
        '), pgha ' + p.patroni.version + '; etcd last read ' + last;
    }
    var conn = $('conn');
    if (st.error) {
      conn.className = 'badge bad';
      conn.textContent = 'not updating: ' + st.error;
    } else {
      conn.className = 'badge live';
      conn.textContent = st.busy > 0 ? 'live, action running' : 'live';
    }
    if (c && c.members && c.members.length > 0 && !c.members.some(function (m) { return /leader$/.test(m.role); })) {
      $('no-leader').hidden = false;
    } else {
      $('no-leader').hidden = true;
    }
  }

  function renderMembers() {
    var tbody = clear($('members-body'));
    var members = (st.cluster && st.cluster.members) || [];
    $('member-count').textContent = String(members.length);
    members.forEach(function (m, i) {
      var leader = /leader$/.test(m.role);
      var lag = leader ? '' : (typeof m.lag === 'number' ? fmtBytes(m.lag) : String(m.lag === undefined ? '' : m.lag));
      var sched = m.scheduled_restart ? (m.scheduled_restart.schedule || 'scheduled') : '';
      var tags = m.tags ? Object.keys(m.tags).map(function (k) { return k + '=' + JSON.stringify(m.tags[k]); }).join(' ') : '';
      var actions = el('td', { 'class': 'actions' }, [
        el('button', { type: 'button', 'class': 'small', 'data-action': 'restart', onclick: function () { restartMember(m.name); } }, ['Restart']),
        leader ? null : el('button', { type: 'button', 'class': 'small', 'data-action': 'reinitialize', onclick: function () { reinitMember(m.name); } }, ['Reinit']),
        m.scheduled_restart ? el('button', { type: 'button', 'class': 'small', 'data-action': 'cancel-restart', onclick: function () { cancelRestart(m.name); } }, ['Cancel restart']) : null,
      ]);
      tbody.appendChild(el('tr', { 'data-member': m.name, 'data-role': m.role, 'class': leader ? 'leader' : '' }, [
        el('td', { 'class': 'name' }, [el('span', { 'class': 'swatch', 'data-color': String(colorIndex(m.name)) }), m.name]),
        el('td', { 'class': 'host', text: m.host ? m.host + (m.port ? ':' + m.port : '') : '' }),
        el('td', { 'class': 'role' }, [el('span', { 'class': 'role-badge ' + (leader ? 'is-leader' : ''), text: titleRole(m.role) })]),
        el('td', { 'class': 'state state-' + String(m.state).replace(/[^a-z]/gi, '-'), text: m.state }),
        el('td', { 'class': 'tl num', text: m.timeline === undefined ? '' : m.timeline }),
        el('td', { 'class': 'lag num', text: lag }),
        el('td', { 'class': 'pending', text: m.pending_restart ? '*' : '' }),
        el('td', { 'class': 'scheduled', text: sched }),
        el('td', { 'class': 'tags', text: tags }),
        actions,
      ]));
      void i;
    });
    $('members-empty').hidden = members.length > 0;
  }

  var colorOf = {};
  function colorIndex(name) {
    if (!(name in colorOf)) colorOf[name] = Object.keys(colorOf).length % COLORS.length;
    return colorOf[name];
  }

  function recordLag() {
    var now = Date.now();
    var members = (st.cluster && st.cluster.members) || [];
    var seen = {};
    members.forEach(function (m) {
      seen[m.name] = true;
      var v = /leader$/.test(m.role) || typeof m.lag !== 'number' ? null : m.lag;
      (series[m.name] = series[m.name] || []).push([now, v]);
    });
    for (var name in series) {
      if (!seen[name]) series[name].push([now, null]);
      series[name] = series[name].filter(function (p) { return now - p[0] <= WINDOW_MS; });
      if (series[name].every(function (p) { return p[1] === null; }) && !seen[name]) delete series[name];
    }
  }

  function niceMax(v) {
    if (v <= 1024) return 1024;
    var p = Math.pow(2, Math.ceil(Math.log2(v)));
    return p;
  }

  function renderChart() {
    var box = $('lag-chart');
    var W = Math.max(320, box.clientWidth || 800), H = 200;
    var L = 64, R = 12, T = 10, B = 24;
    var now = Date.now();
    var max = 0, first = now;
    for (var n in series) series[n].forEach(function (p) {
      if (p[1] !== null && p[1] > max) max = p[1];
      if (p[0] < first) first = p[0];
    });
    // The window grows with the samples held, from one minute up to five.
    var span = Math.min(WINDOW_MS, Math.max(60000, now - first));
    var step = span <= 60000 ? 10000 : span <= 180000 ? 30000 : 60000;
    var ymax = niceMax(max);
    var root = svg('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'replication lag over time' });
    var x = function (t) { return L + (W - L - R) * (1 - (now - t) / span); };
    var y = function (v) { return T + (H - T - B) * (1 - v / ymax); };
    [0, 0.5, 1].forEach(function (f) {
      var yy = y(ymax * f);
      root.appendChild(svg('line', { x1: L, x2: W - R, y1: yy, y2: yy, 'class': 'grid' }));
      root.appendChild(svg('text', { x: L - 6, y: yy + 4, 'text-anchor': 'end', 'class': 'axis', text: fmtBytes(ymax * f) }));
    });
    for (var ago = 0; ago <= span; ago += step) {
      var xx = x(now - ago);
      var label = ago === 0 ? 'now' : '-' + (ago % 60000 === 0 ? ago / 60000 + ' min' : ago / 1000 + ' s');
      root.appendChild(svg('line', { x1: xx, x2: xx, y1: T, y2: H - B, 'class': 'grid' }));
      root.appendChild(svg('text', { x: xx, y: H - 6, 'text-anchor': ago === span ? 'start' : 'middle', 'class': 'axis', text: label }));
    }
    var legend = clear($('lag-legend'));
    Object.keys(series).sort().forEach(function (name) {
      var color = COLORS[colorIndex(name)];
      var runs = [], cur = [];
      series[name].forEach(function (p) {
        if (p[1] === null) { if (cur.length) runs.push(cur); cur = []; }
        else cur.push(x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(1));
      });
      if (cur.length) runs.push(cur);
      runs.forEach(function (r) {
        if (r.length === 1) r.push(r[0]);
        root.appendChild(svg('polyline', { points: r.join(' '), fill: 'none', stroke: color, 'stroke-width': 2, 'data-member': name }));
      });
      var last = series[name][series[name].length - 1];
      legend.appendChild(el('li', {}, [el('span', { 'class': 'swatch', 'data-color': String(colorIndex(name)) }),
        name + ': ' + (last && last[1] !== null ? fmtBytes(last[1]) : name === leaderName() ? 'leader' : 'unknown')]));
    });
    clear(box).appendChild(root);
  }

  function renderScheduled() {
    var list = clear($('scheduled'));
    var c = st.cluster;
    var any = false;
    if (c && c.scheduled_switchover) {
      any = true;
      var s = c.scheduled_switchover;
      list.appendChild(el('li', { 'data-kind': 'switchover' }, [
        'Switchover from ' + (s.from || '?') + ' to ' + (s.to || 'any replica') + ' at ' + s.at + ' ',
        el('button', { type: 'button', 'class': 'small', onclick: cancelSwitchover }, ['Cancel']),
      ]));
    }
    ((c && c.members) || []).forEach(function (m) {
      if (!m.scheduled_restart) return;
      any = true;
      var r = m.scheduled_restart;
      list.appendChild(el('li', { 'data-kind': 'restart' }, [
        'Restart of ' + m.name + ' at ' + (r.schedule || '?') + (r.postgres_version ? ' (if PostgreSQL < ' + r.postgres_version + ')' : '') + ' ',
        el('button', { type: 'button', 'class': 'small', onclick: function () { cancelRestart(m.name); } }, ['Cancel']),
      ]));
    });
    $('scheduled-empty').hidden = any;
  }

  function renderHistory() {
    var tbody = clear($('history-body'));
    var h = Array.isArray(st.history) ? st.history.slice().reverse() : [];
    h.forEach(function (e) {
      tbody.appendChild(el('tr', {}, [
        el('td', { 'class': 'num', text: e[0] }),
        el('td', { 'class': 'num', text: e[1] }),
        el('td', { text: e[2] || '' }),
        el('td', { text: e[3] || '' }),
        el('td', { text: e[4] || '' }),
      ]));
    });
    $('history-empty').hidden = h.length > 0;
  }

  function renderRouters() {
    var r = st.routers;
    var section = $('routers-section');
    if (!r || !Array.isArray(r.routers) || r.routers.length === 0) { section.hidden = true; return; }
    section.hidden = false;
    var list = clear($('routers'));
    r.routers.forEach(function (x) {
      if (!x.ok) {
        list.appendChild(el('li', { 'class': 'error' }, [x.url + ': ' + (x.error || 'unreachable')]));
        return;
      }
      var s = x.status || {};
      var rw = s.primary ? 'writes go to ' + s.primary : 'writes refused: ' + (s.noPrimaryBecause || 'no primary');
      var ro = 'reads go to ' + ((s.replicas && s.replicas.length) ? s.replicas.join(', ') : 'no replica');
      var sess = s.sessions && typeof s.sessions.open === 'number' ? s.sessions.open + ' open session(s)' : '';
      list.appendChild(el('li', { 'data-router': x.url }, [el('strong', { text: x.url }), ': ' + rw + '; ' + ro + (sess ? '; ' + sess : '')]));
    });
  }

  function render() {
    renderHeader();
    renderMembers();
    renderChart();
    renderScheduled();
    renderHistory();
    renderRouters();
  }

  // ---------------------------------------------------------------------------------------------
  // Polling

  async function poll() {
    timer = null;
    var slow = tick % SLOW_EVERY === 0;
    var routers = tick % ROUTER_EVERY === 0;
    tick++;
    try {
      var parts = await Promise.all([
        getJson('/cluster'),
        getJson('/patroni'),
        slow ? getJson('/history') : Promise.resolve(st.history),
        slow ? getJson('/config').catch(function () { return st.config; }) : Promise.resolve(st.config),
        routers ? getJson('/ui/routers').catch(function () { return st.routers; }) : Promise.resolve(st.routers),
      ]);
      st.cluster = parts[0]; st.patroni = parts[1]; st.history = parts[2]; st.config = parts[3]; st.routers = parts[4];
      st.error = null;
      st.lastOk = Date.now();
      recordLag();
    } catch (e) {
      st.error = e && e.name === 'AbortError' ? 'the agent does not answer' : (e && e.message ? e.message : String(e));
    }
    render();
    timer = setTimeout(poll, POLL_MS);
  }

  function refreshSoon() {
    if (timer === null) return; // a poll is running; it schedules the next one
    clearTimeout(timer);
    tick = 0; // the next poll reads everything
    timer = setTimeout(poll, 50);
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('switchover-btn').addEventListener('click', switchover);
    $('pause-btn').addEventListener('click', function () { setPause(true); });
    $('resume-btn').addEventListener('click', function () { setPause(false); });
    $('login-btn').addEventListener('click', function () { login('Credentials of restapi.authentication, kept in this page only.'); });
    $('logout-btn').addEventListener('click', function () { creds = null; renderAuth(); });
    $('flash-close').addEventListener('click', function () { $('flash').hidden = true; });
    renderAuth();
    poll();
  });
})();
`;
