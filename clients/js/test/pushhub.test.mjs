// Unit tests of pushhub.js in Node (node --test), with scripted EventSource, WebSocket and storage.
// The browser tests (tests/test_browser_client.py) cover the real ones against a real hub.
import { test } from "node:test";
import assert from "node:assert/strict";

import { PushHubEventSource, PushHubSocket, backoffDelay, shouldReconnect } from "../pushhub.js";

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
const NO_WAIT = { initial: 0, maximum: 0 };

class FakeEventSource {
  static instances = [];
  constructor(url, init) {
    this.url = new URL(url);
    this.init = init;
    this.readyState = 0;
    this.listeners = {};
    FakeEventSource.instances.push(this);
  }
  addEventListener(name, fn) { this.listeners[name] = fn; }
  close() { this.readyState = 2; }
  emit(name, data, lastEventId = "") {
    const message = { data: JSON.stringify(data), lastEventId };
    if (name === "message") this.onmessage(message);
    else this.listeners[name](message);
  }
}

class MemoryStorage {
  constructor() { this.items = new Map(); }
  getItem(key) { return this.items.get(key) ?? null; }
  setItem(key, value) { this.items.set(key, value); }
  removeItem(key) { this.items.delete(key); }
}

// A client, once it has opened its connection (the token, even a fixed one, is awaited first).
async function eventSource(options) {
  FakeEventSource.instances = [];
  const client = new PushHubEventSource({ url: "http://hub.test", EventSource: FakeEventSource, backoff: NO_WAIT, ...options });
  await tick();
  return client;
}

test("backoff grows, caps and jitters", () => {
  const low = { initial: 100, maximum: 1000, factor: 2, jitter: 0.5, random: () => 0 };
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((n) => backoffDelay(n, low)), [100, 200, 400, 800, 1000, 1000]);
  assert.equal(backoffDelay(0, { ...low, random: () => 1 }), 50);
});

test("close codes", () => {
  assert.deepEqual([4000, 4001, 4499, 1000, 1006, 1011].map(shouldReconnect), [true, true, true, true, true, true]);
  assert.deepEqual([4500, 4501, 4503, 1008, 1003].map(shouldReconnect), [false, false, false, false, false]);
});

test("the SSE cursor is stored and used as lastEventId by the next instance", async () => {
  const storage = new MemoryStorage();
  const seen = [];
  const first = await eventSource({ channels: ["a", "b"], types: "pay.*", storage, onEvent: (e, c) => seen.push([e.n, c]) });
  const source = FakeEventSource.instances[0];
  assert.deepEqual(source.url.searchParams.getAll("channel"), ["a", "b"]);
  assert.equal(source.url.searchParams.get("type"), "pay.*");
  assert.equal(source.url.searchParams.get("lastEventId"), null);
  source.emit("message", { n: 1 }, "a@x.1,b@y.0");
  assert.deepEqual(seen, [[1, "a@x.1,b@y.0"]]);
  assert.equal(storage.getItem(first.storageKey), "a@x.1,b@y.0");
  first.close();

  const second = await eventSource({ channels: ["b", "a"], types: ["pay.*"], storage, cursor: "ignored" });
  assert.equal(second.storageKey, first.storageKey);
  assert.equal(FakeEventSource.instances[0].url.searchParams.get("lastEventId"), "a@x.1,b@y.0");
  second.forgetCursor();
  assert.equal(storage.getItem(first.storageKey), null);
});

test("resets move the cursor; a closed EventSource is reopened from the latest cursor", async () => {
  const resets = [];
  const errors = [];
  const stream = await eventSource({ channels: "c", cursor: "x.3", storage: null, onReset: (r) => resets.push(r),
                               onError: (e) => errors.push(e.code) });
  const source = FakeEventSource.instances[0];
  assert.equal(source.url.searchParams.get("lastEventId"), "x.3");
  source.emit("reset", { channel: "c", reason: "history_trimmed", cursor: "x.9" }, "x.9");
  assert.deepEqual(resets, [{ channel: "c", reason: "history_trimmed", cursor: "x.9" }]);
  source.readyState = 0; // the browser retries by itself: nothing to do
  source.onerror();
  await tick();
  assert.equal(FakeEventSource.instances.length, 1);
  source.readyState = 2; // the browser gave up
  source.onerror();
  await tick();
  assert.equal(FakeEventSource.instances.length, 2);
  assert.equal(FakeEventSource.instances[1].url.searchParams.get("lastEventId"), "x.9");
  assert.equal(stream.reconnects, 1);
  assert.deepEqual(errors, ["stream_interrupted", "stream_interrupted"]);
});

test("disconnect advice: reconnect is left to the browser, refusal closes for good", async () => {
  const advice = [];
  const stream = await eventSource({ channels: "c", storage: null, onDisconnect: (a) => advice.push(a.code) });
  const source = FakeEventSource.instances[0];
  source.emit("disconnect", { code: 4000, reason: "shutdown", reconnect: true });
  assert.equal(stream.closed, false);
  source.emit("disconnect", { code: 4501, reason: "unauthorized", reconnect: false });
  assert.equal(stream.closed, true);
  assert.equal(source.readyState, 2);
  assert.deepEqual(advice, [4000, 4501]);
});

class FakeWebSocket {
  static instances = [];
  constructor(url, protocol) {
    this.url = url;
    this.protocol = protocol;
    this.readyState = 0;
    this.sent = [];
    FakeWebSocket.instances.push(this);
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code = 1000, reason = "") { this.readyState = 3; this.onclose({ code, reason }); }
  open() { this.readyState = 1; this.onopen(); }
  receive(message) { this.onmessage({ data: JSON.stringify(message) }); }
  drop(code, reason = "") { this.readyState = 3; this.onclose({ code, reason }); }
}

async function socket(options = {}) {
  FakeWebSocket.instances = [];
  const client = new PushHubSocket({ url: "https://hub.test/", WebSocket: FakeWebSocket, backoff: NO_WAIT, ...options });
  await tick();
  return client;
}

test("the socket subscribes, publishes and resumes each channel from its cursor", async () => {
  const events = [];
  const closes = [];
  const hub = await socket({ key: "k", onClose: (info) => closes.push(info) });
  const ws = FakeWebSocket.instances[0];
  assert.equal(ws.url, "wss://hub.test/v1/ws?key=k");
  assert.equal(ws.protocol, "pushhub.json");
  const sub = hub.subscribe("room", { types: ["chat.*"], onEvent: (e, cursor) => events.push([e.n, cursor]) });
  const publishing = hub.publish("room", { type: "chat.message", data: 1 });
  ws.open();
  const [subscribe, publish] = ws.sent;
  assert.deepEqual(subscribe, { op: "subscribe", channel: "room", types: ["chat.*"], id: subscribe.id });
  assert.equal(publish.op, "publish");
  ws.receive({ op: "subscribed", id: subscribe.id, channel: "room", cursor: "e.0" });
  ws.receive({ op: "published", id: publish.id, channel: "room", event_id: "evt_1", epoch: "e", offset: 1, cursor: "e.1" });
  ws.receive({ op: "event", channel: "room", cursor: "e.1", event: { n: 1 } });
  assert.deepEqual((await sub.ready).cursor, "e.0");
  assert.deepEqual(await publishing, { id: "evt_1", channel: "room", epoch: "e", offset: 1, cursor: "e.1" });
  assert.deepEqual(events, [[1, "e.1"]]);

  const lost = hub.publish("room", { type: "chat.message", data: 2 });
  ws.drop(4000, "shutdown");
  await assert.rejects(lost, (error) => error.code === "connection_closed");
  await tick();
  const again = FakeWebSocket.instances[1];
  again.open();
  assert.deepEqual(again.sent[0], { op: "subscribe", channel: "room", types: ["chat.*"], cursor: "e.1", id: again.sent[0].id });
  assert.equal(hub.reconnects, 1);

  again.drop(4501, "unauthorized");
  await tick();
  assert.equal(FakeWebSocket.instances.length, 2);
  assert.equal(hub.closed, true);
  assert.deepEqual(closes.map((c) => [c.code, c.reconnect]), [[4000, true], [4501, false]]);
});

test("a refused subscription rejects ready; hub errors keep their code", async () => {
  const hub = await socket();
  const ws = FakeWebSocket.instances[0];
  ws.open();
  const sub = hub.subscribe("bad name");
  ws.receive({ op: "error", id: ws.sent[0].id, code: "bad_channel", message: "invalid channel name" });
  await assert.rejects(sub.ready, (error) => error.code === "bad_channel");
  assert.equal(hub.subscriptions.has("bad name"), false);
  const publishing = hub.publish("c", { type: "t" });
  ws.receive({ op: "error", id: ws.sent[1].id, code: "forbidden", message: "no" });
  await assert.rejects(publishing, (error) => error.code === "forbidden" && error.message === "no");
  hub.close();
  assert.equal(hub.closed, true);
});

test("a token function is asked again for every connection, and on disconnect advice", async () => {
  let issued = 0;
  const token = async () => `t${++issued}`;
  const stream = await eventSource({ channels: "c", storage: null, token });
  const first = FakeEventSource.instances[0];
  assert.equal(first.url.searchParams.get("token"), "t1");
  first.emit("message", { n: 1 }, "x.1");
  first.emit("disconnect", { code: 4002, reason: "token_expired", reconnect: true });
  assert.equal(first.readyState, 2, "the stale URL is not reused");
  await tick();
  await tick();
  const second = FakeEventSource.instances[1];
  assert.equal(second.url.searchParams.get("token"), "t2");
  assert.equal(second.url.searchParams.get("lastEventId"), "x.1");
  stream.close();

  const hub = await socket({ token: "fixed" });
  assert.equal(FakeWebSocket.instances[0].url, "wss://hub.test/v1/ws?token=fixed");
  hub.close();
});

test("closing before the token arrives opens nothing", async () => {
  FakeEventSource.instances = [];
  const stream = new PushHubEventSource({ url: "http://hub.test", channels: "c", storage: null,
                                          EventSource: FakeEventSource, token: async () => "late" });
  stream.close();
  await tick();
  assert.equal(FakeEventSource.instances.length, 0);
});
