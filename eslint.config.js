import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': 'off',
      // On Node.js 20 a composite signal holds its sources weakly: a timeout among them can be
      // garbage-collected and never fire (src/util/abort.ts).
      'no-restricted-properties': [
        'error',
        {
          object: 'AbortSignal',
          property: 'any',
          message: 'use deadline() from src/util/abort.ts: a timeout inside AbortSignal.any may never fire',
        },
      ],
      // An agent that runs as process 1 collects the zombies Node did not start (src/util/reaper.ts);
      // it must know every child Node starts, so they all start through src/util/process.ts.
      'no-restricted-imports': [
        'error',
        ...['node:child_process', 'child_process'].map((name) => ({
          name,
          importNames: ['spawn', 'exec', 'execFile', 'fork'],
          message:
            'start children with run() or startProcess() from src/util/process.ts (src/util/reaper.ts says why)',
        })),
      ],
    },
  },
  {
    files: ['src/util/process.ts', '**/*.test.ts', 'test/**', 'chaos/**', 'bench/**', 'scripts/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
);
