// pushhub browser client: a dependency-free ES module.
//
//   import { PushHubEventSource, PushHubSocket } from "/v1/client/pushhub.js";
//
// PushHubEventSource follows channels over Server-Sent Events and keeps its cursor in
// sessionStorage, so a reconnect, a hub restart and even a page reload resume exactly.
// PushHubSocket subscribes, publishes and reconnects over one WebSocket, resuming each channel
// from its own cursor. Both report `reset` (the resume could not be exact) and the hub's
// disconnect advice. Types: /v1/client/pushhub.d.ts.

const DEFAULT_BACKOFF = { initial: 250, maximum: 10000, factor: 2, jitter: 0.5, random: Math.random };

/** An error reported by the hub (`code` is its error code) or by the client itself. */
export class PushHubError extends Error {
  constructor(message, code = "client_error") {
    super(message);
    this.name = "PushHubError";
    this.code = code;
  }
}

/** Milliseconds to wait before reconnect attempt `attempt` (0-based): exponential, capped, jittered. */
export function backoffDelay(attempt, backoff = DEFAULT_BACKOFF) {
  const b = { ...DEFAULT_BACKOFF, ...backoff };
  const base = Math.min(b.maximum, b.initial * b.factor ** Math.min(attempt, 64));
  return base * (1 - b.jitter * b.random());
}

/** Whether a close code (WebSocket) or disconnect code (SSE) invites a reconnect. */
export function shouldReconnect(code) {
  if (code >= 4000 && code < 5000) return code < 4500;
  return code !== 1003 && code !== 1008 && code !== 1009;
}

function defaultStorage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // storage disabled by the browser's privacy settings
  }
}

// The hub's base URL without a trailing slash: `url` resolved against the page (default: its origin).
function baseUrl(url) {
  const resolved = new URL(url || "/", globalThis.location?.href);
  return (resolved.origin + resolved.pathname).replace(/\/+$/, "");
}

// The token option's current value: the string itself, or what the function returns (maybe a promise).
function currentToken(token) {
  return Promise.resolve(typeof token === "function" ? token() : token);
}

function list(value) {
  if (value == null) return [];
  return Array.isArray(value) ? [...value] : [value];
}

// What both clients share: opening a connection with a fresh token, and reopening it later.
class Reconnecting {
  constructor(options) {
    this.options = options;
    this.closed = false;
    this.reconnects = 0;
    this._attempt = 0;
    this._timer = null;
  }

  _connect() {
    currentToken(this.options.token).then(
      (token) => {
        if (!this.closed) this._open(token);
      },
      (error) => {
        this.options.onError?.(new PushHubError(`no token: ${error}`, "token_error"));
        this._reconnectLater();
      },
    );
  }

  _reconnectLater() {
    if (this.closed) return;
    this._timer = setTimeout(() => {
      this.reconnects += 1;
      this._connect();
    }, backoffDelay(this._attempt++, this.options.backoff));
  }
}

/**
 * Follows one or more channels over SSE (`GET /v1/sse`).
 *
 * The cursor of everything delivered is stored under `storageKey` in `storage` (sessionStorage by
 * default; pass `null` to keep it in memory only). On the first connect it is sent as the
 * `lastEventId` query parameter; EventSource itself sends `Last-Event-ID` on its own reconnects.
 * When the browser gives up (EventSource closed), the client opens a new one after a backoff.
 */
export class PushHubEventSource extends Reconnecting {
  constructor(options) {
    super(options);
    this.url = baseUrl(options.url);
    this.channels = list(options.channels);
    this.types = list(options.types);
    if (this.channels.length === 0) throw new PushHubError("subscribe to at least one channel");
    this.storage = options.storage === undefined ? defaultStorage() : options.storage;
    this.storageKey = options.storageKey ??
      `pushhub:cursor:${this.url}|${[...this.channels].sort().join(",")}|${[...this.types].sort().join(",")}`;
    this.cursor = this._load() ?? options.cursor ?? null;
    this.source = null;
    this._connect();
  }

  _load() {
    try {
      return this.storage?.getItem(this.storageKey) ?? null;
    } catch {
      return null;
    }
  }

  _remember(cursor) {
    if (!cursor) return;
    this.cursor = cursor;
    try {
      this.storage?.setItem(this.storageKey, cursor);
    } catch {
      // quota exceeded or storage disabled: the in-memory cursor still resumes reconnects
    }
  }

  _streamUrl(token) {
    const url = new URL(this.url + "/v1/sse");
    for (const channel of this.channels) url.searchParams.append("channel", channel);
    for (const type of this.types) url.searchParams.append("type", type);
    if (this.cursor) url.searchParams.set("lastEventId", this.cursor);
    if (token) url.searchParams.set("token", token);
    return url.href;
  }

  _open(token) {
    const Source = this.options.EventSource ?? globalThis.EventSource;
    const source = new Source(this._streamUrl(token), { withCredentials: Boolean(this.options.withCredentials) });
    this.source = source;
    source.onopen = () => {
      this._attempt = 0;
      this.options.onOpen?.();
    };
    source.onmessage = (message) => {
      this._remember(message.lastEventId);
      this.options.onEvent?.(JSON.parse(message.data), message.lastEventId);
    };
    source.addEventListener("reset", (message) => {
      const reset = JSON.parse(message.data);
      this._remember(reset.cursor);
      this.options.onReset?.(reset);
    });
    source.addEventListener("disconnect", (message) => {
      const advice = JSON.parse(message.data);
      this.options.onDisconnect?.(advice);
      if (!advice.reconnect) {
        this.close();
      } else if (typeof this.options.token === "function") {
        // The browser would reconnect with the same URL, hence the same (maybe expired) token.
        source.close();
        this._reconnectLater();
      }
    });
    source.onerror = () => {
      if (this.closed || source !== this.source) return;
      this.options.onError?.(new PushHubError("the event stream was interrupted", "stream_interrupted"));
      if (source.readyState === 2) {
        source.close();
        this._reconnectLater();
      }
    };
  }

  /** Stop for good: the stored cursor stays, so a new instance (or the next page) resumes. */
  close() {
    this.closed = true;
    clearTimeout(this._timer);
    this.source?.close();
  }

  /** Drop the stored cursor: the next instance starts from new events. */
  forgetCursor() {
    this.cursor = null;
    try {
      this.storage?.removeItem(this.storageKey);
    } catch {
      // nothing stored
    }
  }
}

/**
 * One WebSocket to the hub (`/v1/ws`, subprotocol `pushhub.json`) carrying any number of channel
 * subscriptions and publishes. It reconnects with backoff on any close the hub marks resumable
 * (4000-4499) or on a network failure, and resubscribes each channel from its last cursor.
 */
export class PushHubSocket extends Reconnecting {
  constructor(options = {}) {
    super(options);
    const url = new URL(baseUrl(options.url) + "/v1/ws");
    url.protocol = url.protocol === "https:" ? "wss:" : url.protocol === "http:" ? "ws:" : url.protocol;
    if (options.key) url.searchParams.set("key", options.key);
    this.url = url.href;
    this.subscriptions = new Map();
    this.socket = null;
    this._pending = new Map();
    this._outbox = [];
    this._nextId = 1;
    this._connect();
  }

  get open() {
    return this.socket?.readyState === 1;
  }

  _open(token) {
    const url = new URL(this.url);
    if (token) url.searchParams.set("token", token);
    const Socket = this.options.WebSocket ?? globalThis.WebSocket;
    const socket = new Socket(url.href, "pushhub.json");
    this.socket = socket;
    socket.onopen = () => {
      this._attempt = 0;
      for (const sub of this.subscriptions.values()) this._sendSubscribe(sub);
      const outbox = this._outbox;
      this._outbox = [];
      for (const message of outbox) socket.send(message);
      this.options.onOpen?.();
    };
    socket.onmessage = (message) => this._receive(JSON.parse(message.data));
    socket.onerror = () => this.options.onError?.(new PushHubError("WebSocket error", "socket_error"));
    socket.onclose = (event) => this._closed(socket, event);
  }

  _request(message) {
    const id = this._nextId++;
    const text = JSON.stringify({ ...message, id });
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject });
      if (this.open) this.socket.send(text);
      else this._outbox.push(text);
    });
  }

  _sendSubscribe(sub) {
    const message = { op: "subscribe", channel: sub.channel, types: sub.types };
    if (sub.cursor) message.cursor = sub.cursor;
    this._request(message).then(
      (reply) => sub._resolve(reply),
      (error) => {
        if (error.code !== "connection_closed") {
          this.subscriptions.delete(sub.channel);
          sub._reject(error);
        }
      },
    );
  }

  _receive(message) {
    const sub = this.subscriptions.get(message.channel);
    switch (message.op) {
      case "event":
        if (!sub) return;
        sub.cursor = message.cursor;
        sub.onEvent?.(message.event, message.cursor);
        return;
      case "reset":
        if (!sub) return;
        sub.cursor = message.cursor;
        sub.onReset?.({ channel: message.channel, reason: message.reason, cursor: message.cursor });
        return;
      case "subscribed":
        if (sub) sub.cursor = message.cursor;
        break;
      default:
        break;
    }
    const pending = this._pending.get(message.id);
    if (!pending) return;
    this._pending.delete(message.id);
    if (message.op === "error") pending.reject(new PushHubError(message.message, message.code));
    else pending.resolve(message);
  }

  _closed(socket, event) {
    if (socket !== this.socket) return;
    for (const pending of this._pending.values()) {
      pending.reject(new PushHubError("the connection closed before the hub answered", "connection_closed"));
    }
    this._pending.clear();
    const reconnect = !this.closed && shouldReconnect(event.code);
    this.options.onClose?.({ code: event.code, reason: event.reason, reconnect });
    if (!reconnect) {
      this.closed = true;
      return;
    }
    this._reconnectLater();
  }

  /**
   * Follow `channel` (only events whose type matches one of `types`, globs like `payment.*`).
   * Without `cursor`, delivery starts with the next event. `ready` resolves once the hub accepted.
   */
  subscribe(channel, options = {}) {
    if (this.subscriptions.has(channel)) throw new PushHubError(`already subscribed to ${channel}`);
    const sub = new SocketSubscription(this, channel, options);
    this.subscriptions.set(channel, sub);
    if (this.open) this._sendSubscribe(sub);
    return sub;
  }

  async _unsubscribe(sub) {
    if (this.subscriptions.get(sub.channel) !== sub) return;
    this.subscriptions.delete(sub.channel);
    if (this.open) await this._request({ op: "unsubscribe", channel: sub.channel });
  }

  /** Publish one event ({type, data?, id?, time?, meta?}); resolves with where it landed. */
  async publish(channel, event) {
    const reply = await this._request({ op: "publish", channel, event });
    return { id: reply.event_id, channel: reply.channel, epoch: reply.epoch, offset: reply.offset, cursor: reply.cursor };
  }

  async ping() {
    await this._request({ op: "ping" });
  }

  close() {
    this.closed = true;
    clearTimeout(this._timer);
    this.socket?.close(1000, "client closed");
  }
}

class SocketSubscription {
  constructor(socket, channel, options) {
    this.socket = socket;
    this.channel = channel;
    this.types = list(options.types);
    this.cursor = options.cursor ?? null;
    this.onEvent = options.onEvent;
    this.onReset = options.onReset;
    this.ready = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    this.ready.catch(() => {}); // a rejection is also reported through ready; avoid unhandled noise
  }

  unsubscribe() {
    return this.socket._unsubscribe(this);
  }
}
