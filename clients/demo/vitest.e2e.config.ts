import { defineConfig } from 'vitest/config';

// End-to-end tests: headless Chromium (the OS package, driven by playwright-core) against
// `hub --dev` serving the built demo (dist/). Run `npm run build` first.
export default defineConfig({
  test: {
    include: ['e2e/**/*.e2e.ts'],
    environment: 'node',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
