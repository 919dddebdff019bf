// The pushhub dashboard: live events per channel, connections and throughput, webhook endpoints.
// Plain ES module, no build step. Data calls carry the admin key as `Authorization: Bearer`; the
// two event streams (stats, channels) are authorised by the HttpOnly cookie POST /v1/dashboard/session
// sets, so the key never appears in a URL.
import { PushHubEventSource } from "../v1/client/pushhub.js";

const KEY = "pushhub:dashboard:key";
const WATCHED = "pushhub:dashboard:channels";
const HUB = new URL("../", import.meta.url);
const HISTORY_SECONDS = 300;
const EVENTS_KEPT = 100;
const WEBHOOK_REFRESH_MS = 2000;
const CHANNEL = /^[A-Za-z0-9_\-.:]{1,128}$/; // a channel name as the hub accepts it

const $ = (id) => document.getElementById(id);
const state = { key: null, stats: null, rates: [], channels: new Map(), webhookTimer: null };

function element(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function hubUrl(path) {
  return new URL(path, HUB).href;
}

function headers(extra = {}) {
  return state.key ? { authorization: `Bearer ${state.key}`, ...extra } : extra;
}

async function failure(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${body.error?.message ?? response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function call(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "content-type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(hubUrl(path), init);
  if (response.status === 401 || response.status === 403) {
    signOut(`signed out: ${await failure(response)}`);
    throw new Error("signed out");
  }
  if (!response.ok) throw new Error(await failure(response));
  return response.status === 204 ? null : response.json();
}

// Signing in and out -------------------------------------------------------------------------

async function signIn(key) {
  state.key = key;
  const response = await fetch(hubUrl("v1/dashboard/session"), { method: "POST", headers: headers() });
  if (!response.ok) {
    state.key = null;
    sessionStorage.removeItem(KEY);
    throw new Error(await failure(response));
  }
  sessionStorage.setItem(KEY, key);
  $("sign-in").hidden = true;
  $("main").hidden = false;
  $("sign-out").hidden = false;
  $("status").textContent = "signed in";
  startStats();
  for (const channel of JSON.parse(sessionStorage.getItem(WATCHED) ?? "[]")) watch(channel);
  refreshWebhooks();
}

function signOut(message = "signed out") {
  state.stats?.close();
  state.stats = null;
  for (const channel of [...state.channels.keys()]) unwatch(channel, false);
  clearTimeout(state.webhookTimer);
  state.key = null;
  sessionStorage.removeItem(KEY);
  fetch(hubUrl("v1/dashboard/session"), { method: "DELETE" }).catch(() => {});
  $("main").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("status").textContent = "signed out";
  $("sign-in-error").textContent = message === "signed out" ? "" : message;
}

// Connections and throughput -----------------------------------------------------------------

function startStats() {
  state.stats?.close();
  const source = new EventSource(hubUrl("v1/dashboard/stats"));
  state.stats = source;
  source.addEventListener("stats", (message) => renderStats(JSON.parse(message.data)));
  source.onopen = () => ($("status").textContent = "live");
  source.onerror = () => {
    if (state.stats !== source) return;
    $("status").textContent = "stats stream interrupted, reconnecting…";
    if (source.readyState === EventSource.CLOSED) {
      // Refused (the session cookie expired?): sign in again with the key, then reopen.
      setTimeout(() => state.key !== null && signIn(state.key).catch((error) => signOut(error.message)), 2000);
    }
  };
}

function renderStats(stats) {
  $("sse-connections").textContent = stats.sse_connections;
  $("ws-connections").textContent = stats.ws_connections;
  $("active-channels").textContent = stats.active_channels;
  $("published").textContent = stats.published;
  $("delivered").textContent = stats.delivered;
  state.rates.push(...stats.rates);
  const newest = state.rates.at(-1);
  if (newest) state.rates = state.rates.filter((rate) => rate.time > newest.time - HISTORY_SECONDS);
  $("published-rate").textContent = newest ? newest.published.toFixed(1) : "0";
  $("delivered-rate").textContent = newest ? newest.delivered.toFixed(1) : "0";
  drawChart();
}

// The chart spans the samples kept (at least a minute, at most HISTORY_SECONDS), newest on the right.
function drawChart() {
  const newest = state.rates.at(-1)?.time ?? 0;
  const span = Math.min(HISTORY_SECONDS, Math.max(60, newest - (state.rates[0]?.time ?? newest)));
  const peak = Math.max(1, ...state.rates.map((rate) => Math.max(rate.published, rate.delivered)));
  const points = (field) => state.rates
    .map((rate) => `${(600 * (1 - (newest - rate.time) / span)).toFixed(1)},` +
                   `${(155 - 150 * rate[field] / peak).toFixed(1)}`)
    .join(" ");
  $("published-line").setAttribute("points", points("published"));
  $("delivered-line").setAttribute("points", points("delivered"));
  $("chart-peak").textContent = peak.toFixed(1);
}

// Live events per channel ---------------------------------------------------------------------

// The browser client's EventSource, pointed at the dashboard's cookie-authorised stream.
class DashboardEventSource extends EventSource {
  constructor(url, init) {
    const target = new URL(url);
    target.pathname = target.pathname.replace(/\/v1\/sse$/, "/v1/dashboard/sse");
    super(target.href, init);
  }
}

function saveWatched() {
  sessionStorage.setItem(WATCHED, JSON.stringify([...state.channels.keys()]));
}

function watch(channel) {
  if (!CHANNEL.test(channel)) {
    throw new Error(`invalid channel ${JSON.stringify(channel)}: use 1-128 of A-Z a-z 0-9 _ - . :`);
  }
  if (state.channels.has(channel)) return;
  const list = element("ol");
  const count = element("span", { class: "count", textContent: "0 events" });
  const link = element("span", { class: "down", textContent: "connecting" });
  const close = element("button", { type: "button", textContent: "×", title: `stop watching ${channel}` });
  const panel = element("div", { class: "channel", "data-channel": channel },
    element("h3", {}, element("span", { textContent: channel }), link, count, close), list);
  let received = 0;
  const client = new PushHubEventSource({
    url: HUB.href,
    channels: [channel],
    storage: null,
    EventSource: DashboardEventSource,
    onOpen: () => Object.assign(link, { className: "live", textContent: "live" }),
    onError: () => Object.assign(link, { className: "down", textContent: "reconnecting" }),
    onEvent: (event) => {
      received += 1;
      count.textContent = `${received} event${received === 1 ? "" : "s"}`;
      list.prepend(element("li", { "data-offset": String(event.offset) },
        element("span", { class: "type", textContent: event.type }), " ",
        element("span", { class: "meta", textContent: `#${event.offset} · ${event.time} · ${event.id}` }),
        element("pre", { textContent: JSON.stringify(event.data) })));
      while (list.children.length > EVENTS_KEPT) list.lastElementChild.remove();
    },
    onReset: (reset) => list.prepend(element("li", { class: "meta", textContent: `reset: ${reset.reason}` })),
  });
  close.onclick = () => unwatch(channel);
  state.channels.set(channel, { client, panel });
  $("channels").append(panel);
  saveWatched();
}

function unwatch(channel, save = true) {
  const watched = state.channels.get(channel);
  if (!watched) return;
  watched.client.close();
  watched.panel.remove();
  state.channels.delete(channel);
  if (save) saveWatched();
}

// Webhooks -----------------------------------------------------------------------------------

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "";
}

function table(columns, rows) {
  return element("table", {},
    element("thead", {}, element("tr", {}, ...columns.map((column) => element("th", { textContent: column })))),
    element("tbody", {}, ...rows));
}

function endpointCard(endpoint, attempts, failed) {
  const health = endpoint.enabled ? (endpoint.failing_since ? `failing since ${when(endpoint.failing_since)}` : "enabled")
    : `disabled${endpoint.disabled_reason ? `: ${endpoint.disabled_reason}` : ""}`;
  const replayAll = element("button", { type: "button", textContent: "Replay all failed",
    disabled: failed.length === 0, "data-replay-endpoint": endpoint.id });
  const failedRows = failed.map((delivery) => element("tr", { "data-delivery": delivery.id },
    element("td", { textContent: delivery.event_id }),
    element("td", { textContent: `${delivery.channel} / ${delivery.event_type}` }),
    element("td", { textContent: String(delivery.attempts) }),
    element("td", { class: "failed", textContent: String(delivery.last_status ?? delivery.last_error ?? "") }),
    element("td", { textContent: when(delivery.updated_at) }),
    element("td", {}, element("button", { type: "button", textContent: "Replay",
      "data-replay-delivery": delivery.id }))));
  const attemptRows = attempts.map((attempt) => {
    const ok = attempt.status !== null && attempt.status >= 200 && attempt.status < 300;
    return element("tr", { "data-attempt": String(attempt.id) },
      element("td", { textContent: when(attempt.at) }),
      element("td", { textContent: attempt.event_id }),
      element("td", { textContent: `#${attempt.number}` }),
      element("td", { class: ok ? "ok" : "failed", textContent: String(attempt.status ?? attempt.error ?? "") }),
      element("td", { textContent: `${Math.round(attempt.latency_ms)} ms` }));
  });
  return element("div", { class: "endpoint", "data-endpoint": endpoint.id },
    element("h3", {}, element("span", { textContent: endpoint.url }),
      element("span", { class: `health ${endpoint.enabled && !endpoint.failing_since ? "live" : "down"}`,
        textContent: health }),
      element("span", { class: "muted", textContent: `${endpoint.id} · ${endpoint.channels.join(", ") || "*"}` }),
      replayAll),
    element("h4", {}, `Failed deliveries (${failed.length}${failed.length === 10 ? "+" : ""})`),
    failed.length ? table(["event", "channel / type", "attempts", "last", "at", ""], failedRows)
      : element("p", { class: "muted", textContent: "none" }),
    element("h4", {}, "Recent attempts"),
    attempts.length ? table(["at", "event", "", "status", "latency"], attemptRows)
      : element("p", { class: "muted", textContent: "none yet" }));
}

async function refreshWebhooks() {
  clearTimeout(state.webhookTimer);
  if ($("main").hidden) return;
  try {
    const endpoints = (await call("GET", "v1/webhooks/endpoints")).data;
    const cards = await Promise.all(endpoints.map(async (endpoint) => {
      const id = encodeURIComponent(endpoint.id);
      const [attempts, failed] = await Promise.all([
        call("GET", `v1/webhooks/attempts?endpoint=${id}&limit=10`),
        call("GET", `v1/webhooks/deliveries?endpoint=${id}&status=failed&limit=10`)]);
      return endpointCard(endpoint, attempts.data, failed.data);
    }));
    $("webhooks").replaceChildren(...(cards.length ? cards
      : [element("p", { class: "muted", textContent: "no webhook endpoints" })]));
    $("webhooks-error").textContent = "";
  } catch (error) {
    if (error.message === "signed out") return;
    $("webhooks-error").textContent = `webhooks: ${error.message}`;
  }
  clearTimeout(state.webhookTimer); // a replay's refresh may have overlapped this one: keep one timer
  state.webhookTimer = setTimeout(refreshWebhooks, WEBHOOK_REFRESH_MS);
}

async function replay(button) {
  button.disabled = true;
  try {
    if (button.dataset.replayDelivery) {
      await call("POST", `v1/webhooks/deliveries/${encodeURIComponent(button.dataset.replayDelivery)}/replay`);
    } else {
      await call("POST", `v1/webhooks/endpoints/${encodeURIComponent(button.dataset.replayEndpoint)}/replay`,
        { failed: true });
    }
  } catch (error) {
    $("webhooks-error").textContent = `replay: ${error.message}`;
  }
  await refreshWebhooks();
}

// Wiring ---------------------------------------------------------------------------------------

$("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  signIn($("key").value.trim()).catch((error) => ($("sign-in-error").textContent = error.message));
});
$("sign-out").addEventListener("click", () => signOut());
$("watch").addEventListener("submit", (event) => {
  event.preventDefault();
  const names = $("channel").value.split(/[\s,]+/).filter(Boolean);
  $("watch-error").textContent = "";
  try {
    names.forEach(watch);
    $("channel").value = "";
  } catch (error) {
    $("watch-error").textContent = error.message;
  }
});
$("webhooks").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-replay-delivery], button[data-replay-endpoint]");
  if (button) replay(button);
});

const stored = sessionStorage.getItem(KEY);
if (stored !== null) signIn(stored).catch((error) => signOut(error.message));
document.documentElement.dataset.ready = "true";
