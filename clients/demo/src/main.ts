import { createApp } from 'vue';
import { createHub, DEFAULT_TRANSPORTS, type HubProtocol, type TransportName } from '@hub/vue';

import App from './App.vue';
import './style.css';

// `?transports=http_stream,sse` picks the transports (handy to try the fallbacks by hand).
const params = new URLSearchParams(window.location.search);
const transports = (params.get('transports')?.split(',').filter(Boolean) as TransportName[] | undefined) ?? [
  ...DEFAULT_TRANSPORTS,
];

// `?protocol=protobuf` speaks Protobuf to the hub (binary frames); JSON otherwise.
const protocol: HubProtocol = params.get('protocol') === 'protobuf' ? 'protobuf' : 'json';

const hub = createHub({
  url: import.meta.env.VITE_HUB_URL || window.location.origin,
  transports,
  protocol,
  centrifuge: { maxReconnectDelay: 5_000 },
});

const app = createApp(App);
app.use(hub); // provides the hub; disposes it when the app unmounts
app.mount('#app');

// A hot update of this module (or a full reload) must not leave the old connection behind.
if (import.meta.hot) {
  import.meta.hot.dispose(() => app.unmount());
}

// For the end-to-end tests and the curious: the hub from the console.
(window as unknown as { hub: typeof hub }).hub = hub;
