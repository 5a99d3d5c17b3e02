/**
 * @hub/vue: Vue 3 composables for the hub, on top of the `centrifuge` SDK.
 *
 * - `createHub(options)` makes the one connection of an app (`app.use(hub)` provides it);
 *   `provideHub()` provides one from a component; `useHub()` finds it.
 * - `useChannel(name, options)` subscribes for the component's lifetime and returns refs:
 *   `messages` (bounded), `last`, `state`, `recovered`, `error`, and `publish()`.
 * - `usePresence(name)` returns the channel's presence list, kept current from join/leave.
 *
 * The channel registry (`registry.ts`) and the ring buffer (`ring.ts`) are internal: tagged
 * as such in their own files, they are stripped from the published `.d.ts` (`stripInternal`).
 * (This comment must not carry that tag itself: it would strip the export below it.)
 */
export { createHub, provideHub, useHub, hubEndpoints, DEFAULT_TRANSPORTS, HUB_KEY, JSON_CODEC, JSON_BYTES_CODEC } from './hub.js';
export type { Hub, HubOptions, HubState, DisconnectReason } from './hub.js';
export { useChannel } from './channel.js';
export type { UseChannelOptions, UseChannelReturn } from './channel.js';
export { usePresence } from './presence.js';
export type { UsePresenceOptions, UsePresenceReturn } from './presence.js';
export { PARSE_ERROR } from './types.js';
export type { ChannelError, ChannelState, DataCodec, HubProtocol, Message } from './types.js';
export type { ClientInfo, TransportName, TransportEndpoint } from 'centrifuge';
