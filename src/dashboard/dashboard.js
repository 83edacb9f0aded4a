// The Rota dashboard: plain browser JavaScript, no build step. It reads the JSON API and re-reads
// a section when the server's event stream (/api/events) says that part of the cluster changed.
(() => {
  // A token given as #token=… or ?access_token=… is kept for this tab only.
  const params = new URLSearchParams(location.search);
  const hash = new URLSearchParams(location.hash.slice(1));
  const token = hash.get('token') || params.get('access_token') || sessionStorage.getItem('rota-token') || '';
  if (token) sessionStorage.setItem('rota-token', token);
  const headers = token ? { authorization: `Bearer ${token}` } : {};

  const $ = (id) => document.getElementById(id);
  const esc = (v) =>
    String(v ?? '-').replace(
      /[&<>"']/g,
      (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
    );
  const time = (ms) => (typeof ms === 'number' ? new Date(ms).toLocaleTimeString() : '-');
  const dur = (ms) => {
    if (typeof ms !== 'number') return '-';
    if (Math.abs(ms) < 1000) return `${Math.round(ms)} ms`;
    if (Math.abs(ms) < 60_000) return `${(ms / 1000).toFixed(1)} s`;
    return `${(ms / 60_000).toFixed(1)} min`;
  };
  const enc = encodeURIComponent;

  async function api(method, path, body) {
    const init = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const data = res.status === 204 ? null : await res.json();
    if (!res.ok) throw new Error(`${data?.code ?? res.status}: ${data?.message ?? res.statusText}`);
    return data;
  }

  function toast(text) {
    const t = $('toast');
    t.textContent = text;
    t.classList.add('show');
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => t.classList.remove('show'), 2500);
  }

  function render(table, columns, rows) {
    const head = `<tr>${columns.map((c) => `<th>${esc(c[0])}</th>`).join('')}</tr>`;
    const body = rows.length
      ? rows.map((r) => `<tr>${columns.map((c) => `<td>${c[1](r)}</td>`).join('')}</tr>`).join('')
      : `<tr><td class="empty" colspan="${columns.length}">none</td></tr>`;
    $(table).innerHTML = head + body;
  }

  const status = (s) => `<span class="s-${esc(s)}">${esc(s)}</span>`;

  // --- sections -----------------------------------------------------------------------------------

  async function loadCluster() {
    const s = await api('GET', '/api/status');
    $('meta').textContent = `namespace ${s.namespace} · served by ${s.node} · store time ${time(s.now)}`;
    render(
      'members',
      [
        ['node', (m) => esc(m.nodeId)],
        ['host', (m) => `${esc(m.hostname)}:${esc(m.pid)}`],
        ['since', (m) => time(m.startedAt)],
        [
          'runs',
          (m) =>
            [...m.capabilities.schedules, ...m.capabilities.pools]
              .map((x) => `<span class="chip">${esc(x)}</span>`)
              .join(''),
        ],
      ],
      s.members,
    );
    render(
      'leaders',
      [
        ['election', (l) => esc(l.name)],
        ['leader', (l) => esc(l.nodeId)],
        ['token', (l) => esc(l.token)],
        ['since', (l) => time(l.since)],
        ['candidates', (l) => esc(l.candidates)],
      ],
      s.leaders,
    );
    render(
      'hosts',
      [
        ['role', (h) => esc(h.namespace)],
        ['hosts', (h) => h.hosts.map((x) => `<span class="chip">${esc(x)}</span>`).join('') || '-'],
        ['decided by', (h) => esc(h.leader)],
        ['at', (h) => time(h.decidedAt)],
      ],
      s.hosts,
    );
  }

  async function loadLocks() {
    const locks = await api('GET', '/api/locks');
    render(
      'locks',
      [
        ['lock', (l) => esc(l.name)],
        ['holder', (l) => esc(l.nodeId)],
        ['token', (l) => esc(l.token)],
        ['waiting', (l) => esc(l.waiting)],
      ],
      locks,
    );
  }

  async function loadSchedules() {
    const list = await api('GET', '/api/schedules');
    const histories = await Promise.all(
      list.map((s) => api('GET', `/api/schedules/${enc(s.name)}/runs?limit=10`).catch(() => [])),
    );
    const rows = list.map((s, i) => ({ ...s, runs: histories[i] }));
    render(
      'schedules',
      [
        ['name', (s) => `<b>${esc(s.name)}</b><br><small>${esc(s.description)}</small>`],
        ['state', (s) => status(s.state)],
        ['next run', (s) => time(s.nextRunAt)],
        [
          'recent runs',
          (s) =>
            `<div class="wrap">${
              s.runs
                .filter((r) => r.kind !== 'skipped')
                .slice(0, 3)
                .map(
                  (r) =>
                    `<span class="chip s-${esc(r.status)}" title="${esc(r.runId)} ${esc(r.status)}">${esc(r.kind === 'manual' ? 'manual' : time(r.slotAt))}</span>`,
                )
                .join('') || '-'
            }</div>`,
        ],
        [
          'lateness',
          (s) => {
            const late = s.runs.filter((r) => r.kind === 'slot' && typeof r.startedAt === 'number');
            return late.length
              ? dur(late.reduce((a, r) => a + (r.startedAt - r.slotAt), 0) / late.length)
              : '-';
          },
        ],
        ['skips', (s) => esc(s.runs.filter((r) => r.skipped).reduce((a, r) => a + r.skipped.count, 0))],
        [
          '',
          (s) =>
            `<div class="wrap"><button data-action="run-now" data-name="${esc(s.name)}">Run now</button> ` +
            (s.state === 'paused'
              ? `<button data-action="resume" data-name="${esc(s.name)}">Resume</button>`
              : `<button data-action="pause" data-name="${esc(s.name)}">Pause</button>`) +
            '</div>',
        ],
      ],
      rows,
    );
  }

  let queues = [];
  async function loadCounts() {
    const counts = await api('GET', '/api/tasks/counts');
    queues = Object.keys(counts).sort();
    render(
      'counts',
      [
        ['queue', (r) => esc(r.queue)],
        ['pending', (r) => esc(r.pending)],
        ['claimed', (r) => esc(r.claimed)],
        ['running', (r) => esc(r.running)],
        ['completed', (r) => esc(r.completed)],
        ['resolving', (r) => esc(r.resolving)],
      ],
      queues.map((q) => ({ queue: q, ...counts[q] })),
    );
    const select = $('task-queue');
    const current = select.value;
    const options = ['', ...queues];
    if (
      select.options.length !== options.length ||
      [...select.options].some((o, i) => o.value !== options[i])
    ) {
      select.innerHTML = options
        .map((q) => `<option value="${esc(q)}">${q ? esc(q) : 'all queues'}</option>`)
        .join('');
      select.value = options.includes(current) ? current : '';
    }
  }

  async function loadTasks() {
    const q = new URLSearchParams({ limit: '15' });
    if ($('task-queue').value) q.set('queue', $('task-queue').value);
    if ($('task-state').value) q.set('state', $('task-state').value);
    // Newest first would need a reverse cursor; the first page of the filtered list is enough here.
    const page = await api('GET', `/api/tasks?${q}`);
    render(
      'tasks',
      [
        ['id', (t) => `<code>${esc(t.id)}</code>`],
        ['queue', (t) => esc(t.queue)],
        ['state', (t) => status(t.outcome ? `${t.outcome}` : t.state)],
        ['attempt', (t) => `${esc(t.attempt)}/${esc(t.maxAttempts)}`],
        ['owner', (t) => esc(t.owner)],
        [
          '',
          (t) =>
            t.state === 'completed'
              ? t.outcome === 'succeeded'
                ? ''
                : `<button data-action="retry" data-id="${esc(t.id)}">Retry</button>`
              : `<button data-action="cancel" data-id="${esc(t.id)}">Cancel</button>`,
        ],
      ],
      page.tasks,
    );
  }

  async function loadPools() {
    const pools = await api('GET', '/api/pools');
    const parts = await Promise.all(
      pools.map(async (p) => {
        const [workers, jobs] = await Promise.all([
          api('GET', `/api/pools/${enc(p)}/workers`),
          api('GET', `/api/pools/${enc(p)}/jobs`),
        ]);
        const unowned = jobs.filter((j) => !j.workerId);
        const chip = (key) =>
          `<span class="chip">${esc(key)} <button data-action="stop-job" data-pool="${esc(p)}" data-key="${esc(key)}" title="stop">×</button></span>`;
        return (
          `<h3>${esc(p)}: ${jobs.length} jobs on ${workers.length} workers</h3>` +
          workers
            .map(
              (w) =>
                `<div class="worker" data-worker="${esc(w.id)}"><b>${esc(w.nodeId)}</b> <small>${esc(w.id.slice(-8))} ${esc(w.state)}</small> ${w.jobs.map(chip).join('') || '<small>idle</small>'}</div>`,
            )
            .join('') +
          (unowned.length
            ? `<div class="worker"><b>waiting for a worker</b> ${unowned.map((j) => chip(j.key)).join('')}</div>`
            : '')
        );
      }),
    );
    $('pools').innerHTML = parts.join('') || '<p class="empty">no pools</p>';
  }

  // --- throughput chart: completions per second, fed by the event stream -------------------------

  const SECONDS = 120;
  const perSecond = new Map();
  function addCompleted(n) {
    const s = Math.floor(Date.now() / 1000);
    perSecond.set(s, (perSecond.get(s) ?? 0) + n);
  }
  function drawChart() {
    const canvas = $('throughput');
    const ctx = canvas.getContext('2d');
    const now = Math.floor(Date.now() / 1000);
    const values = [];
    for (let s = now - SECONDS + 1; s <= now; s++) values.push(perSecond.get(s) ?? 0);
    for (const s of perSecond.keys()) if (s <= now - SECONDS) perSecond.delete(s);
    const max = Math.max(5, ...values);
    const w = canvas.width;
    const h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = '#0969da';
    const bw = w / SECONDS;
    values.forEach((v, i) => {
      const bh = (v / max) * (h - 16);
      ctx.fillRect(i * bw, h - bh, Math.max(1, bw - 1), bh);
    });
    ctx.fillStyle = '#6b6b70';
    ctx.font = '11px system-ui';
    ctx.fillText(`max ${max}/s · now ${values[values.length - 1]}/s`, 4, 12);
  }

  // --- refresh on change --------------------------------------------------------------------------

  const loaders = {
    cluster: loadCluster,
    locks: loadLocks,
    schedules: loadSchedules,
    counts: loadCounts,
    tasks: loadTasks,
    pools: loadPools,
  };
  const dirty = new Set();
  let flushTimer = null;
  function refresh(...names) {
    for (const n of names) dirty.add(n);
    if (!flushTimer) flushTimer = setTimeout(flush, 150);
  }
  async function flush() {
    flushTimer = null;
    const names = [...dirty];
    dirty.clear();
    await Promise.all(
      names.map((n) =>
        loaders[n]().catch((err) => {
          console.error(n, err);
          toast(err.message);
        }),
      ),
    );
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded ?? 0) + 1);
  }

  const topics = {
    members: ['cluster', 'pools'],
    leaders: ['cluster'],
    hosts: ['cluster'],
    locks: ['locks'],
    schedules: ['schedules'],
    pools: ['pools'],
    tasks: ['counts', 'tasks'],
  };
  function connect() {
    const es = new EventSource(`/api/events${token ? `?access_token=${enc(token)}` : ''}`);
    es.addEventListener('open', () => $('live').classList.add('on'));
    es.addEventListener('error', () => $('live').classList.remove('on'));
    for (const [topic, sections] of Object.entries(topics)) {
      es.addEventListener(topic, (e) => {
        if (topic === 'tasks') {
          const m = JSON.parse(e.data);
          addCompleted(Object.values(m.completed ?? {}).reduce((a, b) => a + b, 0));
        }
        refresh(...sections);
      });
    }
  }

  // --- actions ------------------------------------------------------------------------------------

  document.addEventListener('click', async (e) => {
    const b = e.target.closest('button[data-action]');
    if (!b) return;
    const d = b.dataset;
    b.disabled = true;
    try {
      if (d.action === 'run-now') {
        const run = await api('POST', `/api/schedules/${enc(d.name)}/run-now`);
        toast(`requested ${run.runId} of ${d.name}`);
      } else if (d.action === 'pause' || d.action === 'resume') {
        const s = await api('POST', `/api/schedules/${enc(d.name)}/${d.action}`);
        toast(`${d.name} is ${s.state}`);
      } else if (d.action === 'cancel') {
        await api('POST', `/api/tasks/${enc(d.id)}/cancel`, { reason: 'cancelled from the dashboard' });
        toast(`cancelled ${d.id}`);
      } else if (d.action === 'retry') {
        const ref = await api('POST', `/api/tasks/${enc(d.id)}/retry`);
        toast(`retrying as ${ref.id}`);
      } else if (d.action === 'stop-job') {
        await api('POST', `/api/pools/${enc(d.pool)}/jobs/${enc(d.key)}/stop`);
        toast(`stopped ${d.key}`);
      }
      refresh(...Object.keys(loaders));
    } catch (err) {
      toast(err.message);
    } finally {
      b.disabled = false;
    }
  });
  $('task-queue').addEventListener('change', () => refresh('tasks'));
  $('task-state').addEventListener('change', () => refresh('tasks'));

  connect();
  refresh(...Object.keys(loaders));
  // Next-run times and the chart move with the clock even when nothing changes.
  setInterval(drawChart, 1000);
  setInterval(() => refresh('cluster', 'schedules'), 10_000);
})();
