/**
 * `usePresence`: who is subscribed to a channel, kept current from join and leave events.
 *
 * Guarantees:
 * - Holds the channel (shared with `useChannel` of the same hub) for the calling scope.
 * - On every (re)subscribe it asks the hub for a presence snapshot and replays over it the
 *   joins and leaves that arrived while the answer was on its way: joins and leaves are
 *   idempotent per client id, so the result is the snapshot plus what happened since.
 * - Needs `presence` and `join_leave` on the channel's namespace (the `--dev` preset has both).
 */
import type { ClientInfo, JoinContext, LeaveContext, SubscriptionOptions } from 'centrifuge';
import {
  computed,
  getCurrentScope,
  onScopeDispose,
  shallowRef,
  toValue,
  watch,
  type ComputedRef,
  type MaybeRefOrGetter,
  type ShallowRef,
} from 'vue';

import { useHub, type Hub } from './hub.js';
import { isServerRendering } from './channel.js';
import { normalizeInfo, type SharedChannel } from './registry.js';
import type { ChannelError, ChannelState } from './types.js';

export interface UsePresenceOptions {
  /** The hub to use instead of the provided one. */
  hub?: Hub;
  /**
   * Take the channel at once (and on every change of `name`). Default `true`; otherwise
   * call `subscribe()`.
   */
  immediate?: boolean;
  /** SDK subscription options, merged with other consumers' (as in `useChannel`). */
  subscription?: SubscriptionOptions;
}

type ReadonlyRef<T> = Readonly<ShallowRef<T>>;

export interface UsePresenceReturn {
  /** Clients subscribed to the channel, in the order they were first seen. */
  clients: ReadonlyRef<ClientInfo[]>;
  /** Number of connections present. */
  count: ComputedRef<number>;
  /** Distinct user ids present ("" for anonymous connections). */
  users: ComputedRef<string[]>;
  state: ReadonlyRef<ChannelState>;
  error: ReadonlyRef<ChannelError | null>;
  /** Asks the hub for a fresh snapshot. */
  refresh: () => Promise<void>;
  /** Takes the channel (when `immediate: false`, or after `unsubscribe()`). */
  subscribe: () => void;
  /** Lets go of the channel and empties the list; others sharing it stay subscribed. */
  unsubscribe: () => void;
}

type Change = { kind: 'join' | 'leave'; info: ClientInfo };

export function usePresence(
  name: MaybeRefOrGetter<string | null | undefined>,
  options: UsePresenceOptions = {},
): UsePresenceReturn {
  const hub = options.hub ?? useHub();
  const onServer = isServerRendering();
  const byClient = new Map<string, ClientInfo>();
  const clients = shallowRef<ClientInfo[]>([]);
  const state = shallowRef<ChannelState>('unsubscribed');
  const error = shallowRef<ChannelError | null>(null);

  let entry: SharedChannel | null = null;
  let stopListening: (() => void) | null = null;
  let stopMirror: (() => void) | null = null;
  // Changes seen while a snapshot request is in flight, replayed over its answer.
  let pending: Change[] | null = null;
  let generation = 0;

  const publish = (): void => {
    clients.value = [...byClient.values()];
  };
  const apply = (change: Change): void => {
    if (change.kind === 'join') byClient.set(change.info.client, normalizeInfo(change.info));
    else byClient.delete(change.info.client);
  };
  const onChange = (change: Change): void => {
    if (pending) pending.push(change);
    apply(change);
    publish();
  };

  const refresh = async (): Promise<void> => {
    const held = entry;
    if (!held) return;
    const gen = ++generation;
    pending = [];
    try {
      const result = await held.sub.presence();
      if (gen !== generation || entry !== held) return;
      const changes = pending ?? [];
      byClient.clear();
      for (const info of Object.values(result.clients)) byClient.set(info.client, normalizeInfo(info));
      for (const change of changes) apply(change);
      publish();
      error.value = null;
    } catch (e) {
      if (gen !== generation) return;
      const err = e as { code?: number; message?: string };
      error.value = { code: err.code ?? 0, message: err.message ?? String(e) };
    } finally {
      if (gen === generation) pending = null;
    }
  };

  const take = (channel: string): void => {
    if (entry || onServer) return;
    const held = hub.registry.acquire(channel, options.subscription);
    entry = held;
    stopMirror = watch(
      [held.state, held.error],
      ([s, e]) => {
        state.value = s;
        if (e) error.value = e;
      },
      { immediate: true, flush: 'sync' },
    );
    stopListening = held.listen({
      join: (ctx: JoinContext) => onChange({ kind: 'join', info: ctx.info }),
      leave: (ctx: LeaveContext) => onChange({ kind: 'leave', info: ctx.info }),
      subscribed: () => void refresh(),
    });
    if (held.state.value === 'subscribed') void refresh();
  };

  const drop = (): void => {
    if (!entry) return;
    stopListening?.();
    stopMirror?.();
    hub.registry.release(entry);
    entry = null;
    generation += 1;
    pending = null;
    byClient.clear();
    publish();
    state.value = 'unsubscribed';
  };

  const current = (): string | null => toValue(name) ?? null;
  let wanted = options.immediate ?? true;
  const stopName = watch(
    current,
    (channel) => {
      drop();
      error.value = null;
      if (wanted && channel !== null) take(channel);
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
    clients,
    count: computed(() => clients.value.length),
    users: computed(() => [...new Set(clients.value.map((c) => c.user))]),
    state,
    error,
    refresh,
    subscribe: () => {
      wanted = true;
      const channel = current();
      if (channel !== null) take(channel);
    },
    unsubscribe: () => {
      wanted = false;
      drop();
    },
  };
}
