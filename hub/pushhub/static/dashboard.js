// The pushhub dashboard: throughput, channels with history and live events, an event's whole life
// (provenance, deliveries, attempts), endpoint management and a publish form. Plain ES modules, no
// build step, nothing from a CDN. Data calls carry the admin key as `Authorization: Bearer` (kept in
// sessionStorage); the event streams (stats, live channel events) are authorised by the HttpOnly
// cookie POST /v1/dashboard/session sets, so the key never appears in a URL.
import { lineChart } from "./dashboard-chart.js";
import { $, failure, headers, hubUrl, session } from "./dashboard-dom.js";
import { closeChannel, loadChannels, openEvent, setUpLog } from "./dashboard-log.js";
import { refreshEndpoints, setUpEndpoints, stopEndpoints } from "./dashboard-webhooks.js";

const KEY = "pushhub:dashboard:key";
const HISTORY_SECONDS = 300;
const state = { stats: null, rates: [], view: "overview" };

// Signing in and out -------------------------------------------------------------------------

async function signIn(key) {
  session.key = key;
  const response = await fetch(hubUrl("v1/dashboard/session"), { method: "POST", headers: headers() });
  if (!response.ok) {
    session.key = null;
    sessionStorage.removeItem(KEY);
    throw new Error(await failure(response));
  }
  sessionStorage.setItem(KEY, key);
  $("sign-in").hidden = true;
  $("main").hidden = false;
  $("nav").hidden = false;
  $("sign-out").hidden = false;
  $("status").textContent = "signed in";
  startStats();
  route();
}

function signOut(message = "signed out") {
  state.stats?.close();
  state.stats = null;
  closeChannel();
  stopEndpoints();
  session.key = null;
  sessionStorage.removeItem(KEY);
  fetch(hubUrl("v1/dashboard/session"), { method: "DELETE" }).catch(() => {});
  $("main").hidden = true;
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("status").textContent = "signed out";
  $("sign-in-error").textContent = message === "signed out" ? "" : message;
}
session.onSignedOut = signOut;

// Views ------------------------------------------------------------------------------------------

function show(view) {
  state.view = view;
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
  for (const button of document.querySelectorAll("#nav button")) {
    if (button.dataset.view === view) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  if (view === "endpoints") refreshEndpoints();
  else stopEndpoints();
  if (view === "channels") loadChannels();
}

// The location's hash names the view (and an event or channel): it holds no secret.
function route() {
  const [view, ...rest] = location.hash.slice(1).split("/");
  const argument = decodeURIComponent(rest.join("/"));
  if (view === "event" && argument) {
    show("event");
    openEvent(argument);
  } else {
    show(["channels", "event", "endpoints", "publish"].includes(view) ? view : "overview");
  }
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
      setTimeout(() => session.key !== null && signIn(session.key).catch((error) => signOut(error.message)), 2000);
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
  drawThroughput();
}

function drawThroughput() {
  const newest = state.rates.at(-1)?.time ?? Date.now() / 1000;
  const span = Math.min(HISTORY_SECONDS, Math.max(60, newest - (state.rates[0]?.time ?? newest)));
  const series = (name, field, className) => ({ name, class: className,
    points: state.rates.map((rate) => [rate.time - newest, rate[field]]) });
  $("throughput").replaceChildren(lineChart({
    title: "Throughput", xLabel: "seconds ago", yLabel: "events per second", xMin: -span, xMax: 0,
    xTick: (value) => String(Math.round(-value)),
    series: [series("published/s", "published", "published"), series("delivered/s", "delivered", "delivered")],
  }));
}

// Wiring ---------------------------------------------------------------------------------------

$("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  signIn($("key").value.trim()).catch((error) => ($("sign-in-error").textContent = error.message));
});
$("sign-out").addEventListener("click", () => signOut());
$("nav").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-view]");
  if (!button) return;
  if (location.hash === `#${button.dataset.view}`) route();
  else location.hash = button.dataset.view;
});
window.addEventListener("hashchange", () => session.key !== null && route());
setUpLog();
setUpEndpoints();
drawThroughput();

const stored = sessionStorage.getItem(KEY);
if (stored !== null) signIn(stored).catch((error) => signOut(error.message));
document.documentElement.dataset.ready = "true";
