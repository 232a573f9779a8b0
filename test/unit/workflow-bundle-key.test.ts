import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sourcesKey } from '../../src/worker/workflow-bundle';

describe('the workflow bundle\'s key', () => {
  it('changes with any file under src/ (its bytes or its path) and with package-lock.json, and only then', () => {
    const root = mkdtempSync(join(tmpdir(), 'clover-key-'));
    mkdirSync(join(root, 'src', 'workflows'), { recursive: true });
    writeFileSync(join(root, 'src', 'workflows', 'a.ts'), 'export const a = 1;');
    writeFileSync(join(root, 'package-lock.json'), '{"lockfileVersion":3}');
    const first = sourcesKey(root);
    expect(sourcesKey(root)).toBe(first);

    writeFileSync(join(root, 'src', 'workflows', 'a.ts'), 'export const a = 2;');
    const edited = sourcesKey(root);
    expect(edited).not.toBe(first);

    mkdirSync(join(root, 'src', 'domain'));
    writeFileSync(join(root, 'src', 'domain', 'b.ts'), 'export const b = 1;');
    const added = sourcesKey(root);
    expect(added).not.toBe(edited);

    writeFileSync(join(root, 'package-lock.json'), '{"lockfileVersion":3,"packages":{}}');
    expect(sourcesKey(root)).not.toBe(added);
  });
});
