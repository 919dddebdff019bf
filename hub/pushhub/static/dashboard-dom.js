// The dashboard's plumbing: elements, the admin API with the key as a bearer header, formatting.
export const HUB = new URL("../", import.meta.url);
export const session = { key: null, onSignedOut: () => {} };

export const $ = (id) => document.getElementById(id);

export function element(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("data-") || name.startsWith("aria-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  node.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

export function hubUrl(path) {
  return new URL(path, HUB).href;
}

export function headers(extra = {}) {
  return session.key ? { authorization: `Bearer ${session.key}`, ...extra } : extra;
}

export async function failure(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${body.error?.message ?? response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// One call of the documented HTTP API; a 401/403 signs the page out.
export async function call(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "content-type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(hubUrl(path), init);
  if (response.status === 401 || response.status === 403) {
    session.onSignedOut(`signed out: ${await failure(response)}`);
    throw new Error("signed out");
  }
  if (!response.ok) throw new Error(await failure(response));
  return response.status === 204 ? null : response.json();
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}

export function table(columns, rows, props = {}) {
  return element("div", { class: "scroll" }, element("table", props,
    element("thead", {}, element("tr", {}, ...columns.map((column) => element("th", { textContent: column })))),
    element("tbody", {}, ...rows)));
}

export function cell(text, props = {}) {
  return element("td", { textContent: text === null || text === undefined ? "" : String(text), ...props });
}

export function json(value) {
  return element("pre", { textContent: JSON.stringify(value, null, 2) });
}

export function showError(id, error) {
  if (error?.message === "signed out") return;
  $(id).textContent = error ? error.message : "";
}

// A link to an event's page (the page listens for clicks on [data-event-link]).
export function eventLink(id) {
  return element("a", { href: `#event/${encodeURIComponent(id)}`, textContent: id, "data-event-link": id });
}
