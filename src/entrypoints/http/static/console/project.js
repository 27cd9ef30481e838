// One project: its dashboard, live view, events, API keys and settings.

import { api, ingestCommand, url } from './api.js';
import { attempt, canManage, context, onLeave } from './app.js';
import {
  confirmDialog, copyButton, errorLine, field, formatNumber, formatTime, h, replace,
} from './dom.js';

const RANGES = { '24h': ['Last 24 hours', 24 * 3600], '7d': ['Last 7 days', 7 * 86400], '30d': ['Last 30 days', 30 * 86400] };
const STEP = { minute: 60, hour: 3600, day: 86400 };

export async function projectView(projectId, tab = 'overview') {
  const session = context.session;
  const manager = canManage(session);
  const { projects } = await api('GET', '/v1/projects');
  const project = projects.find((p) => p.id === projectId);
  if (!project) {
    return h('section', {}, h('h1', {}, 'Project not found'),
      h('p', {}, 'This workspace has no such project. ', h('a', { href: '/projects' }, 'See its projects')));
  }
  const base = `/projects/${encodeURIComponent(project.id)}`;
  const tabs = [['overview', 'Dashboard'], ['live', 'Live'], ['events', 'Events']];
  if (manager) tabs.push(['keys', 'API keys'], ['settings', 'Settings']);
  if (!tabs.some(([name]) => name === tab)) {
    return h('section', {}, h('h1', {}, project.name), h('p', {}, 'Your role does not give access to this page.'));
  }
  const views = { overview: dashboard, live: liveView, events: eventsView, keys: keysView, settings: settingsView };
  const body = await views[tab](project, session);
  return h('section', {},
    h('h1', {}, project.name),
    h('nav', { class: 'tabs', 'aria-label': 'Project' }, tabs.map(([name, label]) =>
      h('a', { href: `${base}/${name}`, 'aria-current': name === tab ? 'page' : null }, label))),
    body);
}

function sendFirstEvent(project, manager) {
  return h('div', { class: 'empty' },
    h('p', {}, 'No events yet in this range.'),
    manager
      ? h('p', {}, 'Create an API key in ', h('a', { href: `/projects/${encodeURIComponent(project.id)}/keys` }, 'API keys'),
        ' and send an event with it:')
      : h('p', {}, 'An owner or admin can create an API key to send events with:'),
    h('code', { class: 'block' }, ingestCommand('<your API key>')));
}

function select(label, options, value) {
  const el = h('select', {}, options.map(([v, text]) => h('option', { value: v }, text)));
  el.value = value;
  return [el, field(label, el)];
}

// --- Dashboard -------------------------------------------------------------------------------

async function dashboard(project, session) {
  const [range, rangeField] = select('Range', Object.entries(RANGES).map(([k, [label]]) => [k, label]), '24h');
  const [granularity, granularityField] = select('Granularity', [['minute', 'Minute'], ['hour', 'Hour'], ['day', 'Day']], 'hour');
  const [eventType, typeField] = select('Event type', [['', 'All event types']], '');
  const summary = h('p', { class: 'summary', 'aria-live': 'polite' });
  const chart = h('div', { class: 'chart', role: 'img', 'aria-label': 'Events over time' });
  const types = h('div');
  const users = h('div');
  const breakdown = h('div');
  const empty = h('div');
  const controls = h('form', { class: 'controls' }, rangeField, granularityField, typeField);
  let plot = null;
  const resize = new ResizeObserver(() => {
    if (plot) plot.setSize({ width: chart.clientWidth, height: 260 });
  });
  resize.observe(chart);
  onLeave(() => { resize.disconnect(); if (plot) plot.destroy(); });

  const dimensions = await attempt(null, () => api('GET', `/v1/projects/${encodeURIComponent(project.id)}/dimensions`));
  const [property, propertyField] = select('Dimension',
    ((dimensions && dimensions.properties) || []).map((p) => [p, p]), ((dimensions && dimensions.properties) || [''])[0]);

  const span = () => {
    const end = new Date();
    const start = new Date(end.getTime() - RANGES[range.value][1] * 1000);
    return { start: start.toISOString(), end: end.toISOString() };
  };

  const load = () => attempt(null, async () => {
    // Minute buckets only over a day (1,440 points); longer ranges by hour or day.
    const minute = granularity.querySelector('option[value=minute]');
    minute.disabled = range.value !== '24h';
    if (minute.disabled && granularity.value === 'minute') granularity.value = 'hour';
    const { start, end } = span();
    const query = { project_id: project.id, start, end };
    const [counts, typeList, unique] = await Promise.all([
      api('GET', '/v1/analytics/counts', { query: { ...query, granularity: granularity.value, event_type: eventType.value } }),
      api('GET', '/v1/analytics/event-types', { query }),
      api('GET', '/v1/analytics/users', {
        query: { ...query, granularity: granularity.value === 'day' ? 'day' : 'hour', event_type: eventType.value },
      }),
    ]);
    const chosen = eventType.value;
    replace(eventType, h('option', { value: '' }, 'All event types'),
      typeList.event_types.map((t) => h('option', { value: t.event_type }, t.event_type)));
    if (chosen && !typeList.event_types.some((t) => t.event_type === chosen)) {
      eventType.append(h('option', { value: chosen }, chosen));
    }
    eventType.value = chosen;
    summary.textContent = `${formatNumber(counts.total)} event${counts.total === 1 ? '' : 's'}`
      + `${chosen ? ` of type ${chosen}` : ''} from ${formatTime(counts.start)} to ${formatTime(counts.end)}.`;
    drawChart(counts);
    replace(empty, typeList.event_types.length === 0 ? sendFirstEvent(project, canManage(session)) : null);
    replace(types, h('h2', {}, 'Event types'), typeList.event_types.length === 0
      ? h('p', { class: 'muted' }, 'None in this range.')
      : h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Event type'), h('th', { scope: 'col', class: 'num' }, 'Events'))),
        h('tbody', {}, typeList.event_types.map((t) => h('tr', {}, h('td', {}, t.event_type), h('td', { class: 'num' }, formatNumber(t.count)))))));
    replace(users, h('h2', {}, 'Unique users'),
      h('p', { class: 'big' }, formatNumber(unique.total)),
      h('p', { class: 'muted' }, `Distinct persons (user_id, else anonymous_id) in this range; estimated within ${(unique.relative_error * 100).toFixed(1)} %.`));
    await loadBreakdown();
  });

  const loadBreakdown = async () => {
    const heading = h('h2', {}, 'Breakdown');
    if (!property.value) {
      replace(breakdown, heading, h('p', { class: 'muted' }, 'No dimension declared. ',
        canManage(session)
          ? ['Declare property paths such as ', h('code', {}, 'plan'), ' in ', h('a', { href: `/projects/${encodeURIComponent(project.id)}/settings` }, 'Settings'), ' to count events by their values.']
          : 'An owner or admin can declare one in the project settings.'));
      return;
    }
    const { start, end } = span();
    const answer = await api('GET', '/v1/analytics/breakdown', {
      query: { project_id: project.id, property: property.value, start, end, event_type: eventType.value },
    });
    replace(breakdown, heading, propertyField,
      h('p', { class: 'muted' }, 'Events and persons per value, over the whole UTC days of the range.'),
      answer.values.length === 0
      ? h('p', { class: 'muted' }, 'No values in this range.')
      : h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, property.value), h('th', { scope: 'col', class: 'num' }, 'Events'), h('th', { scope: 'col', class: 'num' }, 'Users'))),
        h('tbody', {}, answer.values.map((v) => h('tr', {}, h('td', {}, v.value === null ? '(none)' : String(v.value)),
          h('td', { class: 'num' }, formatNumber(v.count)), h('td', { class: 'num' }, formatNumber(v.users)))),
        answer.other.count ? h('tr', {}, h('td', {}, 'Other values'), h('td', { class: 'num' }, formatNumber(answer.other.count)), h('td', {})) : null)));
  };

  const drawChart = (counts) => {
    const step = STEP[counts.granularity];
    const first = Date.parse(counts.start) / 1000;
    const last = Date.parse(counts.end) / 1000;
    const byBucket = new Map();
    for (const point of counts.series) {
      const at = Date.parse(point.bucket) / 1000;
      byBucket.set(at, (byBucket.get(at) || 0) + point.count);
    }
    const xs = [];
    const ys = [];
    for (let at = first; at < last; at += step) {
      xs.push(at);
      ys.push(byBucket.get(at) || 0);
    }
    if (plot) plot.destroy();
    chart.replaceChildren();
    plot = new window.uPlot({
      width: chart.clientWidth || 600,
      height: 260,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      series: [{}, { label: 'Events', stroke: '#1f4e8c', fill: 'rgba(31, 78, 140, 0.12)', width: 2, points: { show: xs.length < 200 } }],
      axes: [{}, { label: 'events' }],
    }, [xs, ys], chart);
    chart.dataset.total = String(counts.total);
  };

  for (const control of [range, granularity, eventType]) control.addEventListener('change', load);
  property.addEventListener('change', () => attempt(null, loadBreakdown));
  controls.addEventListener('submit', (event) => event.preventDefault());
  const view = h('div', {}, controls, summary, empty, chart,
    h('div', { class: 'grid' }, h('div', { class: 'card' }, types), h('div', { class: 'card' }, users), h('div', { class: 'card' }, breakdown)));
  load();
  return view;
}

// --- Live view -------------------------------------------------------------------------------

const LIVE_KEPT = 200;

function eventRow(event) {
  return h('li', { class: 'event' },
    h('span', { class: 'type' }, event.type),
    h('time', { datetime: event.timestamp }, formatTime(event.timestamp)),
    h('span', { class: 'muted' }, event.user_id ? `user ${event.user_id}` : event.anonymous_id ? `anonymous ${event.anonymous_id}` : ''),
    h('code', { class: 'props' }, JSON.stringify(event.properties)));
}

function liveView(project) {
  const typeInput = h('input', { name: 'event_type', placeholder: 'all types' });
  const status = h('p', { class: 'muted', role: 'status' }, 'Connecting…');
  const dropped = h('p', { class: 'warning', role: 'status', hidden: true });
  const list = h('ul', { class: 'live', 'aria-live': 'polite', 'aria-label': 'Arriving events' });
  const pause = h('button', { type: 'button' }, 'Pause');
  let paused = false;
  let held = [];
  let source = null;
  let droppedTotal = 0;

  const show = (events) => {
    for (const event of events) list.prepend(eventRow(event));
    while (list.children.length > LIVE_KEPT) list.lastElementChild.remove();
  };
  const connect = () => {
    if (source) source.close();
    status.textContent = 'Connecting…';
    source = new EventSource(url('/v1/events/live', { project_id: project.id, event_type: typeInput.value.trim() }));
    source.addEventListener('open', () => { status.textContent = paused ? 'Paused: new events are held.' : 'Live: new events appear at the top.'; });
    source.addEventListener('event', (message) => {
      const event = JSON.parse(message.data);
      if (paused) {
        held.push(event);
        status.textContent = `Paused: ${held.length} new event${held.length === 1 ? '' : 's'} held.`;
      } else {
        show([event]);
      }
    });
    source.addEventListener('dropped', (message) => {
      droppedTotal += JSON.parse(message.data).dropped;
      dropped.hidden = false;
      dropped.textContent = `${formatNumber(droppedTotal)} event${droppedTotal === 1 ? ' was' : 's were'} not shown: they arrived faster than this page could take them. The events list has them all.`;
    });
    source.addEventListener('error', (message) => {
      // The server's own `event: error` (the right to read the project ended) carries the
      // API error; the browser's (connection lost) carries nothing and reconnects by itself.
      if (message.data) {
        source.close();
        const error = JSON.parse(message.data).error;
        status.textContent = `The live stream ended: ${error.message} (${error.code})`;
        return;
      }
      status.textContent = source.readyState === EventSource.CLOSED
        ? 'The live stream stopped. Reload the page to try again.'
        : 'Reconnecting…';
    });
  };
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    if (!paused) {
      show(held);
      held = [];
      status.textContent = 'Live: new events appear at the top.';
    } else {
      status.textContent = 'Paused: new events are held.';
    }
  });
  pause.setAttribute('aria-pressed', 'false');
  const filter = h('form', { class: 'controls' }, field('Event type', typeInput), h('button', { type: 'submit' }, 'Apply filter'), pause);
  filter.addEventListener('submit', (event) => {
    event.preventDefault();
    list.replaceChildren();
    connect();
  });
  onLeave(() => { if (source) source.close(); });
  connect();
  return h('div', {}, h('h2', {}, 'Live events'), filter, status, dropped, list,
    h('p', { class: 'muted' }, 'Events appear here within a second of being stored. The newest ', String(LIVE_KEPT), ' are kept on the page.'));
}

// --- Events list -----------------------------------------------------------------------------

function eventsView(project, session) {
  const typeInput = h('input', { name: 'event_type', placeholder: 'all types' });
  const error = errorLine();
  const body = h('tbody');
  const table = h('table', {}, h('caption', { class: 'visually-hidden' }, 'Stored events, newest first'),
    h('thead', {}, h('tr', {}, ['Time', 'Type', 'Id', 'Person', 'Properties'].map((t) => h('th', { scope: 'col' }, t)))), body);
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  const empty = h('div');
  let cursor = null;

  const page = () => attempt(error, async () => {
    const answer = await api('GET', '/v1/events', {
      query: { project_id: project.id, event_type: typeInput.value.trim(), limit: 50, cursor },
    });
    for (const event of answer.events) {
      body.append(h('tr', {},
        h('td', {}, h('time', { datetime: event.timestamp }, formatTime(event.timestamp))),
        h('td', {}, event.type),
        h('td', {}, h('code', {}, event.id)),
        h('td', {}, event.user_id || event.anonymous_id || ''),
        h('td', {}, h('code', { class: 'props' }, JSON.stringify(event.properties)))));
    }
    cursor = answer.next_cursor;
    more.hidden = !cursor;
    replace(empty, body.children.length === 0 ? (typeInput.value.trim()
      ? h('p', { class: 'muted' }, 'No events of this type.')
      : sendFirstEvent(project, canManage(session))) : null);
  });
  more.addEventListener('click', page);
  const filter = h('form', { class: 'controls' }, field('Event type', typeInput), h('button', { type: 'submit' }, 'Apply filter'));
  filter.addEventListener('submit', (event) => {
    event.preventDefault();
    body.replaceChildren();
    cursor = null;
    page();
  });
  page();
  return h('div', {}, h('h2', {}, 'Events'), filter, error, empty, h('div', { class: 'scroll' }, table), more);
}

// --- API keys --------------------------------------------------------------------------------

async function keysView(project) {
  const list = h('div');
  const created = h('div', { 'aria-live': 'polite' });
  const refresh = async () => {
    const { api_keys: keys } = await api('GET', `/v1/projects/${encodeURIComponent(project.id)}/api-keys`);
    replace(list, keys.length === 0
      ? h('div', { class: 'empty' }, h('p', {}, 'No API key yet. Create one to send events to this project.'))
      : h('table', {}, h('caption', { class: 'visually-hidden' }, 'API keys of this project'),
        h('thead', {}, h('tr', {}, ['Name', 'Prefix', 'Created', 'Status', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, keys.map((k) => h('tr', {},
          h('td', {}, k.name), h('td', {}, h('code', {}, `${k.prefix}…`)), h('td', {}, formatTime(k.created_at)),
          h('td', {}, k.revoked_at ? `revoked ${formatTime(k.revoked_at)}` : 'active'),
          h('td', {}, k.revoked_at ? null : h('button', {
            type: 'button',
            class: 'danger small',
            'aria-label': `Revoke key ${k.name}`,
            onclick: async () => {
              if (!await confirmDialog(`Revoke the key “${k.name}”? Events sent with it are refused from now on.`, 'Revoke key')) return;
              await attempt(null, async () => {
                await api('DELETE', `/v1/api-keys/${encodeURIComponent(k.id)}`);
                await refresh();
              });
            },
          }, 'Revoke')))))));
  };
  await attempt(null, refresh);
  const error = errorLine();
  const name = h('input', { name: 'name', required: true, maxlength: 200 });
  const form = h('form', { class: 'card inline' }, h('h2', {}, 'Create an API key'),
    field('Key name', name, 'Where it will be used, e.g. “website”.'), h('button', { type: 'submit', class: 'primary' }, 'Create key'), error);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    attempt(error, async () => {
      const key = await api('POST', `/v1/projects/${encodeURIComponent(project.id)}/api-keys`, { body: { name: name.value } });
      name.value = '';
      const command = ingestCommand(key.key);
      replace(created, h('div', { class: 'secret' },
        h('h3', {}, `Key “${key.name}” created`),
        h('p', {}, 'Copy it now: it is shown this once and cannot be read again.'),
        h('p', {}, h('code', { class: 'block', 'aria-label': 'New API key' }, key.key), copyButton(key.key, 'Copy key')),
        h('p', {}, 'Send an event with it:'),
        h('p', {}, h('code', { class: 'block' }, command), copyButton(command, 'Copy command'))));
      await refresh();
    });
  });
  return h('div', {}, h('h2', {}, 'API keys'), created, list, form);
}

// --- Settings --------------------------------------------------------------------------------

async function settingsView(project) {
  const id = encodeURIComponent(project.id);
  // Retention.
  const retentionError = errorLine();
  const retentionDone = h('p', { role: 'status' });
  const days = h('input', { name: 'retention_days', type: 'number', min: 1, max: 3650, value: project.retention_days === null ? '' : String(project.retention_days) });
  const retention = h('form', { class: 'card' }, h('h2', {}, 'Retention'),
    field('Keep events for (days)', days, 'From 1 to 3,650; empty keeps them for ever. Older events are removed within the hour.'),
    h('button', { type: 'submit', class: 'primary' }, 'Save retention'), retentionError, retentionDone);
  retention.addEventListener('submit', (event) => {
    event.preventDefault();
    retentionDone.textContent = '';
    attempt(retentionError, async () => {
      const value = days.value.trim() === '' ? null : Number(days.value);
      const changed = await api('PATCH', `/v1/projects/${id}`, { body: { retention_days: value } });
      retentionDone.textContent = changed.retention_days === null ? 'Saved: events are kept for ever.' : `Saved: events are kept ${changed.retention_days} days.`;
    });
  });

  // Dimensions.
  const dimensionsError = errorLine();
  const dimensionsDone = h('p', { role: 'status' });
  const declared = await attempt(null, () => api('GET', `/v1/projects/${id}/dimensions`));
  const paths = h('textarea', { name: 'properties', rows: 4 });
  paths.value = ((declared && declared.properties) || []).join('\n');
  const dimensions = h('form', { class: 'card' }, h('h2', {}, 'Dimensions'),
    field('Property paths, one a line', paths, 'Up to 10, e.g. plan or device.os: the dashboard breaks events down by their values.'),
    h('button', { type: 'submit', class: 'primary' }, 'Save dimensions'), dimensionsError, dimensionsDone);
  dimensions.addEventListener('submit', (event) => {
    event.preventDefault();
    dimensionsDone.textContent = '';
    attempt(dimensionsError, async () => {
      const properties = paths.value.split('\n').map((p) => p.trim()).filter(Boolean);
      const answer = await api('PUT', `/v1/projects/${id}/dimensions`, { body: { properties } });
      paths.value = answer.properties.join('\n');
      dimensionsDone.textContent = `Saved: ${answer.properties.length} dimension${answer.properties.length === 1 ? '' : 's'}.`;
    });
  });

  // Deletions.
  const deletionsList = h('div');
  const refreshDeletions = async () => {
    const { deletions } = await api('GET', '/v1/deletions', { query: { project_id: project.id } });
    replace(deletionsList, deletions.length === 0 ? h('p', { class: 'muted' }, 'No deletion requested yet.')
      : h('table', {}, h('thead', {}, h('tr', {}, ['Requested', 'Status', 'Events deleted', 'Criteria'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, deletions.map((d) => h('tr', {}, h('td', {}, formatTime(d.requested_at)), h('td', {}, d.status, d.error ? ` (${d.error})` : ''),
          h('td', { class: 'num' }, formatNumber(d.events_deleted)),
          h('td', {}, h('code', { class: 'props' }, JSON.stringify({ user_ids: d.user_ids, event_ids: d.event_ids, start: d.start, end: d.end, suppress: d.suppress }))))))));
  };
  await attempt(null, refreshDeletions);
  const deletionError = errorLine();
  const userIds = h('input', { name: 'user_ids' });
  const eventIds = h('input', { name: 'event_ids' });
  const start = h('input', { name: 'start', type: 'datetime-local' });
  const end = h('input', { name: 'end', type: 'datetime-local' });
  const suppress = h('input', { name: 'suppress', type: 'checkbox' });
  const split = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);
  const deletion = h('form', { class: 'card' }, h('h2', {}, 'Delete events'),
    h('p', { class: 'muted' }, 'Deletes the stored events that match every criterion given, and corrects every count.'),
    field('Person ids (user_id), comma-separated', userIds), field('Event ids, comma-separated', eventIds),
    field('From (your local time)', start), field('Until (your local time)', end),
    h('div', { class: 'field check' }, suppress, h('label', { for: (suppress.id = 'suppress-persons') }, 'Also refuse these persons’ future events')),
    h('button', { type: 'submit', class: 'danger' }, 'Delete matching events'), deletionError);
  deletion.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { project_id: project.id };
    if (userIds.value.trim()) body.user_ids = split(userIds.value);
    if (eventIds.value.trim()) body.event_ids = split(eventIds.value);
    if (start.value) body.start = new Date(start.value).toISOString();
    if (end.value) body.end = new Date(end.value).toISOString();
    if (suppress.checked) body.suppress = true;
    if (!await confirmDialog('Delete every stored event of this project that matches? This cannot be undone.', 'Delete events')) return;
    await attempt(deletionError, async () => {
      await api('POST', '/v1/deletions', { body });
      deletion.reset();
      await refreshDeletions();
    });
  });
  return h('div', { class: 'settings' }, retention, dimensions, deletion,
    h('div', { class: 'card' }, h('h2', {}, 'Deletion requests'), deletionsList,
      h('button', { type: 'button', onclick: () => attempt(null, refreshDeletions) }, 'Refresh')));
}

