#!/usr/bin/env bash
# The published @hub/vue package, as a Vue developer gets it: packs clients/vue into a
# tarball (npm pack), scaffolds a fresh app with `npm create vite@7 -- --template vue-ts`,
# installs the tarball and the SDK into it, writes a component that uses every composable
# with its types, and builds the app (vue-tsc type-checks it against the published .d.ts,
# then vite bundles it). Fails if any of that fails.
#
#   clients/package-check.sh          (needs the npm registry; clients/vue built first)
#
# Environment: PACKAGE_CHECK_DIR  where to scaffold (default: a new temporary folder, removed
# afterwards).
set -euo pipefail

CLIENTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VUE_DIR="$CLIENTS/vue"
WORK="${PACKAGE_CHECK_DIR:-$(mktemp -d)}"
mkdir -p "$WORK"
[[ -n ${PACKAGE_CHECK_DIR:-} ]] || trap 'rm -rf "$WORK"' EXIT
[[ -f $VUE_DIR/dist/index.d.ts ]] || { echo "clients/vue is not built: (cd clients/vue && npm run build)" >&2; exit 1; }

tarball="$(cd "$VUE_DIR" && npm pack --silent --pack-destination "$WORK" | tail -n 1)"
echo "packed $WORK/$tarball"
cd "$WORK"
timeout 300 npm create -y vite@7 app -- --template vue-ts </dev/null
cd app
timeout 600 npm install --no-audit --no-fund
timeout 600 npm install --no-audit --no-fund "$WORK/$tarball" centrifuge
cat >src/App.vue <<'VUE'
<script setup lang="ts">
import { computed, ref } from 'vue';
import { useChannel, usePresence, useHub, type Message } from '@hub/vue';

interface Note { text: string }
const room = ref<string | null>('chat:index');
const parse = (data: unknown): Note => {
  if (typeof data === 'object' && data !== null && typeof (data as Note).text === 'string') return data as Note;
  throw new Error('not a note');
};
const { messages, state, error, publish } = useChannel<Note>(() => room.value, { max: 50, parse });
const { clients } = usePresence(() => room.value);
const hub = useHub();
const texts = computed(() => messages.value.map((m: Message<Note>) => m.data.text));
const send = () => publish({ text: 'hello' });
</script>

<template>
  <p>{{ hub.state.value }} {{ state }} {{ error?.message }} {{ clients.length }}</p>
  <ul><li v-for="(t, i) in texts" :key="i">{{ t }}</li></ul>
  <button @click="send">send</button>
</template>
VUE
cat >src/main.ts <<'TS'
import { createApp } from 'vue';
import { createHub } from '@hub/vue';
import App from './App.vue';

const hub = createHub({ url: 'http://127.0.0.1:8000', protocol: 'protobuf', immediate: false });
createApp(App).use(hub).mount('#app');
TS
timeout 600 npm run build
test -f dist/index.html
echo "a fresh Vite app built against the packed @hub/vue ($tarball)"
