import { defineConfig } from 'vitest/config';

// Integration tests start real etcd and PostgreSQL processes; run files one at a time so two
// clusters never compete for the two cores, and give them time to converge.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'chaos/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
