// Type declarations for pushhub.js, the pushhub browser client.

/** An event as the hub delivers it. */
export interface PushHubEvent<T = unknown> {
  id: string;
  channel: string;
  type: string;
  /** RFC 3339, UTC, millisecond precision. */
  time: string;
  data: T;
  meta: Record<string, unknown>;
  epoch: string;
  offset: number;
}

/** The resume on `channel` could not be exact; delivery continues from `cursor`. */
export interface PushHubReset {
  channel: string;
  reason: "history_trimmed" | "epoch_changed" | "bad_cursor" | string;
  cursor: string;
}

/** Why the hub ended a stream; `reconnect` says whether coming back is worthwhile. */
export interface PushHubDisconnect {
  code: number;
  reason: string;
  reconnect: boolean;
}

export interface Backoff {
  /** First delay, in milliseconds (default 250). */
  initial?: number;
  /** Largest delay, in milliseconds (default 10000). */
  maximum?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Largest random fraction taken off a delay (default 0.5). */
  jitter?: number;
  /** Source of randomness in [0, 1) (default Math.random). */
  random?: () => number;
}

/**
 * A bearer token sent as the `token` query parameter: a string, or a function asked again before
 * every connection (so an expired short-lived token is replaced when the hub closes the stream
 * with `token_expired`).
 */
export type Token = string | (() => string | Promise<string>);

/** The minimal Storage the SSE client needs: sessionStorage, localStorage or your own. */
export interface CursorStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export class PushHubError extends Error {
  constructor(message: string, code?: string);
  /** The hub's error code (e.g. "bad_event", "forbidden") or the client's own. */
  code: string;
}

export function backoffDelay(attempt: number, backoff?: Backoff): number;
export function shouldReconnect(code: number): boolean;

export interface EventSourceOptions<T = unknown> {
  /** The hub's base URL (default: this page's origin). */
  url?: string;
  channels: string | string[];
  /** Only events whose type matches one of these globs, e.g. "payment.*". */
  types?: string | string[];
  /** Where to start when nothing is stored yet (a cursor from the hub). */
  cursor?: string;
  /** Where the cursor is kept (default sessionStorage; null keeps it in memory only). */
  storage?: CursorStorage | null;
  /** The storage key (default derived from the URL, channels and types). */
  storageKey?: string;
  /** Send cookies cross-origin (the hub's session cookie; its `--cors-origin` must allow the page). */
  withCredentials?: boolean;
  token?: Token;
  backoff?: Backoff;
  onEvent?: (event: PushHubEvent<T>, cursor: string) => void;
  onReset?: (reset: PushHubReset) => void;
  onDisconnect?: (advice: PushHubDisconnect) => void;
  onOpen?: () => void;
  onError?: (error: PushHubError) => void;
  /** An EventSource implementation (default: the browser's). */
  EventSource?: typeof EventSource;
}

export class PushHubEventSource<T = unknown> {
  constructor(options: EventSourceOptions<T>);
  readonly url: string;
  readonly channels: string[];
  readonly types: string[];
  readonly storageKey: string;
  /** The position of everything delivered so far, or null before the first event. */
  readonly cursor: string | null;
  readonly closed: boolean;
  /** EventSources opened after the first one (after the browser gave up on one). */
  readonly reconnects: number;
  readonly source: EventSource | null;
  close(): void;
  forgetCursor(): void;
}

export interface Published {
  id: string;
  channel: string;
  epoch: string;
  offset: number;
  cursor: string;
}

export interface EventDraft<T = unknown> {
  type: string;
  data?: T;
  id?: string;
  time?: string;
  meta?: Record<string, unknown>;
}

export interface SocketOptions {
  /** The hub's base URL, http(s) or ws(s) (default: this page's origin). */
  url?: string;
  /** A publisher key, sent as the `key` query parameter (needed to publish when the hub has keys). */
  key?: string;
  token?: Token;
  backoff?: Backoff;
  onOpen?: () => void;
  onClose?: (info: PushHubDisconnect) => void;
  onError?: (error: PushHubError) => void;
  /** A WebSocket implementation (default: the browser's). */
  WebSocket?: typeof WebSocket;
}

export interface SubscribeOptions<T = unknown> {
  types?: string | string[];
  cursor?: string;
  onEvent?: (event: PushHubEvent<T>, cursor: string) => void;
  onReset?: (reset: PushHubReset) => void;
}

export interface SocketSubscription {
  readonly channel: string;
  readonly types: string[];
  /** The position on this channel of what was delivered (resubscribes resume from it). */
  readonly cursor: string | null;
  /** Resolves with the hub's `subscribed` reply; rejects with a PushHubError if refused. */
  readonly ready: Promise<{ op: "subscribed"; channel: string; cursor: string }>;
  unsubscribe(): Promise<void>;
}

export class PushHubSocket {
  constructor(options?: SocketOptions);
  readonly url: string;
  readonly open: boolean;
  readonly closed: boolean;
  readonly reconnects: number;
  readonly subscriptions: ReadonlyMap<string, SocketSubscription>;
  subscribe<T = unknown>(channel: string, options?: SubscribeOptions<T>): SocketSubscription;
  publish<T = unknown>(channel: string, event: EventDraft<T>): Promise<Published>;
  ping(): Promise<void>;
  close(): void;
}
