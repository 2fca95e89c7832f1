// Sluice's web console: polls the admin API once a second (`/metrics` and a few JSON
// endpoints), keeps five minutes of history in the page, and draws the graph, tables and
// charts without any library.
'use strict';

const POLL_MS = 1000;
const HISTORY_MS = 5 * 60 * 1000;
const COLOURS = ['#3b6fd8', '#d2453b', '#2e9e5b', '#d99a1e', '#8c4fd1', '#1aa0a8', '#c2497f', '#6b7385'];

// How many polls between two reads of the graph (a reload may rewire the pipeline).
const GRAPH_EVERY = 10;
// Swaps the history table shows, newest first (the API keeps up to 1,000).
const SWAPS_SHOWN = 50;
// Widest node title in the graph, in characters; longer names are cut (the full name shows on hover).
const TITLE_CHARS = 22;

const state = { pipeline: null, graph: null, polls: 0, previous: null, history: [], token: sessionStorage.getItem('sluice-token') };

// ---- the admin API ----------------------------------------------------------------------

class Unauthorised extends Error {}

async function api(path, kind = 'json') {
  const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
  const response = await fetch(path, { headers, cache: 'no-store' });
  if (response.status === 401) throw new Unauthorised();
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return kind === 'json' ? response.json() : response.text();
}

document.getElementById('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  state.token = document.getElementById('token').value.trim();
  sessionStorage.setItem('sluice-token', state.token);
  document.getElementById('token-form').hidden = true;
});

// ---- the Prometheus text format ---------------------------------------------------------

function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    const labelText = match[3] || '';
    for (const pair of labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    samples.push({ name: match[1], labels, value: Number(match[4]) });
  }
  return samples;
}

const matching = (samples, name, filter = {}) =>
  samples.filter((sample) => sample.name === name && Object.entries(filter).every(([key, value]) => sample.labels[key] === value));

const total = (samples, name, filter) => matching(samples, name, filter).reduce((sum, sample) => sum + sample.value, 0);

// Cumulative bucket counts by upper bound, summed over every series matching the filter.
function buckets(samples, name, filter) {
  const counts = new Map();
  for (const sample of matching(samples, `${name}_bucket`, filter)) {
    const bound = sample.labels.le === '+Inf' ? Infinity : Number(sample.labels.le);
    counts.set(bound, (counts.get(bound) || 0) + sample.value);
  }
  return counts;
}

// The q-quantile of a histogram from its bucket counts (the upper bound of the bucket holding
// it), over the calls since the previous poll when there were some, else over all.
function quantile(now, before, q) {
  const bounds = [...now.keys()].sort((a, b) => a - b);
  let counts = bounds.map((bound) => now.get(bound) - ((before && before.get(bound)) || 0));
  if (counts[counts.length - 1] <= 0) counts = bounds.map((bound) => now.get(bound));
  const all = counts[counts.length - 1];
  if (!all) return null;
  const index = counts.findIndex((count) => count >= q * all);
  const bound = bounds[index];
  return bound === Infinity ? bounds[bounds.length - 2] : bound;
}

// ---- formatting -------------------------------------------------------------------------

const rate = (value) => (value == null ? '–' : value >= 1e6 ? `${(value / 1e6).toFixed(2)} M` : value >= 1e4 ? `${(value / 1e3).toFixed(1)} K` : value.toFixed(value < 10 ? 1 : 0));
const seconds = (value) => (value == null ? '–' : value < 1e-3 ? `${(value * 1e6).toFixed(0)} µs` : value < 1 ? `${(value * 1e3).toFixed(1)} ms` : `${value.toFixed(2)} s`);
// A span of time that may be long (an event-time lag of days): seconds, then minutes, hours, days.
const span = (value) => (value == null || value < 120 ? seconds(value) : value < 7200 ? `${(value / 60).toFixed(1)} min` : value < 172800 ? `${(value / 3600).toFixed(1)} h` : `${(value / 86400).toFixed(1)} d`);
const bytes = (value) => (value >= 1 << 20 ? `${(value / (1 << 20)).toFixed(1)} MiB` : value >= 1024 ? `${(value / 1024).toFixed(0)} KiB` : `${value} B`);
// A time in ms since the epoch, or the number itself when no date can show it.
const time = (ms) => {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
};
const shortDigest = (digest) => (digest || '').replace(/^sha256:/, '').slice(0, 12);
// `text` cut to `most` characters (code points), with an ellipsis when cut.
const cut = (text, most) => { const chars = [...text]; return chars.length > most ? `${chars.slice(0, most - 1).join('')}…` : text; };
const percent = (value) => `${(100 * value).toFixed(0)} %`;

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function fillTable(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows.map((cells) => element('tr', {}, ...cells.map((cell) => (cell instanceof Node ? cell : element('td', {}, cell))))));
}

const cell = (text, className) => element('td', className ? { class: className } : {}, text);

// ---- one poll ---------------------------------------------------------------------------

async function poll() {
  try {
    const pipelines = await api('/pipelines');
    const wanted = new URLSearchParams(location.search).get('pipeline');
    const pipeline = pipelines.find((candidate) => candidate.name === wanted) || pipelines[0];
    if (!pipeline) throw new Error('no pipeline');
    const base = `/pipelines/${encodeURIComponent(pipeline.name)}`;
    if (state.pipeline !== pipeline.name || !state.graph || state.polls % GRAPH_EVERY === 0) {
      const graph = await api(`${base}/graph`);
      // Set only once the graph arrived: a failed read leaves the page as it was.
      if (state.pipeline !== pipeline.name || JSON.stringify(graph) !== JSON.stringify(state.graph)) {
        state.previous = null;
        state.history = [];
      }
      state.pipeline = pipeline.name;
      state.graph = graph;
    }
    state.polls += 1;
    const [text, swaps, deadLetters, results] = await Promise.all([
      api('/metrics', 'text'), api(`${base}/swaps`), api(`${base}/dead-letters`), api(`${base}/results`),
    ]);
    const snapshot = measure(parseMetrics(text), pipeline);
    render(snapshot, pipeline, swaps, deadLetters, results);
    state.previous = snapshot;
    document.body.classList.remove('stale');
    setStatus('live', 'live');
  } catch (error) {
    if (error instanceof Unauthorised) document.getElementById('token-form').hidden = false;
    setStatus('down', error instanceof Unauthorised ? 'token needed' : 'no answer');
    // What is on the page is no longer live: no rates, and the rest dimmed.
    for (const id of ['rate-in', 'rate-out']) document.getElementById(id).textContent = '–';
    document.body.classList.add('stale');
    state.previous = null;
  }
}

function setStatus(kind, text) {
  const status = document.getElementById('status');
  status.className = `status ${kind}`;
  status.textContent = text;
}

// A node's key: a sink may share its name with a source or an operator.
const nodeId = (node) => `${node.kind}:${node.name}`;

// What the page shows of one scrape: totals per node, and rates against the previous one.
function measure(samples, pipeline) {
  const now = Date.now();
  const p = { pipeline: pipeline.name };
  const previous = state.previous;
  const seconds = previous ? (now - previous.at) / 1000 : 0;
  const since = (value, before) => (previous && seconds > 0 ? Math.max(0, value - before) / seconds : null);
  // Counters of ended tasks stay as totals: the tasks shown are those running now.
  const running = new Set(matching(samples, 'sluice_task_running', p).filter((sample) => sample.value > 0).map((sample) => sample.labels.task));
  const taskRows = [...running].sort().map((task) => {
    const filter = { ...p, task };
    const before = previous && previous.taskTotals && previous.taskTotals[task];
    const busy = total(samples, 'sluice_task_busy_seconds_total', filter);
    const blocked = total(samples, 'sluice_task_backpressured_seconds_total', filter);
    const watermark = matching(samples, 'sluice_watermark_milliseconds', filter)[0];
    return {
      task, busy, blocked,
      watermark: watermark ? watermark.value : null,
      busyShare: before ? since(busy, before.busy) : null,
      blockedShare: before ? since(blocked, before.blocked) : null,
      ok: total(samples, 'sluice_checkpoints_total', { ...filter, result: 'ok' }),
      failed: total(samples, 'sluice_checkpoints_total', { ...filter, result: 'failed' }),
      checkpointSum: total(samples, 'sluice_checkpoint_seconds_sum', filter),
      checkpointCount: total(samples, 'sluice_checkpoint_seconds_count', filter),
      stateBytes: total(samples, 'sluice_checkpoint_size_bytes', filter),
    };
  });
  const taskTotals = Object.fromEntries(taskRows.map((row) => [row.task, row]));
  const nodes = {};
  for (const node of state.graph.nodes) {
    const filter = { ...p, node: node.name, kind: node.kind };
    const recordsIn = total(samples, 'sluice_records_in_total', filter);
    const recordsOut = total(samples, 'sluice_records_out_total', filter);
    const tasks = [...new Set(matching(samples, node.kind === 'sink' ? 'sluice_records_in_total' : 'sluice_records_out_total', filter).map((sample) => sample.labels.task))]
      .filter((task) => node.kind === 'sink' || running.has(task));
    // Shares of a core, the mean of its tasks' since the previous poll: only tasks running at
    // both polls count (one that started or came back in between brings its whole history).
    const timed = tasks.filter((task) => previous && previous.taskTotals[task]);
    const shareOf = (share) => (timed.length ? timed.reduce((sum, task) => sum + (taskTotals[task][share] || 0), 0) / timed.length : null);
    const before = previous && previous.nodes[nodeId(node)];
    // A source's unreadable records, an operator's refused ones; a sink dead-letters nothing
    // (and may share its name with a source or an operator).
    const deadLetters = node.kind === 'sink' ? 0 : total(samples, 'sluice_dead_letters_total', { ...p, node: node.name });
    nodes[nodeId(node)] = {
      recordsIn, recordsOut, deadLetters, tasks: tasks.length,
      rateIn: before ? since(recordsIn, before.recordsIn) : null,
      rateOut: before ? since(recordsOut, before.recordsOut) : null,
      blockedShare: shareOf('blockedShare'),
      busyShare: shareOf('busyShare'),
      process: buckets(samples, 'sluice_operator_call_seconds', { ...p, operator: node.name, call: 'process' }),
      perRecord: buckets(samples, 'sluice_operator_record_seconds', { ...p, operator: node.name }),
    };
  }
  const operators = {};
  for (const node of state.graph.nodes.filter((candidate) => candidate.kind === 'operator')) {
    const filter = { ...p, operator: node.name };
    const before = previous && previous.nodes[nodeId(node)];
    const version = matching(samples, 'sluice_operator_version', filter).find((sample) => sample.value === 1);
    const deadLetters = matching(samples, 'sluice_dead_letters_total', { ...p, node: node.name })
      .map((sample) => `${sample.labels.reason} ${sample.value}`).join(', ');
    operators[node.name] = {
      digest: version ? version.labels.plugin_digest : '',
      p50: quantile(nodes[nodeId(node)].process, before && before.process, 0.5),
      p99: quantile(nodes[nodeId(node)].process, before && before.process, 0.99),
      perRecord: quantile(nodes[nodeId(node)].perRecord, before && before.perRecord, 0.5),
      memory: total(samples, 'sluice_operator_memory_bytes', filter),
      restarts: total(samples, 'sluice_operator_restarts_total', filter),
      open: total(samples, 'sluice_operator_circuit_open', filter),
      deadLetters,
    };
  }
  const deadTotal = total(samples, 'sluice_dead_letters_total', p);
  return { at: now, nodes, operators, taskRows, taskTotals, deadTotal };
}

// ---- drawing ----------------------------------------------------------------------------

function render(snapshot, pipeline, swaps, deadLetters, results) {
  document.getElementById('pipeline-name').textContent = pipeline.name;
  document.title = `Sluice — ${pipeline.name}`;
  const kindRate = (kind, field) => state.graph.nodes.filter((node) => node.kind === kind)
    .reduce((sum, node) => (snapshot.nodes[nodeId(node)][field] == null ? sum : (sum || 0) + snapshot.nodes[nodeId(node)][field]), null);
  const rateIn = kindRate('source', 'rateOut');
  const rateOut = kindRate('sink', 'rateIn');
  document.getElementById('rate-in').textContent = rate(rateIn);
  document.getElementById('rate-out').textContent = rate(rateOut);
  document.getElementById('dead-total').textContent = snapshot.deadTotal;
  remember(snapshot, rateIn, rateOut);
  drawGraph(snapshot);
  drawOperators(snapshot);
  drawTasks(snapshot);
  const earlier = Math.max(0, swaps.length - SWAPS_SHOWN);
  document.getElementById('swaps-earlier').textContent = earlier
    ? `the newest ${SWAPS_SHOWN} of ${swaps.length} kept; GET /pipelines/${state.pipeline}/swaps lists them all` : '';
  fillTable('swaps', swaps.slice(earlier).reverse().map((swap) => [
    time(swap.at_unix_ms), swap.operator, element('td', {}, element('code', {}, shortDigest(swap.old_digest))),
    element('td', {}, element('code', {}, shortDigest(swap.new_digest))),
    swap.refused ? cell(`refused: ${swap.refused}`, 'reason refused')
      : cell(swap.state_discarded ? 'swapped, state discarded' : 'swapped', 'swapped'), cell(`${swap.stall_ms.toFixed(1)} ms`, 'num'),
  ]));
  fillTable('dead-letters', deadLetters.slice().reverse().slice(0, 15).map((letter) => [
    time(letter.at_unix_ms), letter.node, letter.class, cell(letter.reason, 'reason'), cell(letter.record.slice(0, 300), 'record'),
  ]));
  drawResults(results);
  const chartSeries = (pick) => {
    const series = {};
    for (const point of state.history) for (const [name, value] of Object.entries(pick(point))) if (value != null) (series[name] = series[name] || []).push([point.at, value]);
    return series;
  };
  drawChart(document.getElementById('chart-rates'), chartSeries((point) => ({ 'sources (in)': point.rateIn, 'sinks (written)': point.rateOut })), rate);
  drawChart(document.getElementById('chart-latency'), chartSeries((point) => point.p99), seconds);
}

function remember(snapshot, rateIn, rateOut) {
  const p99 = Object.fromEntries(Object.entries(snapshot.operators).map(([name, operator]) => [name, operator.p99]));
  state.history.push({ at: snapshot.at, rateIn, rateOut, p99 });
  while (state.history.length && state.history[0].at < snapshot.at - HISTORY_MS) state.history.shift();
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text != null) node.textContent = text;
  return node;
}

// Columns by longest distance from a source; rows in order within a column.
function layout(graph) {
  const depth = {};
  const inputs = {};
  for (const edge of graph.edges) {
    const to = nodeId({ kind: edge.to_kind, name: edge.to });
    (inputs[to] = inputs[to] || []).push(nodeId({ kind: edge.from_kind, name: edge.from }));
  }
  const depthOf = (name, seen = new Set()) => {
    if (depth[name] != null) return depth[name];
    if (seen.has(name)) return 0;
    seen.add(name);
    const from = inputs[name] || [];
    depth[name] = from.length ? 1 + Math.max(...from.map((input) => depthOf(input, seen))) : 0;
    return depth[name];
  };
  const columns = [];
  for (const node of graph.nodes) {
    const column = depthOf(nodeId(node));
    (columns[column] = columns[column] || []).push(node);
  }
  const place = {};
  columns.forEach((nodes, column) => nodes.forEach((node, row) => { place[nodeId(node)] = { x: 20 + column * 210, y: 20 + row * 90 }; }));
  const rows = Math.max(...columns.map((nodes) => nodes.length));
  // Room below the last row for edges that skip columns, which dip under the nodes they pass.
  return { place, width: 40 + columns.length * 210, height: 40 + rows * 90 + 20 };
}

// An edge from the right of one node to the left of another. One that skips columns would run
// through the nodes between at its height (a join's input looked like its neighbour's): it dips
// below the lower of its two ends, into the gap under that row, and its label sits there.
function edgePath(from, to) {
  const [x1, y1, x2, y2] = [from.x + 170, from.y + 30, to.x, to.y + 30];
  if (to.x - from.x <= 210) {
    return { skip: false, d: `M${x1},${y1} C${x1 + 30},${y1} ${x2 - 30},${y2} ${x2},${y2}`, label: [(x1 + x2) / 2, (y1 + y2) / 2 - 4] };
  }
  const dip = Math.max(from.y, to.y) + 60 + 36;
  return { skip: true, d: `M${x1},${y1} C${x1 + 40},${dip} ${x2 - 40},${dip} ${x2},${y2}`, label: [(x1 + x2) / 2, dip - 10] };
}

function drawGraph(snapshot) {
  const graph = document.getElementById('graph');
  const { place, width, height } = layout(state.graph);
  graph.setAttribute('viewBox', `0 0 ${width} ${height}`);
  // A long chain keeps its size (the section scrolls) rather than shrinking out of reading.
  graph.style.minWidth = `${width}px`;
  graph.setAttribute('height', height);
  const defs = svg('defs');
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto' });
  marker.append(svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#8a93a6' }));
  defs.append(marker);
  const children = [defs];
  for (const edge of state.graph.edges) {
    const from = place[nodeId({ kind: edge.from_kind, name: edge.from })], to = place[nodeId({ kind: edge.to_kind, name: edge.to })];
    if (!from || !to) continue;
    const path = edgePath(from, to);
    children.push(svg('path', { class: path.skip ? 'edge skip' : 'edge', d: path.d, 'data-from': edge.from, 'data-to': edge.to }));
    if (edge.output) children.push(svg('text', { class: 'edge-label', x: path.label[0], y: path.label[1] }, edge.output));
  }
  for (const node of state.graph.nodes) {
    const measured = snapshot.nodes[nodeId(node)];
    const at = place[nodeId(node)];
    const blocked = measured.blockedShare;
    const health = blocked == null || node.kind === 'sink' ? '' : blocked > 0.5 ? 'bad' : blocked > 0.1 ? 'warn' : 'ok';
    const records = node.kind === 'sink' ? measured.recordsIn : measured.recordsOut;
    const shown = node.kind === 'sink' ? measured.rateIn : measured.rateOut;
    const group = svg('g', {
      class: `node ${node.kind} ${health}`, 'data-node': node.name, 'data-records': records, 'data-dead-letters': measured.deadLetters,
      transform: `translate(${at.x},${at.y})`,
    });
    group.append(svg('rect', { width: 170, height: 60, rx: 6 }));
    const title = svg('text', { class: 'title', x: 10, y: 18 }, cut(node.name, measured.deadLetters > 0 ? TITLE_CHARS - 9 : TITLE_CHARS));
    group.append(svg('title', {}, `${node.kind} ${node.name}`), title);
    group.append(svg('text', { class: 'rate', x: 10, y: 35 }, `${rate(shown)} rec/s · ${records.toLocaleString('en')}`));
    const load = blocked == null || node.kind === 'sink' ? node.kind : `busy ${percent(measured.busyShare || 0)} · blocked ${percent(blocked)}`;
    group.append(svg('text', { x: 10, y: 51, fill: '#6b7385' }, load));
    if (measured.deadLetters > 0) {
      group.append(svg('text', { class: 'dead', x: 160, y: 18, 'text-anchor': 'end' }, `${measured.deadLetters.toLocaleString('en')} dead`));
    }
    children.push(group);
  }
  graph.replaceChildren(...children);
}

function drawOperators(snapshot) {
  fillTable('operators', Object.entries(snapshot.operators).map(([name, operator]) => {
    const measured = snapshot.nodes[nodeId({ kind: 'operator', name })];
    return [
      cell(name), element('td', {}, element('code', {}, shortDigest(operator.digest))),
      cell(rate(measured.rateIn), 'num'), cell(rate(measured.rateOut), 'num'), cell(seconds(operator.p50), 'num'),
      cell(seconds(operator.p99), 'num'), cell(seconds(operator.perRecord), 'num'), cell(bytes(operator.memory), 'num'),
      cell(operator.restarts, 'num'), operator.open ? cell('open', 'refused') : cell('closed'), cell(operator.deadLetters || '–'),
    ];
  }));
}

function drawTasks(snapshot) {
  fillTable('watermarks', snapshot.taskRows.map((row) => [
    row.task, row.watermark == null ? '–' : time(row.watermark), cell(row.watermark == null ? '–' : span(Math.max(0, snapshot.at - row.watermark) / 1000), 'num'),
    cell(row.busyShare == null ? '–' : percent(row.busyShare), 'num'), cell(row.blockedShare == null ? '–' : percent(row.blockedShare), 'num'),
  ]));
  fillTable('checkpoints', snapshot.taskRows.filter((row) => row.ok + row.failed > 0).map((row) => [
    row.task, cell(row.ok, 'num'), cell(row.failed, 'num'), cell(seconds(row.checkpointCount ? row.checkpointSum / row.checkpointCount : null), 'num'),
    cell(bytes(row.stateBytes), 'num'),
  ]));
}

// A console sink's board: the latest rows as a table, and `y` over `x` per `series`.
function drawResults(boards) {
  document.getElementById('results-section').hidden = boards.length === 0;
  const container = document.getElementById('results');
  container.replaceChildren(...boards.map((board) => {
    // Records that are JSON objects fill the columns; any other record (an array, a number,
    // text) is shown whole in a column of its own. Fields are read as the record's own (a
    // field named `__proto__` or `toString` is data, not the object's machinery).
    const isRecord = (row) => row !== null && typeof row === 'object' && !Array.isArray(row);
    const field = (row, column) => (isRecord(row) && Object.hasOwn(row, column) ? row[column] : undefined);
    const rows = board.rows.filter(isRecord);
    const others = board.rows.some((row) => !isRecord(row));
    const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
    const sample = rows[rows.length - 1] || {};
    const x = board.chart.x || (columns.includes('window_start') ? 'window_start' : null);
    const y = board.chart.y || columns.find((column) => column !== x && !/^window_/.test(column) && typeof field(sample, column) === 'number');
    const series = board.chart.series || columns.find((column) => typeof field(sample, column) === 'string');
    const canvas = element('canvas', { width: 900, height: 240 });
    const lines = new Map();
    rows.forEach((row, index) => {
      if (typeof field(row, y) !== 'number') return;
      const name = series ? String(field(row, series)) : y;
      if (!lines.has(name)) lines.set(name, []);
      lines.get(name).push([x ? field(row, x) : index, field(row, y)]);
    });
    for (const points of lines.values()) points.sort((a, b) => a[0] - b[0]);
    const headings = columns.map((column) => element('th', {}, column)).concat(others ? [element('th', {}, '(record)')] : []);
    const table = element('table', { class: 'results', 'data-sink': board.sink },
      element('thead', {}, element('tr', {}, ...headings)),
      element('tbody', {}, ...board.rows.slice(-20).reverse().map((row) => element('tr', {}, ...columns.map((column) => {
        const value = field(row, column);
        return cell(value === undefined ? '' : resultText(column, value), typeof value === 'number' ? 'num' : '');
      }).concat(others ? [cell(isRecord(row) ? '' : JSON.stringify(row))] : [])))));
    const heading = element('h3', {}, `${board.sink}: ${y || 'no numeric field'}${series ? ` by ${series}` : ''} (${board.total.toLocaleString('en')} records)`);
    const wrapper = element('div', { class: 'board' }, heading, canvas, element('div', { class: 'scroll' }, table));
    requestAnimationFrame(() => drawChart(canvas, Object.fromEntries(lines), (value) => (Math.abs(value) >= 1000 ? rate(value) : value.toFixed(2)), x === 'window_start' || x === 'window_end'));
    return wrapper;
  }));
}

// A result's value as a table shows it: window bounds as times, text without its quotes, whole
// numbers as they are, others without the noise of binary fractions (318.53999999999996 as
// 318.54: 15 significant digits, all a double holds for sure), and anything else as JSON.
function resultText(column, value) {
  if (/^window_(start|end)$/.test(column) && typeof value === 'number') return time(value);
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(15)));
  return JSON.stringify(value ?? null);
}

// Lines on a canvas: series name → [[x, y], ...]; x is a time in ms when `timeAxis`.
function drawChart(canvas, series, format, timeAxis = true) {
  const context = canvas.getContext('2d');
  const { width, height } = canvas;
  const [left, right, top, bottom] = [64, 150, 10, 24];
  context.clearRect(0, 0, width, height);
  const points = Object.values(series).flat();
  context.font = '12px system-ui, sans-serif';
  if (points.length === 0) {
    context.fillStyle = '#6b7385';
    context.fillText('waiting for data…', left, height / 2);
    return;
  }
  // reduce, not Math.min(...array): engines limit the number of arguments.
  const least = (values) => values.reduce((a, b) => Math.min(a, b), Infinity);
  const most = (values) => values.reduce((a, b) => Math.max(a, b), -Infinity);
  const xs = points.map((point) => point[0]), ys = points.map((point) => point[1]);
  const [xMin, xMax] = [least(xs), most(xs)];
  const yMax = Math.max(most(ys), 0) * 1.1 || 1, yMin = Math.min(0, least(ys));
  const px = (x) => left + (xMax === xMin ? 0.5 : (x - xMin) / (xMax - xMin)) * (width - left - right);
  const py = (y) => height - bottom - ((y - yMin) / (yMax - yMin)) * (height - top - bottom);
  context.strokeStyle = '#d9dde6';
  context.fillStyle = '#6b7385';
  for (let step = 0; step <= 4; step++) {
    const y = yMin + ((yMax - yMin) * step) / 4;
    context.beginPath();
    context.moveTo(left, py(y));
    context.lineTo(width - right, py(y));
    context.stroke();
    context.fillText(format(y), 4, py(y) + 4);
  }
  const label = (x) => (timeAxis ? time(x).slice(11, 19) : String(x));
  context.fillText(label(xMin), left, height - 6);
  context.fillText(label(xMax), width - right - 56, height - 6);
  const entries = Object.entries(series);
  // As many names as the legend's height holds; the last line says how many more there are.
  const fit = Math.max(1, Math.floor((height - top - bottom) / 16));
  const named = entries.length > fit ? fit - 1 : entries.length;
  entries.forEach(([name, line], index) => {
    const colour = COLOURS[index % COLOURS.length];
    context.strokeStyle = colour;
    context.lineWidth = 2;
    context.beginPath();
    line.forEach(([x, y], at) => (at ? context.lineTo(px(x), py(y)) : context.moveTo(px(x), py(y))));
    context.stroke();
    context.fillStyle = colour;
    if (index < named) context.fillText(cut(name, 20), width - right + 8, top + 14 + index * 16);
  });
  if (named < entries.length) {
    context.fillStyle = '#6b7385';
    context.fillText(`+${entries.length - named} more`, width - right + 8, top + 14 + named * 16);
  }
}

// One poll after the other: a slow answer never overlaps the next poll.
async function loop() {
  await poll();
  setTimeout(loop, POLL_MS);
}
loop();
