/**
 * Channel subscriptions shared by the composables of one hub, counted by reference.
 *
 * Guarantees:
 * - One SDK `Subscription` per channel and hub, whatever the number of components using it;
 *   it is subscribed on the first `acquire()` and removed from the client on the last
 *   `release()` (the hub then sends `unsubscribe`).
 * - The shared state (`state`, `recovered`, `error`, `last`) is kept by the entry, so a
 *   component that arrives late sees the current values at once.
 * - One SDK listener per event and entry: consumers register plain callbacks with the entry
 *   (`listen()`), which returns the function that removes them. Nothing grows with the
 *   number of messages; listeners grow only with the number of live consumers.
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

/** Subscription state, as the SDK names it. */
export type ChannelState = 'unsubscribed' | 'subscribing' | 'subscribed';

/** An error of a channel: `code` and `message` as the hub sent them (e.g. 102 unknown channel). */
export interface ChannelError {
  code: number;
  message: string;
}

/** A publication of a channel, with its payload typed `T`. */
export interface Message<T = unknown> {
  channel: string;
  data: T;
  /** Position in the channel's stream (channels with history). */
  offset?: number;
  /** The publishing client, when a client (not the server API) published. */
  info?: PublicationContext['info'];
  tags?: Record<string, string>;
}

export interface ChannelEvents {
  publication?: (message: Message) => void;
  subscribed?: (ctx: SubscribedContext) => void;
  join?: (ctx: JoinContext) => void;
  leave?: (ctx: LeaveContext) => void;
}

/** The JSON protocol omits empty fields: an anonymous client's `user` arrives missing. */
export function normalizeInfo(info: ClientInfo): ClientInfo {
  return info.user === undefined ? { ...info, user: '' } : info;
}

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

  private readonly consumers = new Set<ChannelEvents>();
  private readonly detach: () => void;

  constructor(
    readonly name: string,
    readonly sub: Subscription,
  ) {
    this.state = shallowRef<ChannelState>(sub.state as ChannelState);
    const onState = (ctx: SubscriptionStateContext): void => {
      this.state.value = ctx.newState as ChannelState;
    };
    const onSubscribed = (ctx: SubscribedContext): void => {
      this.error.value = null;
      if (ctx.wasRecovering) this.recovered.value = ctx.recovered;
      for (const c of this.consumers) c.subscribed?.(ctx);
    };
    const onPublication = (ctx: PublicationContext): void => {
      const message: Message = { channel: ctx.channel, data: ctx.data };
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

  /** @internal */
  close(): void {
    this.consumers.clear();
    this.detach();
    this.state.value = 'unsubscribed';
  }
}

export class ChannelRegistry {
  private readonly channels = new Map<string, SharedChannel>();
  private disposed = false;

  constructor(private readonly client: Centrifuge) {}

  /**
   * The shared subscription of `name`, subscribing it when it is the first consumer.
   * `options` apply only when the subscription is created (the first consumer's win).
   */
  acquire(name: string, options: SubscriptionOptions = {}): SharedChannel {
    if (this.disposed) throw new Error(`hub: channel ${name} used after the hub was disposed`);
    let entry = this.channels.get(name);
    if (!entry) {
      // A subscription left in the client by code outside the registry is reused.
      const sub = this.client.getSubscription(name) ?? this.client.newSubscription(name, options);
      entry = new SharedChannel(name, sub);
      this.channels.set(name, entry);
      sub.subscribe();
    }
    entry.refs += 1;
    return entry;
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
