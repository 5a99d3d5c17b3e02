/**
 * Channel subscriptions shared by the composables of one hub, counted by reference.
 * Internal: not exported from the package (its types are stripped from the `.d.ts`).
 *
 * Guarantees:
 * - One SDK `Subscription` per channel and hub, whatever the number of components using it;
 *   it is subscribed on the first `acquire()` and removed from the client on the last
 *   `release()` (the hub then sends `unsubscribe`).
 * - Subscription options of every consumer are merged, whoever came first: a `getToken`
 *   (or `token`) from any consumer is used. When a consumer brings a token source the
 *   current subscription lacks, the subscription is replaced by one with the merged options
 *   and subscribed again, so a channel is never left tokenless (refused with 103) because a
 *   consumer without options (`usePresence`) mounted first. Two consumers giving different
 *   values for another option is a conflict: `acquire()` throws, naming the option.
 * - The shared state (`state`, `recovered`, `error`, `last`) is kept by the entry, so a
 *   component that arrives late sees the current values at once; it survives a replacement.
 * - One SDK listener per event and entry: consumers register plain callbacks with the entry
 *   (`listen()`), which returns the function that removes them. Nothing grows with the
 *   number of messages; listeners grow only with the number of live consumers.
 * - Payloads are decoded once per publication with the hub's codec; a payload the codec
 *   refuses sets `error` (`PARSE_ERROR`) and reaches no consumer.
 */
import type {
  Centrifuge,
  ClientInfo,
  JoinContext,
  LeaveContext,
  PublicationContext,
  SubscribedContext,
  Subscription,
  SubscriptionErrorContext,
  SubscriptionOptions,
  SubscriptionStateContext,
  UnsubscribedContext,
} from 'centrifuge';
import { shallowRef, type ShallowRef } from 'vue';

import { PARSE_ERROR, type ChannelError, type ChannelState, type DataCodec, type Message } from './types.js';

/** @internal */
export interface ChannelEvents {
  publication?: (message: Message) => void;
  subscribed?: (ctx: SubscribedContext) => void;
  join?: (ctx: JoinContext) => void;
  leave?: (ctx: LeaveContext) => void;
}

/** The JSON protocol omits empty fields: an anonymous client's `user` arrives missing. */
/** @internal */
export function normalizeInfo(info: ClientInfo): ClientInfo {
  return info.user === undefined ? { ...info, user: '' } : info;
}

/** @internal A `ChannelError` from whatever a decoder or parser threw. */
export function parseError(e: unknown): ChannelError {
  return { code: PARSE_ERROR, message: `parse: ${e instanceof Error ? e.message : String(e)}`, cause: e };
}

const TOKEN_KEYS = ['getToken', 'token'] as const;

/**
 * `merged` with `extra` added. Returns whether a token source was added that `merged`
 * lacked (the subscription must be replaced); throws on a conflicting value.
 */
function mergeOptions(channel: string, merged: SubscriptionOptions, extra: SubscriptionOptions): boolean {
  let addsToken = false;
  const hadToken = TOKEN_KEYS.some((k) => merged[k]);
  for (const key of Object.keys(extra) as (keyof SubscriptionOptions)[]) {
    const value = extra[key];
    if (value === undefined) continue;
    const current = merged[key];
    if (current === undefined) {
      (merged as Record<string, unknown>)[key] = value;
      if ((TOKEN_KEYS as readonly string[]).includes(key) && !hadToken) addsToken = true;
      continue;
    }
    // Any consumer's token source will do: they all ask for the same channel and user.
    if ((TOKEN_KEYS as readonly string[]).includes(key)) continue;
    const same =
      Object.is(current, value) ||
      (typeof value !== 'function' && JSON.stringify(current) === JSON.stringify(value));
    if (!same) {
      throw new Error(
        `hub: conflicting subscription option "${key}" for channel ${channel}: components sharing a channel ` +
          'must pass the same value (or leave it to one of them)',
      );
    }
  }
  return addsToken;
}

/** @internal */
export class SharedChannel {
  readonly state: ShallowRef<ChannelState>;
  /**
   * `true`/`false` after a resubscribe that tried to recover (did it get every missed
   * publication?); `null` before any such attempt.
   */
  readonly recovered = shallowRef<boolean | null>(null);
  readonly error = shallowRef<ChannelError | null>(null);
  readonly last = shallowRef<Message | undefined>(undefined);
  /** Consumers holding the subscription. */
  refs = 0;
  /** The options of every consumer, merged. */
  readonly options: SubscriptionOptions;

  private readonly consumers = new Set<ChannelEvents>();
  private detach: () => void = () => {};
  private current: Subscription;

  constructor(
    readonly name: string,
    sub: Subscription,
    options: SubscriptionOptions,
    private readonly codec: DataCodec,
  ) {
    this.options = { ...options };
    this.current = sub;
    this.state = shallowRef<ChannelState>(sub.state as ChannelState);
    this.attach(sub);
  }

  /** The SDK subscription (replaced when a consumer brings a token source). */
  get sub(): Subscription {
    return this.current;
  }

  /** Decodes a payload with the hub's codec (history pages use it too). */
  decode(data: unknown): unknown {
    return this.codec.decode(data);
  }

  encode(data: unknown): unknown {
    return this.codec.encode(data);
  }

  /** Listens to `sub` instead of the current subscription. */
  attach(sub: Subscription): void {
    this.detach();
    this.current = sub;
    this.state.value = sub.state as ChannelState;
    const onState = (ctx: SubscriptionStateContext): void => {
      this.state.value = ctx.newState as ChannelState;
    };
    const onSubscribed = (ctx: SubscribedContext): void => {
      this.error.value = null;
      if (ctx.wasRecovering) this.recovered.value = ctx.recovered;
      for (const c of this.consumers) c.subscribed?.(ctx);
    };
    const onPublication = (ctx: PublicationContext): void => {
      let data: unknown;
      try {
        data = this.codec.decode(ctx.data);
      } catch (e) {
        this.error.value = parseError(e);
        return;
      }
      const message: Message = { channel: ctx.channel, data };
      if (ctx.offset !== undefined) message.offset = ctx.offset;
      if (ctx.info !== undefined) message.info = normalizeInfo(ctx.info);
      if (ctx.tags !== undefined) message.tags = ctx.tags;
      this.last.value = message;
      for (const c of this.consumers) c.publication?.(message);
    };
    const onJoin = (ctx: JoinContext): void => {
      for (const c of this.consumers) c.join?.(ctx);
    };
    const onLeave = (ctx: LeaveContext): void => {
      for (const c of this.consumers) c.leave?.(ctx);
    };
    const onError = (ctx: SubscriptionErrorContext): void => {
      this.error.value = { code: ctx.error.code, message: ctx.error.message };
    };
    const onUnsubscribed = (ctx: UnsubscribedContext): void => {
      // 0: our own unsubscribe, 2: the client closed (it resubscribes on connect).
      if (ctx.code !== 0 && ctx.code !== 2) this.error.value = { code: ctx.code, message: ctx.reason };
    };
    sub.on('state', onState);
    sub.on('subscribed', onSubscribed);
    sub.on('publication', onPublication);
    sub.on('join', onJoin);
    sub.on('leave', onLeave);
    sub.on('error', onError);
    sub.on('unsubscribed', onUnsubscribed);
    this.detach = () => {
      sub.off('state', onState);
      sub.off('subscribed', onSubscribed);
      sub.off('publication', onPublication);
      sub.off('join', onJoin);
      sub.off('leave', onLeave);
      sub.off('error', onError);
      sub.off('unsubscribed', onUnsubscribed);
    };
  }

  /** Adds a consumer's callbacks; returns the function that removes them. */
  listen(events: ChannelEvents): () => void {
    this.consumers.add(events);
    return () => {
      this.consumers.delete(events);
    };
  }

  close(): void {
    this.consumers.clear();
    this.detach();
    this.state.value = 'unsubscribed';
  }
}

/** @internal */
export class ChannelRegistry {
  private readonly channels = new Map<string, SharedChannel>();
  private disposed = false;

  constructor(
    private readonly client: Centrifuge,
    private readonly codec: DataCodec,
  ) {}

  /**
   * The shared subscription of `name`, subscribing it when it is the first consumer.
   * `options` are merged with those of the other consumers (see the module doc); throws on
   * a conflicting option.
   */
  acquire(name: string, options: SubscriptionOptions = {}): SharedChannel {
    if (this.disposed) throw new Error(`hub: channel ${name} used after the hub was disposed`);
    let entry = this.channels.get(name);
    if (!entry) {
      // A subscription left in the client by code outside the registry is reused.
      const sub = this.client.getSubscription(name) ?? this.client.newSubscription(name, options);
      entry = new SharedChannel(name, sub, options, this.codec);
      this.channels.set(name, entry);
      sub.subscribe();
    } else if (mergeOptions(name, entry.options, options)) {
      this.replace(entry);
    }
    entry.refs += 1;
    return entry;
  }

  /** Swaps the entry's subscription for one with its (merged) options, and subscribes it. */
  private replace(entry: SharedChannel): void {
    const old = entry.sub;
    this.client.removeSubscription(old);
    const sub = this.client.newSubscription(entry.name, entry.options);
    entry.error.value = null;
    entry.attach(sub);
    sub.subscribe();
  }

  /** Drops one reference; the last one unsubscribes and removes the subscription. */
  release(entry: SharedChannel): void {
    if (this.channels.get(entry.name) !== entry) return; // already closed (dispose)
    entry.refs -= 1;
    if (entry.refs > 0) return;
    this.channels.delete(entry.name);
    entry.close();
    this.client.removeSubscription(entry.sub);
  }

  /** Channels currently held, with their number of consumers (for tests and devtools). */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, entry] of this.channels) out[name] = entry.refs;
    return out;
  }

  dispose(): void {
    this.disposed = true;
    for (const entry of this.channels.values()) {
      entry.close();
      this.client.removeSubscription(entry.sub);
    }
    this.channels.clear();
  }
}
