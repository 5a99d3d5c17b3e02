import { fileURLToPath, URL } from 'node:url';

import vue from '@vitejs/plugin-vue';
import { defineConfig } from 'vite';

// The demo uses the composables from ../vue/src directly (no publish/link step), so
// `npm run dev` hot-reloads them too. `dedupe` makes ../vue/src resolve `vue` and
// `centrifuge` from this package, so the app has one Vue and one SDK.
export default defineConfig({
  plugins: [vue()],
  base: './',
  resolve: {
    alias: {
      '@hub/vue': fileURLToPath(new URL('../vue/src/index.ts', import.meta.url)),
    },
    dedupe: ['vue', 'centrifuge'],
  },
  server: {
    fs: { allow: ['..'] },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Stable file names keep the committed dist/ diff small and reviewable.
    rollupOptions: {
      output: {
        entryFileNames: 'assets/[name].js',
        chunkFileNames: 'assets/[name].js',
        assetFileNames: 'assets/[name][extname]',
      },
    },
  },
});
