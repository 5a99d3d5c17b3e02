import { defineConfig } from 'vitest/config';

// Tests run against the real hub binary ($HUB_BIN, default ../../target/debug/hub), which
// each test file starts on a free port; nothing is mocked.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Two cores: files one after another keep the timings of the hub honest.
    fileParallelism: false,
  },
});
