// Webhook endpoints: create and edit, enable/disable, rotate the secret (shown once), a test send,
// delete with confirmation; per endpoint its success rate and latency over the last hour, its backlog,
// and its deliveries and attempts filtered by status, in pages.
import { lineChart } from "./dashboard-chart.js";
import { $, call, cell, element, eventLink, query, showError, table, when } from "./dashboard-dom.js";

const REFRESH_MS = 2000;
const PAGE = 10;
const MINUTES = 60;
const state = { timer: null, editing: null, views: new Map(), notes: new Map(), confirming: null };

function view(id) {
  if (!state.views.has(id)) {
    state.views.set(id, { deliveries: { status: "", before: [null] }, attempts: { status: "", before: [null] } });
  }
  return state.views.get(id);
}

function list(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

// The form ---------------------------------------------------------------------------------------

function openForm(endpoint = null) {
  const form = $("endpoint-form");
  state.editing = endpoint?.id ?? null;
  $("endpoint-form-title").textContent = endpoint ? `Edit ${endpoint.id}` : "New endpoint";
  const values = endpoint ?? { url: "", description: "", channels: [], types: [], rate_limit: null,
    max_concurrency: null, retry_schedule: null, headers: {}, ordered: false, enabled: true };
  form.elements.url.value = values.url;
  form.elements.description.value = values.description ?? "";
  form.elements.channels.value = values.channels.filter((c) => c !== "*").join(", ");
  form.elements.types.value = values.types.join(", ");
  form.elements.rate_limit.value = values.rate_limit ?? "";
  form.elements.max_concurrency.value = values.max_concurrency ?? "";
  form.elements.retry_schedule.value = values.retry_schedule ?? "";
  form.elements.headers.value = Object.keys(values.headers ?? {}).length ? JSON.stringify(values.headers) : "";
  form.elements.ordered.checked = values.ordered;
  form.elements.enabled.checked = values.enabled;
  $("endpoint-form-error").textContent = "";
  form.hidden = false;
  form.elements.url.focus();
}

function formBody(form) {
  const f = form.elements;
  let headers = {};
  if (f.headers.value.trim()) {
    try {
      headers = JSON.parse(f.headers.value);
    } catch (error) {
      throw new Error(`headers are not valid JSON: ${error.message}`);
    }
    if (typeof headers !== "object" || headers === null || Array.isArray(headers)) {
      throw new Error("headers must be a JSON object of names to values");
    }
  }
  return {
    url: f.url.value.trim(), description: f.description.value, channels: list(f.channels.value).length
      ? list(f.channels.value) : ["*"], types: list(f.types.value),
    rate_limit: f.rate_limit.value === "" ? null : Number(f.rate_limit.value),
    max_concurrency: f.max_concurrency.value === "" ? null : Number(f.max_concurrency.value),
    retry_schedule: f.retry_schedule.value.trim() === "" ? null : f.retry_schedule.value.trim(),
    headers, ordered: f.ordered.checked, enabled: f.enabled.checked,
  };
}

function showSecret(endpoint, what) {
  const notice = $("secret-once");
  notice.replaceChildren(`${what} ${endpoint.id}. Its signing secret, shown this once: `,
    element("code", { class: "secret", textContent: endpoint.secret }));
  notice.hidden = false;
}

async function save(form) {
  $("endpoint-form-error").textContent = "";
  try {
    const body = formBody(form);
    if (state.editing) {
      await call("PATCH", `v1/webhooks/endpoints/${encodeURIComponent(state.editing)}`, body);
    } else {
      showSecret(await call("POST", "v1/webhooks/endpoints", body), "Created");
    }
    form.hidden = true;
    await refreshEndpoints();
  } catch (error) {
    showError("endpoint-form-error", error);
  }
}

// The cards --------------------------------------------------------------------------------------

function charts(stats) {
  const now = stats.until;
  const minutes = stats.minutes;
  const x = (m) => (m.minute - now) / 60;
  const base = { xLabel: "minutes ago", xMin: -MINUTES, xMax: 0, xTick: (value) => String(Math.round(-value)) };
  return element("div", { class: "charts" },
    lineChart({ ...base, title: "Success rate", yLabel: "% of attempts 2xx", yMax: 100,
      series: [{ name: "success %", class: "published",
        points: minutes.map((m) => [x(m), 100 * m.succeeded / Math.max(1, m.succeeded + m.failed)]) }] }),
    lineChart({ ...base, title: "Latency", yLabel: "mean latency (ms)",
      series: [{ name: "mean latency", class: "delivered",
        points: minutes.filter((m) => m.mean_latency_ms !== null).map((m) => [x(m), m.mean_latency_ms]) }] }));
}

function filter(id, kind, options, current) {
  return element("label", { class: "filter" }, "status ",
    element("select", { "data-filter": kind, "data-endpoint-id": id },
      ...options.map((option) => element("option", { value: option, textContent: option || "any",
        selected: option === current }))));
}

function pager(id, kind, views, nextBefore) {
  return element("span", { class: "pager" },
    element("button", { type: "button", textContent: "Newer", disabled: views.before.length <= 1,
      "data-page": "newer", "data-kind": kind, "data-endpoint-id": id }),
    element("button", { type: "button", textContent: "Older", disabled: nextBefore === null,
      "data-page": "older", "data-kind": kind, "data-endpoint-id": id, "data-before": String(nextBefore) }));
}

function deliveryRows(deliveries) {
  return deliveries.map((delivery) => element("tr", { "data-delivery": delivery.id, "data-status": delivery.status },
    element("td", {}, eventLink(delivery.event_id)), cell(`${delivery.channel} / ${delivery.event_type}`),
    cell(delivery.status, { class: delivery.status }), cell(delivery.attempts),
    cell(delivery.last_status ?? delivery.last_error ?? ""), cell(when(delivery.next_attempt_at)),
    element("td", {}, element("button", { type: "button", textContent: "Replay",
      "data-replay-delivery": delivery.id }))));
}

function attemptRows(attempts) {
  return attempts.map((attempt) => {
    const ok = attempt.status !== null && attempt.status >= 200 && attempt.status < 300;
    return element("tr", { "data-attempt": String(attempt.id) },
      cell(when(attempt.at)), element("td", {}, eventLink(attempt.event_id)), cell(`#${attempt.number}`),
      cell(attempt.status ?? attempt.error ?? "", { class: ok ? "ok" : "failed" }),
      cell(`${Math.round(attempt.latency_ms)} ms`));
  });
}

function card(endpoint, stats, deliveries, attempts) {
  const id = endpoint.id;
  const views = view(id);
  const health = endpoint.enabled ? (endpoint.failing_since ? `failing since ${when(endpoint.failing_since)}`
    : "enabled") : `disabled${endpoint.disabled_reason ? `: ${endpoint.disabled_reason}` : ""}`;
  const confirming = state.confirming === id;
  const note = state.notes.get(id);
  const act = (action, text, extra = {}) => element("button", { type: "button", textContent: text,
    "data-action": action, "data-endpoint-id": id, ...extra });
  return element("div", { class: "endpoint", "data-endpoint": id },
    element("h3", {}, element("span", { class: "url", textContent: endpoint.url }),
      element("span", { class: `health ${endpoint.enabled && !endpoint.failing_since ? "live" : "down"}`,
        textContent: health }),
      element("span", { class: "muted", textContent: `${id} · ${endpoint.channels.join(", ")}` +
        (endpoint.types.length ? ` · ${endpoint.types.join(", ")}` : "") })),
    element("div", { class: "actions" },
      act("edit", "Edit"), act("toggle", endpoint.enabled ? "Disable" : "Enable"), act("rotate", "Rotate secret"),
      act("test", "Send test event"), act("replay-failed", "Replay all failed"),
      confirming ? act("delete", "Confirm delete", { class: "danger" }) : act("ask-delete", "Delete"),
      confirming ? act("keep", "Keep") : null),
    note ? element("p", { class: `note ${note.ok ? "ok" : "failed"}`, textContent: note.text }) : null,
    element("p", { class: "backlog" }, `Backlog: ${stats.pending}${stats.pending_more ? "+" : ""} pending`,
      stats.next_attempt_at ? `, next attempt ${when(stats.next_attempt_at)}` : ""),
    charts(stats),
    element("h4", {}, "Deliveries ", filter(id, "deliveries", ["", "pending", "succeeded", "failed"],
      views.deliveries.status), pager(id, "deliveries", views.deliveries, deliveries.next_before)),
    deliveries.data.length ? table(["event", "channel / type", "status", "attempts", "last", "next attempt", ""],
      deliveryRows(deliveries.data)) : element("p", { class: "muted", textContent: "none" }),
    element("h4", {}, "Attempts ", filter(id, "attempts", ["", "succeeded", "failed"], views.attempts.status),
      pager(id, "attempts", views.attempts, attempts.next_before)),
    attempts.data.length ? table(["at", "event", "", "status", "latency"], attemptRows(attempts.data))
      : element("p", { class: "muted", textContent: "none yet" }));
}

export function stopEndpoints() {
  clearTimeout(state.timer);
  state.timer = null;
}

export async function refreshEndpoints() {
  clearTimeout(state.timer);
  if ($("view-endpoints").hidden || $("main").hidden) return;
  try {
    const endpoints = (await call("GET", "v1/webhooks/endpoints")).data;
    const cards = await Promise.all(endpoints.map(async (endpoint) => {
      const id = encodeURIComponent(endpoint.id);
      const views = view(endpoint.id);
      const [stats, deliveries, attempts] = await Promise.all([
        call("GET", `v1/webhooks/endpoints/${id}/stats${query({ minutes: MINUTES })}`),
        call("GET", `v1/webhooks/deliveries${query({ endpoint: endpoint.id, status: views.deliveries.status,
          before: views.deliveries.before.at(-1), limit: PAGE })}`),
        call("GET", `v1/webhooks/attempts${query({ endpoint: endpoint.id, status: views.attempts.status,
          before: views.attempts.before.at(-1), limit: PAGE })}`)]);
      return card(endpoint, stats, deliveries, attempts);
    }));
    $("webhooks").replaceChildren(...(cards.length ? cards
      : [element("p", { class: "muted", textContent: "no webhook endpoints" })]));
    showError("webhooks-error", null);
  } catch (error) {
    if (error.message === "signed out") return;
    showError("webhooks-error", error);
  }
  clearTimeout(state.timer); // an action's refresh may have overlapped this one: keep one timer
  state.timer = setTimeout(refreshEndpoints, REFRESH_MS);
}

async function act(button) {
  const id = button.dataset.endpointId;
  const path = `v1/webhooks/endpoints/${encodeURIComponent(id)}`;
  const action = button.dataset.action;
  button.disabled = true;
  try {
    if (action === "edit") {
      openForm(await call("GET", path));
    } else if (action === "toggle") {
      const current = await call("GET", path);
      await call("PATCH", path, { enabled: !current.enabled });
    } else if (action === "rotate") {
      showSecret(await call("POST", `${path}/rotate-secret`, {}), "Rotated the secret of");
    } else if (action === "test") {
      const sent = await call("POST", `${path}/test`);
      state.notes.set(id, { ok: sent.succeeded, text: `Test event ${sent.event_id}: ` +
        `${sent.status ?? sent.error} in ${Math.round(sent.latency_ms)} ms` +
        (sent.response ? ` — ${sent.response.slice(0, 200)}` : "") });
    } else if (action === "replay-failed") {
      const replayed = await call("POST", `${path}/replay`, { failed: true });
      state.notes.set(id, { ok: true, text: `${replayed.replayed} failed deliveries sent again` });
    } else if (action === "ask-delete") {
      state.confirming = id;
    } else if (action === "keep") {
      state.confirming = null;
    } else if (action === "delete") {
      state.confirming = null;
      await call("DELETE", path);
      state.views.delete(id);
    }
  } catch (error) {
    showError("webhooks-error", error);
  }
  await refreshEndpoints();
}

export function setUpEndpoints() {
  $("endpoint-new").addEventListener("click", () => openForm());
  $("endpoint-cancel").addEventListener("click", () => ($("endpoint-form").hidden = true));
  $("endpoint-form").addEventListener("submit", (event) => {
    event.preventDefault();
    save(event.target);
  });
  const webhooks = $("webhooks");
  webhooks.addEventListener("click", async (event) => {
    const action = event.target.closest("button[data-action]");
    if (action) act(action);
    const replay = event.target.closest("button[data-replay-delivery]");
    if (replay) {
      replay.disabled = true;
      try {
        await call("POST", `v1/webhooks/deliveries/${encodeURIComponent(replay.dataset.replayDelivery)}/replay`);
      } catch (error) {
        showError("webhooks-error", error);
      }
      await refreshEndpoints();
    }
    const page = event.target.closest("button[data-page]");
    if (page) {
      const views = view(page.dataset.endpointId)[page.dataset.kind];
      if (page.dataset.page === "older") views.before.push(Number(page.dataset.before));
      else if (views.before.length > 1) views.before.pop();
      await refreshEndpoints();
    }
  });
  webhooks.addEventListener("change", (event) => {
    const select = event.target.closest("select[data-filter]");
    if (!select) return;
    const views = view(select.dataset.endpointId)[select.dataset.filter];
    views.status = select.value;
    views.before = [null];
    refreshEndpoints();
  });
}
