/**
 * `useChannel`: a channel of the hub as refs, for the lifetime of the calling scope.
 *
 * Guarantees:
 * - Subscribed while at least one consumer holds the channel; the subscription is shared
 *   between components of the same hub and released when the scope is disposed (unmount).
 *   Subscription options of all consumers are merged (see `registry.ts`).
 * - `messages` never holds more than `max` publications (oldest dropped first), in arrival
 *   order. They live in a ring buffer: a publication costs no copy of the list; the array
 *   is built when `messages` is read after a change, so a burst read by one render is
 *   built once. With `history`, recent publications are loaded on subscribe (and again
 *   after a resubscribe that could not recover), merged by offset without duplicates.
 * - A reactive `name` switches channels: the old one is released, `messages` starts over;
 *   `null`/`undefined` holds no channel.
 * - `parse` sees every payload (live and history); what it throws goes to `error`
 *   (`PARSE_ERROR`) and the publication is skipped.
 * - During server-side rendering nothing is subscribed; the client subscribes when it runs.
 */
import type { PublishResult, SubscribedContext, SubscriptionOptions } from 'centrifuge';
import {
  customRef,
  getCurrentInstance,
  getCurrentScope,
  inject,
  onScopeDispose,
  shallowRef,
  ssrContextKey,
  toValue,
  watch,
  type MaybeRefOrGetter,
  type Ref,
  type ShallowRef,
} from 'vue';

import { useHub, type Hub } from './hub.js';
import { normalizeInfo, parseError, type SharedChannel } from './registry.js';
import { Ring } from './ring.js';
import type { ChannelError, ChannelState, Message } from './types.js';

export interface UseChannelOptions<T = unknown> {
  /**
   * Most publications kept in `messages`. Default 100; 0 keeps none (only `last`). A ref or
   * getter may change it: a smaller `max` drops the oldest at once.
   */
  max?: MaybeRefOrGetter<number>;
  /** Load this many recent publications from history on subscribe. Default 0. */
  history?: number;
  /**
   * Subscribe at once (and on every change of `name`). Default `true`; otherwise call
   * `subscribe()`, after which name changes are followed.
   */
  immediate?: boolean;
  /**
   * Validates and types each payload (a zod `schema.parse`, a valibot `v.parser(schema)`,
   * any `(data: unknown) => T`). When it throws, `error` gets `PARSE_ERROR` and the
   * publication is skipped.
   */
  parse?: (data: unknown) => T;
  /** Called for each publication, after `messages` and `last` are updated. */
  onMessage?: (message: Message<T>) => void;
  /** The hub to use instead of the provided one. */
  hub?: Hub;
  /**
   * Options of the SDK subscription (`getToken` for private channels, `recoverable`,
   * `joinLeave`, ...), merged with those of other consumers of the channel: any consumer's
   * `getToken` is used; a different value for another option throws.
   */
  subscription?: SubscriptionOptions;
}

type ReadonlyRef<T> = Readonly<Ref<T>>;

export interface UseChannelReturn<T> {
  /** The recent publications, oldest first, at most `max`. */
  messages: ReadonlyRef<Message<T>[]>;
  /** The latest publication. */
  last: ReadonlyRef<Message<T> | undefined>;
  state: ReadonlyRef<ChannelState>;
  /** Result of the last recovery attempt (`null` before any). */
  recovered: ReadonlyRef<boolean | null>;
  error: ReadonlyRef<ChannelError | null>;
  /** Publishes `data` as this client (the namespace must allow client publishing). */
  publish: (data: T) => Promise<PublishResult>;
  /** Takes the channel (when `immediate: false`, or after `unsubscribe()`). */
  subscribe: () => void;
  /** Lets go of the channel; others sharing it stay subscribed. */
  unsubscribe: () => void;
  /** Empties `messages`. */
  clear: () => void;
}

const DEFAULT_MAX = 100;

/** @internal True inside a component being rendered on the server (`renderToString`). */
export function isServerRendering(): boolean {
  return getCurrentInstance() !== null && inject(ssrContextKey, null) !== null;
}

export function useChannel<T = unknown>(
  name: MaybeRefOrGetter<string | null | undefined>,
  options: UseChannelOptions<T> = {},
): UseChannelReturn<T> {
  const hub = options.hub ?? useHub();
  const onServer = isServerRendering();
  const maxOf = (): number => Math.max(0, toValue(options.max) ?? DEFAULT_MAX);
  const historySize = Math.max(0, options.history ?? 0);
  const parse = options.parse;

  const ring = new Ring<Message<T>>(maxOf());
  let version = 0;
  let built = -1;
  let array: Message<T>[] = [];
  let notify: () => void = () => {};
  const messages = customRef<Message<T>[]>((track, trigger) => {
    notify = trigger;
    return {
      get() {
        track();
        if (built !== version) {
          array = ring.toArray();
          built = version;
        }
        return array;
      },
      set() {
        // read-only to the caller
      },
    };
  });
  // Reads are always current (the getter compares versions); effects that depend on
  // `messages` (renders, watchers) are notified once per macrotask, so a burst of
  // publications delivered together costs one render, not one per publication.
  let pendingNotify: ReturnType<typeof setTimeout> | null = null;
  const changed = (): void => {
    version += 1;
    if (pendingNotify !== null) return;
    pendingNotify = setTimeout(() => {
      pendingNotify = null;
      notify();
    }, 0);
  };

  const last = shallowRef<Message<T> | undefined>(undefined);
  const state = shallowRef<ChannelState>('unsubscribed');
  const recovered = shallowRef<boolean | null>(null);
  const error = shallowRef<ChannelError | null>(null);

  let entry: SharedChannel | null = null;
  let stopMirror: (() => void) | null = null;
  let stopListening: (() => void) | null = null;
  // Publications since the last subscribe, merged into a history page that arrives later.
  let sinceSubscribe: Message<T>[] = [];
  let generation = 0;

  /** The message with its payload parsed, or null (and `error` set) when `parse` throws. */
  const typed = (m: Message): Message<T> | null => {
    if (!parse) return m as Message<T>;
    try {
      return { ...m, data: parse(m.data) };
    } catch (e) {
      error.value = parseError(e);
      return null;
    }
  };

  const loadHistory = (held: SharedChannel, gen: number): void => {
    held.sub
      .history({ limit: historySize, reverse: true })
      .then((page) => {
        if (gen !== generation || entry !== held) return; // switched or released meanwhile
        const byOffset = new Map<number, Message<T>>();
        for (const p of page.publications) {
          let raw: Message;
          try {
            raw = { channel: held.name, data: held.decode(p.data) };
          } catch (e) {
            error.value = parseError(e);
            continue;
          }
          const m = typed(raw);
          if (!m) continue;
          if (p.offset !== undefined) m.offset = p.offset;
          if (p.info !== undefined) m.info = normalizeInfo(p.info);
          if (p.tags !== undefined) m.tags = p.tags;
          if (m.offset !== undefined) byOffset.set(m.offset, m);
        }
        const live = sinceSubscribe.filter((m) => m.offset === undefined || !byOffset.has(m.offset));
        const loaded = [...byOffset.values()].sort((a, b) => (a.offset ?? 0) - (b.offset ?? 0));
        ring.replace([...loaded, ...live]);
        changed();
        if (!last.value && loaded.length > 0) last.value = loaded[loaded.length - 1];
      })
      .catch((e: unknown) => {
        if (gen !== generation) return;
        const err = e as { code?: number; message?: string };
        error.value = { code: err.code ?? 0, message: err.message ?? String(e) };
      });
  };

  const onSubscribed = (held: SharedChannel, ctx: Pick<SubscribedContext, 'wasRecovering' | 'recovered'>): void => {
    sinceSubscribe = [];
    if (historySize > 0 && ring.capacity > 0 && !(ctx.wasRecovering && ctx.recovered)) {
      generation += 1;
      loadHistory(held, generation);
    }
  };

  const take = (channel: string): void => {
    if (entry || onServer) return;
    const held = hub.registry.acquire(channel, options.subscription);
    entry = held;
    generation += 1;
    sinceSubscribe = [];
    // Mirror the shared state into this consumer's refs (readonly to the caller).
    stopMirror = watch(
      [held.state, held.recovered, held.error],
      ([s, r, e]) => {
        state.value = s;
        recovered.value = r;
        error.value = e;
      },
      { immediate: true, flush: 'sync' },
    );
    last.value = held.last.value ? (typed(held.last.value) ?? undefined) : undefined;
    stopListening = held.listen({
      publication: (m) => {
        const message = typed(m);
        if (!message) return;
        last.value = message;
        if (ring.capacity > 0) {
          if (historySize > 0) sinceSubscribe.push(message);
          ring.push(message);
          changed();
        }
        options.onMessage?.(message);
      },
      subscribed: (ctx) => onSubscribed(held, ctx),
    });
    // Joining a channel another component already holds: no `subscribed` event will come.
    if (held.state.value === 'subscribed') onSubscribed(held, { wasRecovering: false, recovered: false });
  };

  const drop = (): void => {
    if (!entry) return;
    stopListening?.();
    stopMirror?.();
    stopListening = null;
    stopMirror = null;
    hub.registry.release(entry);
    entry = null;
    generation += 1;
    sinceSubscribe = [];
    state.value = 'unsubscribed';
  };

  const reset = (): void => {
    ring.clear();
    changed();
    last.value = undefined;
    recovered.value = null;
    error.value = null;
  };

  const current = (): string | null => toValue(name) ?? null;

  let wanted = options.immediate ?? true;
  let named: string | null = null;
  const stopName = watch(
    current,
    (channel) => {
      if (channel !== named) {
        if (named !== null) {
          drop();
          reset();
        }
        named = channel;
      }
      if (wanted && channel !== null) take(channel);
    },
    { immediate: true, flush: 'sync' },
  );
  const stopMax = watch(maxOf, (n) => {
    ring.resize(n);
    changed();
  });

  if (getCurrentScope()) {
    onScopeDispose(() => {
      stopName();
      stopMax();
      drop();
      if (pendingNotify !== null) clearTimeout(pendingNotify);
    });
  }

  return {
    messages,
    last,
    state,
    recovered,
    error,
    publish: (data: T) => {
      if (!entry) return Promise.reject(new Error(`useChannel: ${String(current())} is not subscribed`));
      return entry.sub.publish(entry.encode(data));
    },
    subscribe: () => {
      wanted = true;
      const channel = current();
      if (channel !== null) take(channel);
    },
    unsubscribe: () => {
      wanted = false;
      drop();
    },
    clear: () => {
      ring.clear();
      changed();
      sinceSubscribe = [];
    },
  };
}
