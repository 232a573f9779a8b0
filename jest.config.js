// ts-jest without type checking (npm run typecheck does that): each file is transpiled on its own, fast.
const transform = {
  '^.+\\.[tj]s$': ['ts-jest', { tsconfig: { allowJs: true, isolatedModules: true }, diagnostics: false }],
};
// p-limit, its dependency and iso-3166 are ESM-only; jest's CommonJS runtime needs them transformed.
const transformIgnorePatterns = ['/node_modules/(?!(p-limit|yocto-queue|iso-3166)/)'];

/**
 * Two projects. `unit` (test/unit/): pure code, nothing started, seconds (`npm run test:unit`).
 * `e2e` (the rest of test/): its globalSetup starts a Temporal dev server and four versitygw sites.
 * Jest runs a project's globalSetup only when a test of that project runs, so `--selectProjects unit`
 * starts nothing. `npm test` runs both.
 */
/** @type {import('jest').Config} */
module.exports = {
  // Global options (jest reads these for the whole run, not per project).
  // testTimeout: jest 30 ignores it inside a project, so it stays here; the unit project lowers it
  // again in test/unit/setup.ts.
  testTimeout: 120_000,
  maxWorkers: 2,
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      roots: ['<rootDir>/test/unit'],
      testMatch: ['**/*.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/test/unit/setup.ts'],
      transform,
      transformIgnorePatterns,
    },
    {
      displayName: 'e2e',
      testEnvironment: 'node',
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/unit/'],
      transform,
      transformIgnorePatterns,
      globalSetup: '<rootDir>/test/setup/global-setup.ts',
      globalTeardown: '<rootDir>/test/setup/global-teardown.ts',
    },
  ],
};
