// Unit tests start nothing and wait on nothing: a test still running after 10 s is a hang, not slowness.
// (The 120 s testTimeout in jest.config.js is a global option, meant for the e2e tests.)
jest.setTimeout(10_000);
