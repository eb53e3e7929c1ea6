import { defineConfig } from 'vitest/config';

// Integration tests start real etcd and PostgreSQL processes. Two files run at a time: most of an
// HA test is waiting (for a lease to run out, a replica to catch up), so two clusters share the
// two cores without starving each other, and every timed assertion is a gross bound.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'chaos/**/*.test.ts'],
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
