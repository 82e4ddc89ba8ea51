// The session and the REST client. The token pair lives in localStorage, shared by every tab: a
// refresh runs under a Web Lock and first looks whether another tab already rotated the pair (a
// spent refresh token presented again would sign every tab out). Access tokens are refreshed in
// the background a minute before they expire, and once more when a request answers 401.

const KEY = "omnichat.session";
const listeners = new Set();
let session = load();
let timer = null;

function load() {
  try {
    return JSON.parse(localStorage.getItem(KEY)) || null;
  } catch {
    return null;
  }
}

function save(next) {
  session = next;
  if (next) localStorage.setItem(KEY, JSON.stringify(next));
  else localStorage.removeItem(KEY);
  schedule();
  listeners.forEach((fn) => fn(session));
}

/** Called with the session (or null) whenever it changes, in this tab or another. */
export function onSession(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

window.addEventListener("storage", (event) => {
  if (event.key !== KEY) return;
  session = load();
  schedule();
  listeners.forEach((fn) => fn(session));
});

export const current = () => session;
export const accessToken = () => session?.accessToken;

/** The `exp` of a JWT, in ms. */
function expiry(token) {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return payload.exp * 1000;
  } catch {
    return 0;
  }
}

function schedule() {
  clearTimeout(timer);
  if (!session) return;
  // Tabs without Web Locks (a plain-http address other than localhost) spread their timers.
  const jitter = navigator.locks ? 0 : Math.random() * 20_000;
  const due = expiry(session.accessToken) - Date.now() - 60_000 - jitter;
  const token = session.accessToken;
  timer = setTimeout(() => refresh(token).catch(() => setTimeout(() => session && schedule(), 10_000)), Math.max(due, 5_000));
}

async function withLock(fn) {
  if (navigator.locks) return navigator.locks.request("omnichat.refresh", fn);
  return fn();
}

/**
 * A fresh access token. `failed` is the token a request was refused with: a pair another tab (or
 * an earlier call) stored since is taken as it is instead of rotating again. Signs out when the
 * refresh token is refused.
 */
export async function refresh(failed) {
  return withLock(async () => {
    const stored = load();
    if (!stored) {
      save(null);
      throw new ApiError(401, "unauthorized", "Signed out");
    }
    if (stored.accessToken !== failed && expiry(stored.accessToken) - Date.now() > 60_000) {
      if (stored.accessToken !== session?.accessToken) save(stored);
      return stored.accessToken;
    }
    const response = await fetch("/api/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refreshToken: stored.refreshToken }),
      signal: AbortSignal.timeout(15_000),
    });
    if (response.status === 401 || response.status === 403) {
      save(null);
      throw new ApiError(401, "unauthorized", "Your session ended: sign in again");
    }
    if (!response.ok) throw await toError(response);
    const body = await response.json();
    const now = load();
    if (now?.refreshToken !== stored.refreshToken) {
      // Another tab (without Web Locks) rotated the same pair: the server gave it the same
      // successor, or a newer one; take what is stored.
      if (now && now.user?.id === stored.user?.id) {
        save(now);
        return now.accessToken;
      }
      // Signed out (or in as someone else) meanwhile: the new pair must not sign this tab back in.
      revoke(body.refreshToken);
      throw new ApiError(401, "unauthorized", "Signed out");
    }
    save({ ...stored, accessToken: body.accessToken, refreshToken: body.refreshToken, user: body.user || stored.user, tenant: body.tenant || stored.tenant });
    return body.accessToken;
  });
}

function revoke(refreshToken) {
  return fetch("/api/auth/logout", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refreshToken }),
  }).catch(() => {});
}

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

async function toError(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON */
  }
  const error = body?.error || {};
  let message = error.message || `${response.status} ${response.statusText}`;
  if (response.status === 429) {
    const wait = response.headers.get("retry-after");
    if (wait) message += ` (try again in ${wait} s)`;
  }
  return new ApiError(response.status, error.code || "http_error", message, body);
}

/**
 * A request to the API with the session's token: `api("GET", "/api/channels")`. JSON in and out;
 * `{raw: true}` returns the Response (for images). Errors are `ApiError`s with the API's code.
 */
export async function api(method, path, body, { raw = false, headers = {}, auth = true } = {}) {
  const send = (token) =>
    fetch(path, {
      method,
      headers: {
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...(auth && token ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  const token = session?.accessToken;
  let response = await send(token);
  if (response.status === 401 && auth && session) {
    response = await send(await refresh(token));
  }
  if (!response.ok) throw await toError(response);
  if (raw) return response;
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** Signs in (or up): keeps the pair and the user. */
export async function signIn(path, body) {
  const result = await api("POST", path, body, { auth: false });
  save({ accessToken: result.accessToken, refreshToken: result.refreshToken, user: result.user, tenant: result.tenant });
  return result;
}

export async function signOut() {
  // Under the lock: a refresh running in another tab cannot sign the tabs back in.
  const stored = await withLock(async () => {
    const before = load();
    save(null);
    return before;
  });
  if (stored?.refreshToken) await revoke(stored.refreshToken);
}

/** Updates the kept user (after `GET /api/auth/me`), over the stored pair (another tab may have rotated it). */
export async function setUser(user) {
  await withLock(async () => {
    const stored = load();
    if (stored) save({ ...stored, user });
  });
}

/** Whether the signed-in user manages channels, users and agents. */
export const canManage = () => ["owner", "admin"].includes(String(session?.user?.role || "").toLowerCase());

/** An object URL of an authenticated image or file (the QR code, inbound media). */
export async function blobUrl(path) {
  const response = await api("GET", path, undefined, { raw: true });
  return URL.createObjectURL(await response.blob());
}

schedule();
