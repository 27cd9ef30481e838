// The API as the console calls it: same origin, the session cookie, and the CSRF header on
// every request that changes something.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const CSRF_COOKIE = 'eventcore_csrf';

function cookie(name) {
  const found = document.cookie.split('; ').find((part) => part.startsWith(`${name}=`));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : '';
}

export function url(path, query = {}) {
  const target = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') target.searchParams.set(key, value);
  }
  return target;
}

/** The JSON answer of a call, or an ApiError with the server's code and message. */
export async function api(method, path, { query, body } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') headers['x-csrf-token'] = cookie(CSRF_COOKIE);
  let response;
  try {
    response = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError(0, 'network_error', 'The server could not be reached: is eventcore running?');
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error;
    throw new ApiError(
      response.status,
      (error && error.code) || `http_${response.status}`,
      (error && error.message) || `The server answered ${response.status}.`,
    );
  }
  return data;
}

export function ingestCommand(key) {
  const body = JSON.stringify({ type: 'page_view', properties: { path: '/' } });
  return `curl -s ${window.location.origin}/v1/ingest -H 'x-api-key: ${key}' `
    + `-H 'content-type: application/json' -d '${body}'`;
}
