import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', '.clover/', 'coverage/', 'bench/out/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { require: 'readonly', module: 'writable', process: 'readonly', console: 'readonly', __dirname: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    // Type-aware rules: a promise nobody awaits is an activity that outlives its heartbeat, or a failure nobody sees.
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
    },
  },
  {
    // Workflow code is replayed deterministically in Temporal's sandbox: no I/O, no Node built-ins, no data-plane libraries.
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { regex: '^node:', message: 'Node built-ins are not allowed in workflow code; use an activity.' },
          { regex: '^(fs|path|os|crypto|http|https|net|stream|child_process|zlib|url|util|events|buffer|worker_threads)(/.*)?$', message: 'Node built-ins are not allowed in workflow code; use an activity.' },
          { regex: '^pino', message: 'Use the workflow logger (log from @temporalio/workflow) in workflow code.' },
          { regex: '^@aws-sdk/', message: 'S3 access belongs in activities, never in workflow code.' },
          { regex: '^@smithy/', message: 'S3 access belongs in activities, never in workflow code.' },
          { regex: '^p-limit', message: 'Concurrency inside workflows uses workflow primitives, not p-limit.' },
          { regex: '^@temporalio/(client|worker|activity|testing)$', message: 'Workflow code may import only @temporalio/workflow and @temporalio/common.' },
        ],
      }],
    },
  },
);
