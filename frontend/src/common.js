// What every console page shares: calls to the REST API with the session's CSRF token,
// the API's error shape shown beside the inputs, and a small DOM builder (no innerHTML).

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `Request failed (${status}).`);
    this.status = status;
    this.code = error.code || "error";
    this.fields = error.fields || {};
  }
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function request(method, url, body, { raw = false } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    throw new ApiError(response.status, payload);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export const api = {
  get: (url) => request("GET", url),
  post: (url, body) => request("POST", url, body ?? {}),
  patch: (url, body) => request("PATCH", url, body),
  delete: (url) => request("DELETE", url),
};

// Every page of a paginated list, up to `limit` items.
export async function listAll(url, limit = 500) {
  const items = [];
  let next = url;
  while (next && items.length < limit) {
    const page = await api.get(next);
    if (Array.isArray(page)) return page;
    items.push(...(page.results || []));
    next = page.next;
  }
  return items;
}

export function clearErrors(form) {
  for (const node of form.querySelectorAll("[data-error-for]")) node.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

// The message at the top of the form; each field's messages beside its input. A field
// the form has no place for (e.g. "messages.0") goes to the closest one, or to the top.
export function showErrors(form, error) {
  clearErrors(form);
  const top = form.querySelector('[data-error-for="__all__"]');
  const unplaced = [];
  for (const [name, messages] of Object.entries(error.fields || {})) {
    const slot =
      form.querySelector(`[data-error-for="${CSS.escape(name)}"]`) ||
      form.querySelector(`[data-error-for="${CSS.escape(name.split(".")[0])}"]`);
    const text = [].concat(messages).join(" ");
    if (slot) {
      slot.textContent = text;
      const input = form.querySelector(`[name="${CSS.escape(slot.dataset.errorFor)}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
    } else {
      unplaced.push(`${name}: ${text}`);
    }
  }
  if (top) top.textContent = [error.message, ...unplaced].filter(Boolean).join(" ");
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function formatDate(value) {
  if (!value) return "—";
  return new Date(value).toLocaleString();
}

export function money(value) {
  const number = Number(value);
  return Number.isFinite(number) ? `$${number.toFixed(number < 0.01 && number > 0 ? 6 : 4)}` : "—";
}

export function reportError(node, error) {
  if (node) node.textContent = error.message || String(error);
}

function wireSignOut() {
  const form = document.querySelector("[data-signout]");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api.post(form.getAttribute("action"));
    } finally {
      window.location.assign("/console/login/");
    }
  });
}

wireSignOut();
