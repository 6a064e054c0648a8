// The JSON API: every call the page makes, its errors as one ApiError whatever went wrong.
export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || "HTTP " + status);
    this.status = status;
    // a proxy's own 413 (an HTML page) is still a body too large
    this.code = (body && body.error) || (status === 413 ? "payload_too_large" : "http_error");
    this.details = (body && body.details) || {};
    this.retryAfter = (body && body.retry_after) || 0;
  }
}

// The session's CSRF token: every change made with the session cookie carries it.
let csrfToken = "";
export function setCsrfToken(token) {
  csrfToken = token || "";
}
function guarded(method, headers) {
  if (csrfToken && method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken;
  return headers;
}

// fetch, with a failure to reach the server as an ApiError like any other
async function send(url, init) {
  try {
    return await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, { error: "network_error", message: String((err && err.message) || err) });
  }
}

async function parsed(response) {
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export async function request(method, path, body) {
  const init = { method, headers: guarded(method, {}) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await send(API + path, init);
  if (response.status === 401 && !path.startsWith("/session")) window.dispatchEvent(new CustomEvent("volcimage:unauthorized"));
  return parsed(response);
}

// a file as multipart form data (a reference image); its 401 is the caller's to handle
export async function upload(path, file) {
  const body = new FormData();
  body.append("file", file);
  return parsed(await send(API + path, { method: "POST", body, headers: guarded("POST", {}) }));
}

// a DELETE that outlives the page (sent as it closes)
export function deleteOnLeaving(path) {
  fetch(API + path, { method: "DELETE", keepalive: true, headers: guarded("DELETE", {}) });
}
