// The console: one page whose script shows each view by its path (deep links work: the server
// answers every console path with this page).

import { api, ApiError } from './api.js';
import { confirmDialog, copyButton, errorLine, field, formatTime, h, replace } from './dom.js';
import { projectView } from './project.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const account = document.getElementById('account');
const notice = document.getElementById('notice');

const state = { session: null, leaving: [], renders: 0 };

export const ROLES = ['owner', 'admin', 'viewer'];

export function canManage(session) {
  return session.role === 'owner' || session.role === 'admin';
}

/** Shows an API error (or any error) where everyone sees it, read out by screen readers. */
export function showError(error) {
  notice.hidden = false;
  replace(notice, h('strong', {}, 'Error: '), error.message || String(error),
    error.code ? [' ', h('code', { class: 'code' }, error.code)] : null,
    h('button', { type: 'button', class: 'small', onclick: clearNotice }, 'Dismiss'));
}

function clearNotice() {
  notice.hidden = true;
  notice.replaceChildren();
}

/** Runs `work`, showing its error in `line` (a form's error line) rather than failing. */
export async function attempt(line, work) {
  if (line) line.textContent = '';
  try {
    return await work();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && state.session) {
      state.session = null;
      navigate('/login');
      showError(error);
      return undefined;
    }
    if (line) {
      replace(line, error.message, error.code ? [' ', h('code', { class: 'code' }, error.code)] : null);
    } else {
      showError(error);
    }
    return undefined;
  }
}

export function onLeave(callback) {
  state.leaving.push(callback);
}

export function navigate(path, { replaceState = false } = {}) {
  if (replaceState) window.history.replaceState({}, '', path);
  else window.history.pushState({}, '', path);
  render();
}

function link(path, text, props = {}) {
  return h('a', { href: path, ...props }, text);
}

async function loadSession() {
  try {
    state.session = await api('GET', '/v1/auth/session');
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) showError(error);
    state.session = null;
  }
}

function renderHeader() {
  const session = state.session;
  replace(nav);
  replace(account);
  if (!session) {
    replace(nav, link('/login', 'Log in'), link('/signup', 'Sign up'));
    return;
  }
  replace(nav, link('/projects', 'Projects'), link('/members', 'Members'));
  const here = window.location.pathname;
  for (const a of nav.querySelectorAll('a')) {
    if (here.startsWith(a.getAttribute('href'))) a.setAttribute('aria-current', 'page');
  }
  if (session.workspaces.length > 1) {
    const select = h('select', {}, session.workspaces.map((w) =>
      h('option', { value: w.workspace_id, selected: w.workspace_id === session.workspace_id },
        `${w.name} (${w.role})`)));
    select.value = session.workspace_id;
    select.addEventListener('change', () => attempt(null, async () => {
      state.session = await api('POST', '/v1/auth/session/workspace',
        { body: { workspace_id: select.value } });
      navigate('/projects');
    }));
    account.append(field('Workspace', select));
  } else {
    const only = session.workspaces[0];
    account.append(h('span', { class: 'muted' }, only ? `${only.name} · ${session.role}` : session.role));
  }
  account.append(h('button', {
    type: 'button',
    onclick: () => attempt(null, async () => {
      await api('DELETE', '/v1/auth/session');
      state.session = null;
      navigate('/login');
    }),
  }, 'Log out'));
}

// --- Sign up and log in -------------------------------------------------------------------

function authForm({ title, fields, submit, footer, onSubmit }) {
  const error = errorLine();
  const form = h('form', { class: 'card narrow' }, h('h1', {}, title), fields, error,
    h('button', { type: 'submit', class: 'primary' }, submit), footer);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    attempt(error, async () => {
      await onSubmit(new FormData(form));
      await loadSession();
      const after = new URLSearchParams(window.location.search).get('next');
      navigate(after && after.startsWith('/') && !after.startsWith('//') ? after : '/projects');
    });
  });
  return form;
}

function credentials(data) {
  return { email: data.get('email'), password: data.get('password') };
}

function emailInput() {
  return h('input', { name: 'email', type: 'email', autocomplete: 'email', required: true });
}

function loginView() {
  return authForm({
    title: 'Log in',
    fields: [
      field('Email', emailInput()),
      field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    ],
    submit: 'Log in',
    footer: h('p', {}, 'No account yet? ', link(`/signup${window.location.search}`, 'Sign up')),
    onSubmit: (data) => api('POST', '/v1/auth/session', { body: credentials(data) }),
  });
}

function signupView() {
  return authForm({
    title: 'Sign up',
    fields: [
      field('Email', emailInput()),
      field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 }),
        'Long and hard to guess: a few unrelated words work well.'),
      field('Workspace name', h('input', { name: 'workspace', required: true, autocomplete: 'organization' }),
        'Your team or company; you will own this workspace.'),
    ],
    submit: 'Create account',
    footer: h('p', {}, 'Already have an account? ', link(`/login${window.location.search}`, 'Log in')),
    onSubmit: async (data) => {
      await api('POST', '/v1/auth/signup', { body: { ...credentials(data), workspace: data.get('workspace') } });
      await api('POST', '/v1/auth/session', { body: credentials(data) });
    },
  });
}

// --- Projects ------------------------------------------------------------------------------

async function projectsView() {
  const session = state.session;
  const list = h('div');
  const section = h('section', {}, h('h1', {}, 'Projects'), list);
  const refresh = async () => {
    const { projects } = await api('GET', '/v1/projects');
    if (projects.length === 0) {
      replace(list, h('div', { class: 'empty' },
        h('p', {}, 'No project yet. A project holds the events of one site or app.'),
        canManage(session)
          ? h('p', {}, 'Create one below, then create an API key for it to send events.')
          : h('p', {}, 'Ask an owner or admin of this workspace to create one.')));
      return;
    }
    replace(list, h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Projects of this workspace'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Created'),
        h('th', { scope: 'col' }, 'Retention'), canManage(session) ? h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')) : null)),
      h('tbody', {}, projects.map((p) => h('tr', {},
        h('td', {}, link(`/projects/${encodeURIComponent(p.id)}`, p.name)),
        h('td', {}, formatTime(p.created_at)),
        h('td', {}, p.retention_days === null ? 'for ever' : `${p.retention_days} days`),
        canManage(session) ? h('td', {}, h('button', {
          type: 'button',
          class: 'danger small',
          'aria-label': `Delete project ${p.name}`,
          onclick: async () => {
            if (!await confirmDialog(`Delete the project “${p.name}”? Its API keys stop working and its events can no longer be read.`, 'Delete project')) return;
            await attempt(null, async () => {
              await api('DELETE', `/v1/projects/${encodeURIComponent(p.id)}`);
              await refresh();
            });
          },
        }, 'Delete')) : null)))));
  };
  await attempt(null, refresh);
  if (canManage(session)) {
    const error = errorLine();
    const name = h('input', { name: 'name', required: true, maxlength: 200 });
    const form = h('form', { class: 'card inline' }, h('h2', {}, 'Create a project'),
      field('Project name', name), h('button', { type: 'submit', class: 'primary' }, 'Create project'), error);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      attempt(error, async () => {
        const project = await api('POST', '/v1/projects', { body: { name: name.value } });
        navigate(`/projects/${encodeURIComponent(project.id)}/keys`);
      });
    });
    section.append(form);
  }
  return section;
}

// --- Members and invitations -----------------------------------------------------------------

async function membersView() {
  const session = state.session;
  const owner = session.role === 'owner';
  const list = h('div');
  const section = h('section', {}, h('h1', {}, 'Members'), list);
  const refresh = async () => {
    const { members } = await api('GET', '/v1/members');
    replace(list, h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Members of this workspace'),
      h('thead', {}, h('tr', {}, ['Email', 'Role', 'Joined', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, members.map((m) => {
        const self = m.user_id === session.user_id;
        let role = m.role;
        if (owner) {
          const select = h('select', { 'aria-label': `Role of ${m.email}` },
            ROLES.map((r) => h('option', { value: r, selected: r === m.role }, r)));
          select.value = m.role;
          select.addEventListener('change', async () => {
            await attempt(null, () => api('PATCH', `/v1/members/${encodeURIComponent(m.user_id)}`, { body: { role: select.value } }));
            // Refused (the last owner, say) or not, the list shows the roles as they are.
            await attempt(null, refresh);
          });
          role = select;
        }
        const remove = owner || self ? h('button', {
          type: 'button',
          class: 'danger small',
          onclick: async () => {
            const question = self ? 'Leave this workspace? You lose access to its projects.' : `Remove ${m.email} from this workspace?`;
            if (!await confirmDialog(question, self ? 'Leave' : 'Remove')) return;
            await attempt(null, async () => {
              await api('DELETE', `/v1/members/${encodeURIComponent(m.user_id)}`);
              if (self) {
                await loadSession();
                navigate(state.session ? '/projects' : '/login');
              } else {
                await refresh();
              }
            });
          },
        }, self ? 'Leave' : 'Remove') : null;
        return h('tr', {}, h('td', {}, m.email, self ? ' (you)' : ''), h('td', {}, role),
          h('td', {}, formatTime(m.joined_at)), h('td', {}, remove));
      }))));
  };
  await attempt(null, refresh);
  if (owner) {
    const error = errorLine();
    const result = h('div', { 'aria-live': 'polite' });
    const email = h('input', { name: 'email', type: 'email', required: true });
    const role = h('select', { name: 'role' }, ROLES.map((r) => h('option', { value: r, selected: r === 'viewer' }, r)));
    const form = h('form', { class: 'card inline' }, h('h2', {}, 'Invite someone'),
      field('Email', email), field('Role', role),
      h('button', { type: 'submit', class: 'primary' }, 'Create invitation'), error, result);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      attempt(error, async () => {
        const invitation = await api('POST', '/v1/members', { body: { email: email.value, role: role.value } });
        const acceptUrl = `${window.location.origin}/invitations/${encodeURIComponent(invitation.token)}`;
        replace(result, h('div', { class: 'secret' },
          h('p', {}, `Send this link to ${invitation.email}. It works once, until ${formatTime(invitation.expires_at)}, for whoever signs in as that email:`),
          h('code', { class: 'block' }, acceptUrl), h('p', {}, copyButton(acceptUrl, 'Copy link'))));
        email.value = '';
      });
    });
    section.append(form);
  } else {
    section.append(h('p', { class: 'muted' }, 'Only an owner can invite members and change roles.'));
  }
  return section;
}

function invitationView(token) {
  const error = errorLine();
  const accept = h('button', {
    type: 'button',
    class: 'primary',
    onclick: () => attempt(error, async () => {
      const membership = await api('POST', `/v1/invitations/${encodeURIComponent(token)}/accept`);
      state.session = await api('POST', '/v1/auth/session/workspace', { body: { workspace_id: membership.workspace_id } });
      navigate('/projects');
    }),
  }, 'Accept invitation');
  return h('section', { class: 'card narrow' }, h('h1', {}, 'Invitation'),
    h('p', {}, 'You were invited to join a workspace. Accept to become a member with the role the invitation gives.'),
    accept, error);
}

// --- Routing ---------------------------------------------------------------------------------

const ROUTES = [
  { pattern: /^\/login\/?$/, view: loginView, public: true },
  { pattern: /^\/signup\/?$/, view: signupView, public: true },
  { pattern: /^\/(?:projects\/?)?$/, view: projectsView },
  { pattern: /^\/members\/?$/, view: membersView },
  { pattern: /^\/invitations\/([^/]+)\/?$/, view: invitationView },
  { pattern: /^\/projects\/([^/]+)(?:\/(overview|live|events|keys|settings))?\/?$/, view: projectView },
];

function notFound() {
  return h('section', {}, h('h1', {}, 'Not found'), h('p', {}, 'Nothing is here. ', link('/projects', 'Go to your projects')));
}

export const context = {
  get session() { return state.session; },
  navigate,
  attempt,
  showError,
  onLeave,
};

async function render() {
  for (const callback of state.leaving.splice(0)) callback();
  clearNotice();
  const path = window.location.pathname;
  const route = ROUTES.find((r) => r.pattern.test(path));
  if (!state.session && !(route && route.public)) {
    if (path !== '/' && path !== '/login') {
      window.history.replaceState({}, '', `/login?next=${encodeURIComponent(path)}`);
    } else {
      window.history.replaceState({}, '', '/login');
    }
    return render();
  }
  if (state.session && route && route.public) {
    window.history.replaceState({}, '', '/projects');
    return render();
  }
  renderHeader();
  // A newer render (a link followed, or a 401 sending to the login page) wins over this one.
  const generation = ++state.renders;
  const params = route ? path.match(route.pattern).slice(1).map((p) => (p === undefined ? p : decodeURIComponent(p))) : [];
  const view = route ? await attempt(null, () => route.view(...params)) : notFound();
  if (generation !== state.renders) return undefined;
  replace(main, view || h('p', { class: 'muted' }, 'This page could not be shown: see the error above.'));
  const heading = main.querySelector('h1');
  document.title = heading ? `${heading.textContent} · eventcore` : 'eventcore';
  return undefined;
}

document.addEventListener('click', (event) => {
  const a = event.target.closest('a[href]');
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  const target = new URL(a.href, window.location.origin);
  if (target.origin !== window.location.origin || target.pathname.startsWith('/v1/') || target.pathname.startsWith('/schema')) return;
  event.preventDefault();
  navigate(target.pathname + target.search);
  main.focus();
});
window.addEventListener('popstate', () => render());

await loadSession();
await render();
