/**
 * `useChannel`: a channel of the hub as refs, for the lifetime of the calling scope.
 *
 * Guarantees:
 * - Subscribed while at least one consumer holds the channel; the subscription is shared
 *   between components of the same hub and released when the scope is disposed (unmount).
 * - `messages` never holds more than `max` publications (oldest dropped first), in arrival
 *   order; with `history`, the recent publications are loaded from the hub's history on
 *   subscribe (and again after a resubscribe that could not recover), merged by offset
 *   without duplicates.
 * - A reactive `name` switches channels: the old one is released, `messages` starts over.
 */
import type { PublishResult, SubscribedContext, SubscriptionOptions } from 'centrifuge';
import {
  getCurrentScope,
  onScopeDispose,
  shallowRef,
  toValue,
  watch,
  type MaybeRefOrGetter,
  type ShallowRef,
} from 'vue';

import { useHub, type Hub } from './hub.js';
import { normalizeInfo, type ChannelError, type ChannelState, type Message, type SharedChannel } from './registry.js';

export interface UseChannelOptions<T = unknown> {
  /** Most publications kept in `messages`. Default 100; 0 keeps none (only `last`). */
  max?: number;
  /** Load this many recent publications from history on subscribe. Default 0. */
  history?: number;
  /** Subscribe at once. Default `true`; otherwise call `subscribe()`. */
  immediate?: boolean;
  /** Called for each publication, after `messages` and `last` are updated. */
  onMessage?: (message: Message<T>) => void;
  /** The hub to use instead of the provided one. */
  hub?: Hub;
  /**
   * Options of the SDK subscription (`getToken` for private channels, `recoverable`,
   * `joinLeave`, ...). They apply when this call creates the shared subscription.
   */
  subscription?: SubscriptionOptions;
}

type ReadonlyRef<T> = Readonly<ShallowRef<T>>;

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

export function useChannel<T = unknown>(
  name: MaybeRefOrGetter<string>,
  options: UseChannelOptions<T> = {},
): UseChannelReturn<T> {
  const hub = options.hub ?? useHub();
  const max = Math.max(0, options.max ?? DEFAULT_MAX);
  const historySize = Math.max(0, options.history ?? 0);

  const messages = shallowRef<Message<T>[]>([]);
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

  const keep = (list: Message<T>[]): Message<T>[] => (list.length > max ? list.slice(list.length - max) : list);

  const loadHistory = (held: SharedChannel, gen: number): void => {
    held.sub
      .history({ limit: historySize, reverse: true })
      .then((page) => {
        if (gen !== generation || entry !== held) return; // switched or released meanwhile
        const byOffset = new Map<number, Message<T>>();
        for (const p of page.publications) {
          const m: Message<T> = { channel: held.name, data: p.data as T };
          if (p.offset !== undefined) m.offset = p.offset;
          if (p.info !== undefined) m.info = normalizeInfo(p.info);
          if (p.tags !== undefined) m.tags = p.tags;
          if (m.offset !== undefined) byOffset.set(m.offset, m);
        }
        const live = sinceSubscribe.filter((m) => m.offset === undefined || !byOffset.has(m.offset));
        const loaded = [...byOffset.values()].sort((a, b) => (a.offset ?? 0) - (b.offset ?? 0));
        messages.value = keep([...loaded, ...live]);
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
    if (historySize > 0 && max > 0 && !(ctx.wasRecovering && ctx.recovered)) {
      generation += 1;
      loadHistory(held, generation);
    }
  };

  const take = (channel: string): void => {
    if (entry) return;
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
    last.value = held.last.value as Message<T> | undefined;
    stopListening = held.listen({
      publication: (m) => {
        const message = m as Message<T>;
        last.value = message;
        if (max > 0) {
          if (historySize > 0) sinceSubscribe.push(message);
          messages.value = keep([...messages.value, message]);
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
    messages.value = [];
    last.value = undefined;
    recovered.value = null;
    error.value = null;
  };

  let wanted = options.immediate ?? true;
  const stopName = watch(
    () => toValue(name),
    (channel, previous) => {
      if (previous !== undefined && channel !== previous) {
        drop();
        reset();
      }
      if (wanted) take(channel);
    },
    { immediate: true, flush: 'sync' },
  );

  if (getCurrentScope()) {
    onScopeDispose(() => {
      stopName();
      drop();
    });
  }

  return {
    messages,
    last,
    state,
    recovered,
    error,
    publish: (data: T) => {
      if (!entry) return Promise.reject(new Error(`useChannel: ${toValue(name)} is not subscribed`));
      return entry.sub.publish(data);
    },
    subscribe: () => {
      wanted = true;
      take(toValue(name));
    },
    unsubscribe: () => {
      wanted = false;
      drop();
    },
    clear: () => {
      messages.value = [];
      sinceSubscribe = [];
    },
  };
}
