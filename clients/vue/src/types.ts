/**
 * Public types shared by the composables: channel state, errors, messages, the data codec.
 */
import type { PublicationContext } from 'centrifuge';

/** Subscription state, as the SDK names it. */
export type ChannelState = 'unsubscribed' | 'subscribing' | 'subscribed';

/**
 * An error of a channel: `code` and `message` as the hub sent them (e.g. 102 unknown channel,
 * 103 permission denied), or `PARSE_ERROR` when the channel's `parse` (or the hub's `decode`)
 * refused a publication; `cause` then holds what it threw.
 */
export interface ChannelError {
  code: number;
  message: string;
  cause?: unknown;
}

/** Code of a `ChannelError` raised by `parse` or `decode` on this client (not by the hub). */
export const PARSE_ERROR = 1000;

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

/** Wire encoding between this client and the hub. */
export type HubProtocol = 'json' | 'protobuf';

/**
 * How publication payloads cross the wire. Over JSON the SDK hands over parsed JSON and the
 * identity codec is used; over Protobuf payloads are bytes (`Uint8Array`), and the default
 * codec reads and writes them as UTF-8 JSON, so JSON and Protobuf clients (and the server
 * API) understand each other.
 */
export interface DataCodec {
  /** Turns what `publish()` gets into what the SDK sends. */
  encode: (data: unknown) => unknown;
  /** Turns what the SDK received into what components see (before `parse`). */
  decode: (data: unknown) => unknown;
}
