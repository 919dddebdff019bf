// The log as the operator sees it: channels (position, rate, subscriptions), one channel's history
// newest first with its live events, search by type and id, an event's page, and the publish form.
import { PushHubEventSource } from "../v1/client/pushhub.js";
import { $, HUB, call, cell, element, eventLink, json, query, showError, table, when } from "./dashboard-dom.js";

const PAGE = 50;
const CHANNEL = /^[A-Za-z0-9_\-.:]{1,128}$/; // a channel name as the hub accepts it
const state = { channelsAfter: null, channel: null, live: null, oldest: null, epoch: null, earliest: 1 };

// The browser client's EventSource, pointed at the dashboard's cookie-authorised stream.
class DashboardEventSource extends EventSource {
  constructor(url, init) {
    const target = new URL(url);
    target.pathname = target.pathname.replace(/\/v1\/sse$/, "/v1/dashboard/sse");
    super(target.href, init);
  }
}

// Channels -------------------------------------------------------------------------------------

export async function loadChannels(more = false) {
  const body = $("channel-list").tBodies[0];
  try {
    const page = await call("GET", `v1/admin/channels${query({
      pattern: $("channel-pattern").value.trim() || "*", after: more ? state.channelsAfter : null, limit: PAGE })}`);
    const rows = page.data.map((channel) => element("tr", { "data-channel": channel.channel },
      element("td", {}, element("a", { href: "#channels", textContent: channel.channel,
        "data-open-channel": channel.channel })),
      cell(channel.epoch), cell(channel.top), cell(channel.earliest), cell(channel.per_minute),
      cell(channel.subscriptions)));
    if (more) body.append(...rows);
    else body.replaceChildren(...rows);
    state.channelsAfter = page.next_after;
    $("channels-more").hidden = page.next_after === null;
    showError("channels-error", null);
  } catch (error) {
    showError("channels-error", error);
  }
}

function eventRow(event, live = false) {
  return element("tr", { "data-offset": String(event.offset), class: live ? "fresh" : "" },
    cell(event.offset), cell(event.type, { class: "type" }), element("td", {}, eventLink(event.id)),
    cell(event.time), element("td", {}, element("code", { textContent: JSON.stringify(event.data) })));
}

export function closeChannel() {
  state.live?.close();
  state.live = null;
  state.channel = null;
}

async function openChannel(name) {
  closeChannel();
  state.channel = name;
  $("channel-view").hidden = false;
  $("channel-name").textContent = name;
  $("channel-query").value = "";
  $("channel-events").tBodies[0].replaceChildren();
  showError("channel-view-error", null);
  try {
    const position = await call("GET", `v1/channels/${encodeURIComponent(name)}`);
    if (state.channel !== name) return;
    Object.assign(state, { epoch: position.epoch, earliest: position.earliest, oldest: position.top + 1 });
    await older();
    follow(name, position.cursor);
  } catch (error) {
    showError("channel-view-error", error);
  }
}

// History, newest first: each page is the PAGE events before the oldest one shown.
async function older() {
  const name = state.channel;
  const after = Math.max(state.earliest - 1, state.oldest - 1 - PAGE);
  const limit = state.oldest - 1 - after;
  if (limit <= 0) {
    $("history-older").hidden = true;
    return;
  }
  const page = await call("GET", `v1/channels/${encodeURIComponent(name)}/events${query({
    after: `${state.epoch}.${after}`, limit })}`);
  if (state.channel !== name) return;
  $("channel-events").tBodies[0].append(...page.events.reverse().map((event) => eventRow(event)));
  state.oldest = after + 1;
  $("history-older").hidden = after <= state.earliest - 1;
}

function follow(name, cursor) {
  const link = $("channel-live");
  state.live = new PushHubEventSource({
    url: HUB.href, channels: [name], cursor, storage: null, EventSource: DashboardEventSource,
    onOpen: () => Object.assign(link, { className: "live", textContent: "live" }),
    onError: () => Object.assign(link, { className: "down", textContent: "reconnecting" }),
    onEvent: (event) => $("channel-events").tBodies[0].prepend(eventRow(event, true)),
    onReset: (reset) => $("channel-events").tBodies[0].prepend(element("tr", {},
      element("td", { colSpan: 5, class: "muted", textContent: `reset: ${reset.reason}` }))),
  });
}

// From a cursor of the channel's current epoch: the events after it, oldest first.
async function fromCursor(text) {
  const name = state.channel;
  const page = await call("GET", `v1/channels/${encodeURIComponent(name)}/events${query({ after: text, limit: PAGE })}`);
  $("channel-events").tBodies[0].replaceChildren(...page.events.map((event) => eventRow(event)));
  $("history-older").hidden = true;
}

async function searchChannel(text) {
  if (text.startsWith(`${state.epoch}.`) && /^\d+$/.test(text.slice(state.epoch.length + 1))) {
    await fromCursor(text);
    return;
  }
  const name = state.channel;
  const [byId, byType] = await Promise.all([
    call("GET", `v1/admin/events${query({ id: text, limit: 200 })}`),
    /^[A-Za-z0-9_\-.:/]{1,128}$/.test(text) ? call("GET", `v1/admin/events${query({ type: text, limit: 200 })}`)
      : { data: [] }]);
  const found = [...byId.data, ...byType.data].filter((hit) => hit.event.channel === name);
  $("channel-events").tBodies[0].replaceChildren(...(found.length ? found.map((hit) => eventRow(hit.event))
    : [element("tr", {}, element("td", { colSpan: 5, class: "muted",
      textContent: `no retained event of ${name} has the type or id ${JSON.stringify(text)}` }))]));
  $("history-older").hidden = true;
}

// An event's page --------------------------------------------------------------------------------

function origin(found) {
  const from = found.origin;
  if (from === null) return "not recorded (appended before the event index existed)";
  if (from.via === "ingest") {
    return `ingest source ${from.source} (${from.scheme}), provider delivery id ${from.delivery_id ?? "none"}`;
  }
  return `${from.via === "api" ? "publish API" : "WebSocket publish"} by ${from.publisher || "anyone (open hub)"}`;
}

function facts(pairs) {
  return element("dl", { class: "facts" }, ...pairs.flatMap(([name, value]) => [
    element("dt", { textContent: name }), element("dd", {}, value instanceof Node ? value : String(value))]));
}

function attemptRows(attempts) {
  return attempts.map((attempt) => element("tr", { "data-attempt": String(attempt.id),
    class: attempt.status !== null && attempt.status >= 200 && attempt.status < 300 ? "ok" : "failed" },
  cell(`#${attempt.number}`), cell(when(attempt.at)),
  cell(attempt.status ?? "no response", { class: "status" }), cell(`${Math.round(attempt.latency_ms)} ms`),
  cell(attempt.error ?? ""),
  element("td", {}, element("details", {}, element("summary", { textContent: "request headers" }),
    json(attempt.request_headers ?? "not kept (sent before headers were recorded)"))),
  element("td", {}, element("pre", { class: "response", textContent: attempt.response }))));
}

function deliveryCard(delivery) {
  return element("div", { class: "delivery", "data-delivery": delivery.id },
    element("h4", {}, `Delivery ${delivery.id} to ${delivery.endpoint_id} `,
      element("span", { class: `badge ${delivery.status}`, textContent: delivery.status }),
      element("button", { type: "button", textContent: "Replay", "data-replay-delivery": delivery.id })),
    facts([["attempts", delivery.attempts], ["next attempt", when(delivery.next_attempt_at) || "none"],
      ["last status", delivery.last_status ?? delivery.last_error ?? ""]]),
    table(["", "at", "status", "latency", "error", "request", "response"], attemptRows(delivery.attempts_log)));
}

export async function openEvent(id) {
  $("event-query").value = id;
  showError("event-error", null);
  const page = $("event-page");
  page.replaceChildren(element("p", { class: "muted", textContent: "loading…" }));
  try {
    const found = await call("GET", `v1/admin/events/${encodeURIComponent(id)}`);
    page.replaceChildren(...[
      ...found.found.map((hit) => element("article", { class: "event", "data-event": hit.event.id },
        element("h3", {}, `${hit.event.type} on `, element("a", { href: "#channels", textContent: hit.event.channel,
          "data-open-channel": hit.event.channel })),
        facts([["id", hit.event.id], ["from", origin(hit)], ["repeats deduped", hit.repeats],
          ["position", `epoch ${hit.event.epoch}, offset ${hit.event.offset}`], ["cursor", hit.cursor],
          ["time", hit.event.time]]),
        json({ data: hit.event.data, meta: hit.event.meta }))),
      found.found.length ? null : element("p", { class: "muted", textContent: "no longer in the log" }),
      element("h3", { textContent: `Webhook deliveries (${found.deliveries.length})` }),
      ...found.deliveries.map(deliveryCard)].filter(Boolean));
  } catch (error) {
    page.replaceChildren();
    showError("event-error", error);
  }
}

async function findEvents(text) {
  const type = text.slice("type:".length).trim();
  const page = $("event-page");
  try {
    const found = await call("GET", `v1/admin/events${query({ type, limit: 200 })}`);
    page.replaceChildren(element("h3", { textContent: `${found.data.length} retained events of type ${type}` }),
      table(["channel", "offset", "id", "time", "from"], found.data.map((hit) => element("tr", {},
        cell(hit.event.channel), cell(hit.event.offset), element("td", {}, eventLink(hit.event.id)),
        cell(hit.event.time), cell(origin(hit))))));
    showError("event-error", null);
  } catch (error) {
    showError("event-error", error);
  }
}

// Publishing -------------------------------------------------------------------------------------

async function publish(form) {
  const fields = new FormData(form);
  const channel = String(fields.get("channel")).trim();
  $("publish-result").hidden = true;
  showError("publish-error", null);
  if (!CHANNEL.test(channel)) {
    $("publish-error").textContent = `invalid channel ${JSON.stringify(channel)}: use 1-128 of A-Z a-z 0-9 _ - . :`;
    return;
  }
  let data;
  try {
    data = JSON.parse(String(fields.get("data")) || "null");
  } catch (error) {
    $("publish-error").textContent = `data is not valid JSON: ${error.message}`;
    return;
  }
  const event = { type: String(fields.get("type")).trim(), data };
  if (String(fields.get("id")).trim()) event.id = String(fields.get("id")).trim();
  try {
    const sent = await call("POST", `v1/channels/${encodeURIComponent(channel)}/events`, event);
    $("publish-result").replaceChildren(`Published to ${sent.channel} at offset ${sent.offset}: `, eventLink(sent.id));
    $("publish-result").hidden = false;
  } catch (error) {
    showError("publish-error", error);
  }
}

// Wiring ---------------------------------------------------------------------------------------

async function replay(button) {
  button.disabled = true;
  try {
    await call("POST", `v1/webhooks/deliveries/${encodeURIComponent(button.dataset.replayDelivery)}/replay`);
    button.textContent = "Replayed";
  } catch (error) {
    showError("event-error", error);
  }
}

export function setUpLog() {
  $("channel-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    loadChannels();
  });
  $("channels-more").addEventListener("click", () => loadChannels(true));
  $("history-older").addEventListener("click", () => older().catch((error) => showError("channel-view-error", error)));
  $("channel-search").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("channel-query").value.trim();
    if (text) searchChannel(text).catch((error) => showError("channel-view-error", error));
    else openChannel(state.channel);
  });
  $("event-search").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("event-query").value.trim();
    if (text.startsWith("type:")) findEvents(text);
    else if (text) location.hash = `event/${encodeURIComponent(text)}`;
  });
  $("publish-form").addEventListener("submit", (event) => {
    event.preventDefault();
    publish(event.target);
  });
  document.addEventListener("click", (event) => {
    const channel = event.target.closest("[data-open-channel]");
    if (channel) {
      event.preventDefault();
      if (location.hash !== "#channels") location.hash = "channels";
      openChannel(channel.dataset.openChannel);
    }
    const replayed = event.target.closest("#event-page button[data-replay-delivery]");
    if (replayed) replay(replayed);
  });
}
