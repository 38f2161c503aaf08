import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Thread stress tests start 8+ workers each; run files one at a time so a
    // 2-core CI machine is not asked to schedule several stress tests at once.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
