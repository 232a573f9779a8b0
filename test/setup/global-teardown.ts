import { rmSync } from 'node:fs';
import { stopStack } from '../../src/stack/local-stack';

export default async function globalTeardown(): Promise<void> {
  const dir = process.env.CLOVER_TEST_STACK_DIR;
  if (!dir) return;
  await stopStack(dir, { wipe: true });
  if (!process.env.CLOVER_KEEP_TEST_DIR) rmSync(dir, { recursive: true, force: true });
}
