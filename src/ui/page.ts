/**
 * The dashboard page: one self-contained HTML document (styles and script inline, no external
 * resources, so it works on machines without internet access). The Content-Security-Policy allows
 * exactly the inline script and style below, by hash, and requests to the agent itself.
 */
import { createHash } from 'node:crypto';
import { CLIENT_JS } from './client.js';

const STYLE = `
:root { --bg: #f6f7f9; --fg: #1f2933; --muted: #637381; --line: #dfe3e8; --card: #fff; --accent: #2563eb;
  --ok: #047857; --bad: #b91c1c; --warn: #b45309; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); font-size: 14px; }
header { background: #111827; color: #f9fafb; padding: 12px 20px; display: flex; flex-wrap: wrap; align-items: center; gap: 12px; }
header h1 { font-size: 18px; margin: 0; font-weight: 600; }
header h1 .scope { color: #93c5fd; }
header .spacer { flex: 1; }
header .auth { color: #cbd5e1; font-size: 13px; }
main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: minmax(0, 1fr); max-width: 1400px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
section h2 { font-size: 15px; margin: 0 0 8px; display: flex; align-items: center; gap: 8px; }
.sub { color: var(--muted); font-size: 12px; margin: 2px 0 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: middle; }
th { font-size: 12px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .03em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.leader td { background: #eff6ff; }
.role-badge { display: inline-block; padding: 1px 8px; border-radius: 10px; background: #e5e7eb; font-size: 12px; }
.role-badge.is-leader { background: var(--accent); color: #fff; }
.state-running, .state-streaming { color: var(--ok); }
.state-stopped, .state-crashed, .state-start-failed { color: var(--bad); }
.badge { display: inline-block; padding: 2px 10px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.badge.live { background: #065f46; color: #ecfdf5; }
.badge.bad { background: #991b1b; color: #fef2f2; }
.badge.paused { background: #b45309; color: #fffbeb; }
.badge.noleader { background: #991b1b; color: #fef2f2; }
button { font: inherit; border: 1px solid #9ca3af; background: #fff; color: var(--fg); border-radius: 6px; padding: 5px 12px; cursor: pointer; }
button:hover { border-color: var(--accent); }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
header button { background: #1f2937; color: #f9fafb; border-color: #4b5563; }
button.small { padding: 2px 8px; font-size: 12px; }
td.actions { white-space: nowrap; }
td.actions button + button { margin-left: 4px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; background: #9ca3af; }
.swatch[data-color="0"] { background: #2563eb; } .swatch[data-color="1"] { background: #d97706; }
.swatch[data-color="2"] { background: #059669; } .swatch[data-color="3"] { background: #dc2626; }
.swatch[data-color="4"] { background: #7c3aed; } .swatch[data-color="5"] { background: #0891b2; }
.swatch[data-color="6"] { background: #be185d; } .swatch[data-color="7"] { background: #4d7c0f; }
#lag-chart { width: 100%; overflow: hidden; }
#lag-chart .grid { stroke: #e5e7eb; stroke-width: 1; }
#lag-chart .axis { fill: #6b7280; font-size: 11px; }
#lag-legend { list-style: none; padding: 0; margin: 4px 0 0; display: flex; gap: 16px; flex-wrap: wrap; color: var(--muted); font-size: 12px; }
ul.plain { list-style: none; padding: 0; margin: 0; }
ul.plain li { padding: 4px 0; border-bottom: 1px solid var(--line); }
ul.plain li:last-child { border-bottom: 0; }
#activity li.ok span { color: var(--ok); } #activity li.error span { color: var(--bad); } #activity li.pending span { color: var(--muted); }
#activity time { color: var(--muted); font-variant-numeric: tabular-nums; }
#routers li.error { color: var(--bad); }
.empty { color: var(--muted); font-style: italic; }
.flash { position: sticky; top: 0; z-index: 5; margin: 0; padding: 8px 20px; display: flex; gap: 12px; align-items: center; }
.flash.ok { background: #ecfdf5; color: var(--ok); border-bottom: 1px solid #a7f3d0; }
.flash.error { background: #fef2f2; color: var(--bad); border-bottom: 1px solid #fecaca; }
.flash span { flex: 1; }
.cols { display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }
dialog { border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; min-width: 360px; max-width: 520px; }
dialog::backdrop { background: rgba(17, 24, 39, .45); }
dialog h3 { margin: 0 0 12px; font-size: 16px; }
dialog label { display: block; margin: 8px 0; }
dialog input[type=text], dialog input[type=password], dialog input[type=datetime-local], dialog select { display: block; width: 100%; margin-top: 4px; padding: 5px 8px; font: inherit; }
dialog .row { display: flex; gap: 8px; justify-content: flex-end; margin-top: 16px; }
dialog .why { color: var(--muted); margin: 0 0 8px; }
[hidden] { display: none !important; }
`;

const BODY = `
<header>
  <h1>pgha <span class="scope" id="scope"></span></h1>
  <span class="badge live" id="conn">connecting</span>
  <span class="badge paused" id="pause-state" hidden>Maintenance mode: on (automatic failover is paused)</span>
  <span class="badge noleader" id="no-leader" hidden>no leader</span>
  <span class="spacer"></span>
  <button type="button" id="switchover-btn">Switchover...</button>
  <button type="button" id="pause-btn">Pause</button>
  <button type="button" id="resume-btn" hidden>Resume</button>
  <span class="auth" id="auth-state"></span>
  <button type="button" id="login-btn">Sign in</button>
  <button type="button" id="logout-btn" hidden>Sign out</button>
</header>
<div id="flash" class="flash" hidden role="status"><span id="flash-text"></span><button type="button" class="small" id="flash-close">Dismiss</button></div>
<main>
  <section id="members-section">
    <h2>Members <span class="sub" id="member-count"></span></h2>
    <p class="sub" id="served-by"></p>
    <table id="members">
      <thead><tr><th>Member</th><th>Host</th><th>Role</th><th>State</th><th class="num">TL</th><th class="num">Lag</th>
        <th>Pending restart</th><th>Scheduled restart</th><th>Tags</th><th>Actions</th></tr></thead>
      <tbody id="members-body"></tbody>
    </table>
    <p class="empty" id="members-empty" hidden>No members registered in etcd.</p>
  </section>
  <section id="lag-section">
    <h2>Replication lag</h2>
    <p class="sub">Bytes each replica is behind the leader's last published WAL position (GET /cluster, every second; up to the last 5 minutes).</p>
    <div id="lag-chart"></div>
    <ul id="lag-legend"></ul>
  </section>
  <div class="cols">
    <section id="scheduled-section">
      <h2>Scheduled actions</h2>
      <ul class="plain" id="scheduled"></ul>
      <p class="empty" id="scheduled-empty">Nothing scheduled.</p>
    </section>
    <section id="activity-section">
      <h2>Activity</h2>
      <p class="sub">Actions from this page and the API's answers, newest first.</p>
      <ul class="plain" id="activity"></ul>
      <p class="empty" id="activity-empty">No actions yet.</p>
    </section>
  </div>
  <section id="history-section">
    <h2>Failover history</h2>
    <table id="history">
      <thead><tr><th class="num">TL</th><th class="num">LSN</th><th>Reason</th><th>Time</th><th>New leader</th></tr></thead>
      <tbody id="history-body"></tbody>
    </table>
    <p class="empty" id="history-empty">No failover or switchover yet.</p>
  </section>
  <section id="routers-section" hidden>
    <h2>Routers</h2>
    <p class="sub">Where each pgha router sends new client connections.</p>
    <ul class="plain" id="routers"></ul>
  </section>
</main>

<dialog id="switchover-dialog">
  <form>
    <h3>Switchover</h3>
    <p class="why">Current leader: <strong id="so-leader"></strong></p>
    <label>Candidate <select id="so-candidate"></select></label>
    <label>When (empty: now) <input type="datetime-local" id="so-when"></label>
    <div class="row"><button type="button" class="cancel">Cancel</button><button type="submit" class="primary" id="so-submit">Switch over</button></div>
  </form>
</dialog>
<dialog id="confirm-dialog">
  <form>
    <h3>Are you sure?</h3>
    <p id="confirm-text"></p>
    <label id="confirm-force-row"><input type="checkbox" id="confirm-force"> force (cancel an operation in progress)</label>
    <div class="row"><button type="button" class="cancel">Cancel</button><button type="submit" class="primary" id="confirm-ok">OK</button></div>
  </form>
</dialog>
<dialog id="login-dialog">
  <form>
    <h3>Sign in to the REST API</h3>
    <p class="why" id="login-why"></p>
    <label>User name <input type="text" id="login-user" autocomplete="username"></label>
    <label>Password <input type="password" id="login-pass" autocomplete="current-password"></label>
    <div class="row"><button type="button" class="cancel">Cancel</button><button type="submit" class="primary" id="login-submit">Sign in</button></div>
  </form>
</dialog>
`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/** The dashboard's HTML document. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pgha</title>
<style>${STYLE}</style>
</head>
<body>
${BODY}
<script>${CLIENT_JS}</script>
</body>
</html>
`;

/**
 * The page's Content-Security-Policy: its own inline script and style (by hash), requests to the
 * agent itself, nothing else — no frames, no other origins, no plugins.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src ${sha256(CLIENT_JS)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
