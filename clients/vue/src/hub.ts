/**
 * The connection: `createHub()` makes one `Centrifuge` client per app and mirrors its life in
 * refs; `provideHub()` / `app.use(hub)` make it available below; `useHub()` finds it.
 *
 * Guarantees:
 * - One SDK client per hub; channels are shared through the hub's registry (see `channel.ts`),
 *   so no state lives in module globals: a hot-reloaded module leaves nothing behind.
 * - `dispose()` removes every subscription, disconnects and detaches every listener; it runs
 *   when the app that installed the hub unmounts, or when the scope of `provideHub(options)`
 *   is disposed. A disposed hub stays disconnected.
 * - Nothing touches `window` before `createHub()` is called (SSR-safe to import).
 */
import { Centrifuge } from 'centrifuge';
import { Centrifuge as CentrifugeProtobuf } from 'centrifuge/build/protobuf';
import type {
  ConnectedContext,
  ConnectingContext,
  DisconnectedContext,
  ErrorContext,
  Options as CentrifugeOptions,
  TransportEndpoint,
  TransportName,
} from 'centrifuge';
import {
  getCurrentScope,
  hasInjectionContext,
  inject,
  onScopeDispose,
  provide,
  shallowRef,
  type App,
  type InjectionKey,
  type ShallowRef,
} from 'vue';

import { ChannelRegistry } from './registry.js';
import type { DataCodec, HubProtocol } from './types.js';

/** Connection state, as the SDK names it. */
export type HubState = 'disconnected' | 'connecting' | 'connected';

/** Why the connection was last lost or closed. */
export interface DisconnectReason {
  /** SDK code (0-99), or the server's disconnect code (3000-4999). */
  code: number;
  reason: string;
  /** True when the SDK is reconnecting by itself (the `connecting` state). */
  reconnect: boolean;
  at: Date;
}

/** The transports tried, in order, when `transports` is not given. */
export const DEFAULT_TRANSPORTS: readonly TransportName[] = ['websocket', 'http_stream', 'sse'];

export interface HubOptions {
  /**
   * Base URL of the hub, e.g. `http://127.0.0.1:8000` (`ws:`/`wss:` work too). Default: the
   * page's origin, so an app served by the hub needs nothing here.
   */
  url?: string;
  /**
   * Transports tried in order until one connects; the SDK keeps the first one that opened.
   * Default `['websocket', 'http_stream', 'sse']`. Names use the hub's standard paths;
   * pass `TransportEndpoint`s for other paths.
   */
  transports?: ReadonlyArray<TransportName | TransportEndpoint>;
  /** A connection token (JWT) for the first connect; use `getToken` when it expires. */
  token?: string;
  /**
   * Returns a connection token: called before connecting when there is no token, and
   * again whenever the hub says the token expired (refresh).
   */
  getToken?: () => Promise<string>;
  /**
   * Connect as soon as the hub is created. Default `true`; otherwise call `connect()`. On a
   * server (SSR) pass `false`: the composables never subscribe there anyway.
   */
  immediate?: boolean;
  /**
   * Wire encoding. `'json'` (default) or `'protobuf'` (the SDK's Protobuf build: binary
   * frames over WebSocket and HTTP streaming; SSE is JSON-only and is skipped).
   */
  protocol?: HubProtocol;
  /**
   * How payloads are encoded and decoded. Default: as is over JSON; over Protobuf, UTF-8 JSON
   * in bytes (so JSON clients, Protobuf clients and the server API share channels). Pass
   * your own to put, e.g., Protobuf messages of your schema in the payload.
   */
  codec?: DataCodec;
  /** Further options of the `centrifuge` SDK (`debug`, `websocket`, `fetch`, delays...). */
  centrifuge?: Partial<CentrifugeOptions>;
}

type ReadonlyRef<T> = Readonly<ShallowRef<T>>;

export interface Hub {
  /** The SDK client, for what the composables do not cover (rpc, history of any channel...). */
  readonly client: Centrifuge;
  /** Wire encoding of this hub's connection. */
  readonly protocol: HubProtocol;
  /** The payload codec the composables use. */
  readonly codec: DataCodec;
  readonly state: ReadonlyRef<HubState>;
  /** Transport of the current connection, or the last one used; `null` before the first. */
  readonly transport: ReadonlyRef<TransportName | null>;
  /** Client id the hub gave this connection, `null` while not connected; new on every reconnect. */
  readonly clientId: ReadonlyRef<string | null>;
  /** The last time the connection was lost or closed, `null` while it never was. */
  readonly lastDisconnect: ReadonlyRef<DisconnectReason | null>;
  /** Connection attempts that failed since the last successful connect. */
  readonly reconnectAttempts: ReadonlyRef<number>;
  /** How many times a connection was lost and the SDK started reconnecting. */
  readonly reconnects: ReadonlyRef<number>;
  /** The last connection-level error (transport, token, connect), cleared on connect. */
  readonly error: ReadonlyRef<ErrorContext | null>;
  /** True once `dispose()` ran. */
  readonly disposed: ReadonlyRef<boolean>;
  connect(): void;
  disconnect(): void;
  /** Removes every subscription and disconnects for good. */
  dispose(): void;
  /** Vue plugin: `app.use(hub)` provides the hub and disposes it when the app unmounts. */
  install(app: App): void;
  /** @internal channel subscriptions shared by the composables. */
  readonly registry: ChannelRegistry;
}

export const HUB_KEY: InjectionKey<Hub> = Symbol('hub');

const identity = (data: unknown): unknown => data;

/** Payloads as they are: the JSON protocol's SDK already parsed them. */
export const JSON_CODEC: DataCodec = { encode: identity, decode: identity };

/**
 * UTF-8 JSON in bytes, the default over Protobuf: what a JSON client or the server API
 * published arrives as its JSON text's bytes.
 */
export const JSON_BYTES_CODEC: DataCodec = {
  encode: (data) => new TextEncoder().encode(JSON.stringify(data)),
  decode: (data) => {
    if (!(data instanceof Uint8Array)) return data;
    return data.length === 0 ? null : JSON.parse(new TextDecoder().decode(data));
  },
};

/** Endpoints for `url` and transport names, in the order given. */
export function hubEndpoints(
  url: string,
  transports: ReadonlyArray<TransportName | TransportEndpoint>,
): TransportEndpoint[] {
  const base = new URL(url);
  const secure = base.protocol === 'https:' || base.protocol === 'wss:';
  const http = `${secure ? 'https' : 'http'}://${base.host}`;
  const ws = `${secure ? 'wss' : 'ws'}://${base.host}`;
  return transports.map((t) => {
    if (typeof t !== 'string') return t;
    switch (t) {
      case 'websocket':
        return { transport: t, endpoint: `${ws}/connection/websocket` };
      case 'http_stream':
        return { transport: t, endpoint: `${http}/connection/http_stream` };
      case 'sse':
        return { transport: t, endpoint: `${http}/connection/sse` };
      default:
        throw new Error(`transport ${t} needs an explicit endpoint ({ transport, endpoint })`);
    }
  });
}

function defaultUrl(): string {
  if (typeof window === 'undefined' || !window.location?.origin?.startsWith('http')) {
    throw new Error('createHub: pass `url` (there is no page origin to default to)');
  }
  return window.location.origin;
}

export function createHub(options: HubOptions = {}): Hub {
  const url = options.url ?? defaultUrl();
  const endpoints = hubEndpoints(url, options.transports ?? DEFAULT_TRANSPORTS);
  const httpBase = new URL(url);
  const emulation = `${httpBase.protocol === 'https:' || httpBase.protocol === 'wss:' ? 'https' : 'http'}://${httpBase.host}/emulation`;

  const sdkOptions: Partial<CentrifugeOptions> = {
    emulationEndpoint: emulation,
    ...options.centrifuge,
  };
  if (options.token !== undefined) sdkOptions.token = options.token;
  if (options.getToken) {
    const getToken = options.getToken;
    sdkOptions.getToken = () => getToken();
  }
  // A single endpoint is the SDK's plain WebSocket mode: no emulation bookkeeping.
  const only = endpoints.length === 1 ? endpoints[0] : undefined;
  const protocol: HubProtocol = options.protocol ?? 'json';
  if (protocol !== 'json' && protocol !== 'protobuf') throw new Error(`createHub: unknown protocol ${String(protocol)}`);
  // The Protobuf build is the same class with a Protobuf codec; its declarations are a
  // separate copy (private members make them nominally distinct), hence the cast.
  const Sdk = (protocol === 'protobuf' ? CentrifugeProtobuf : Centrifuge) as unknown as typeof Centrifuge;
  const client =
    only && only.transport === 'websocket' ? new Sdk(only.endpoint, sdkOptions) : new Sdk(endpoints, sdkOptions);
  const codec = options.codec ?? (protocol === 'protobuf' ? JSON_BYTES_CODEC : JSON_CODEC);

  const state = shallowRef<HubState>('disconnected');
  const transport = shallowRef<TransportName | null>(null);
  const clientId = shallowRef<string | null>(null);
  const lastDisconnect = shallowRef<DisconnectReason | null>(null);
  const reconnectAttempts = shallowRef(0);
  const reconnects = shallowRef(0);
  const error = shallowRef<ErrorContext | null>(null);
  const disposed = shallowRef(false);

  const onConnecting = (ctx: ConnectingContext): void => {
    // Code 0 is our own connect() call; anything else means a connection was lost.
    if (ctx.code !== 0) {
      if (state.value === 'connected') reconnects.value += 1;
      lastDisconnect.value = { code: ctx.code, reason: ctx.reason, reconnect: true, at: new Date() };
      clientId.value = null;
    }
    state.value = 'connecting';
  };
  const onConnected = (ctx: ConnectedContext): void => {
    transport.value = ctx.transport as TransportName;
    clientId.value = ctx.client;
    reconnectAttempts.value = 0;
    error.value = null;
    state.value = 'connected';
  };
  const onDisconnected = (ctx: DisconnectedContext): void => {
    lastDisconnect.value = { code: ctx.code, reason: ctx.reason, reconnect: false, at: new Date() };
    clientId.value = null;
    state.value = 'disconnected';
  };
  const onError = (ctx: ErrorContext): void => {
    error.value = ctx;
    if (state.value === 'connecting' && (ctx.type === 'transport' || ctx.type === 'connect')) {
      reconnectAttempts.value += 1;
    }
  };
  client.on('connecting', onConnecting);
  client.on('connected', onConnected);
  client.on('disconnected', onDisconnected);
  client.on('error', onError);

  const registry = new ChannelRegistry(client, codec);

  const hub: Hub = {
    client,
    protocol,
    codec,
    state,
    transport,
    clientId,
    lastDisconnect,
    reconnectAttempts,
    reconnects,
    error,
    disposed,
    registry,
    connect() {
      if (disposed.value) throw new Error('hub: connect() after dispose()');
      client.connect();
    },
    disconnect() {
      client.disconnect();
    },
    dispose() {
      if (disposed.value) return;
      disposed.value = true;
      registry.dispose();
      client.disconnect();
      client.removeAllListeners();
      state.value = 'disconnected';
    },
    install(app: App) {
      app.provide(HUB_KEY, hub);
      app.onUnmount(() => hub.dispose());
    },
  };

  if (options.immediate ?? true) client.connect();
  return hub;
}

/**
 * Provides a hub to the calling component's descendants. Given options, it creates the hub
 * and disposes it with the component; given a hub, it only provides it.
 */
export function provideHub(hubOrOptions: Hub | HubOptions = {}): Hub {
  const owned = !isHub(hubOrOptions);
  const hub = isHub(hubOrOptions) ? hubOrOptions : createHub(hubOrOptions);
  provide(HUB_KEY, hub);
  if (owned && getCurrentScope()) onScopeDispose(() => hub.dispose());
  return hub;
}

/** The hub provided above the calling component (or `app.use(hub)`); throws when none is. */
export function useHub(): Hub {
  const hub = hasInjectionContext() ? inject(HUB_KEY, null) : null;
  if (!hub) {
    throw new Error(
      'useHub: no hub provided. Call app.use(createHub(...)) or provideHub() in an ancestor, ' +
        'or pass { hub } to the composable.',
    );
  }
  return hub;
}

function isHub(value: Hub | HubOptions): value is Hub {
  return 'client' in value && 'registry' in value;
}
