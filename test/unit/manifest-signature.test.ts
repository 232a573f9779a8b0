import { createHash, generateKeyPairSync } from 'node:crypto';
import { amendManifest, buildManifest, manifestDigest, manifestGeneration, manifestSignatureProblem, signManifest, type Manifest } from '../../src/domain/manifest';
import { manifestProblem, type ManifestExpectations } from '../../src/domain/manifest-guard';
import { keyIdOf, type SigningKey } from '../../src/evidence/ledger';

const keyPair = (): SigningKey => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
};
const key = keyPair();
const other = keyPair();
const unsigned = (): Manifest => buildManifest({
  migrationId: 'wave-1', userId: 'u-1', targetSite: 'eu-ie', bucket: 'b', userPrefix: 'users/u-1/', committedAt: '2024-05-02T00:00:00.000Z',
  generation: 1, erasures: [], conflicts: [],
  entries: [{ key: 'users/u-1/a', size: 1, sha256: createHash('sha256').update('a').digest('hex'), sourceSite: 'sg', sourceEtag: 'e', sourceLastModified: '2024-05-01T00:00:00.000Z', targetEtag: 't', outcome: 'copied' }],
});
const expected: ManifestExpectations = { migrationId: 'wave-1', userId: 'u-1', userPrefix: 'users/u-1/', sources: ['sg'], publicKey: { key: key.publicKey, keyId: key.keyId } };

describe('manifest signature', () => {
  it('signs over everything but the signature: the digest and the generation name are unchanged, and it is deterministic', () => {
    const m = unsigned();
    const s = signManifest(m, key);
    expect(s.digest).toBe(m.digest);
    expect(manifestDigest(s)).toBe(m.digest);
    expect(manifestGeneration(s)).toBe(manifestGeneration(m));
    expect(signManifest(m, key).signature).toEqual(s.signature);
    expect(s.signature?.keyId).toBe(key.keyId);
    expect(manifestSignatureProblem(s, key.publicKey, key.keyId)).toBeUndefined();
    expect(manifestProblem(s, expected)).toBeUndefined();
  });

  it('an edit with the plain digest recomputed fails the signature, and the guard refuses it', () => {
    const s = structuredClone(signManifest(unsigned(), key));
    s.entries[0]!.sha256 = '0'.repeat(64);
    s.digest = manifestDigest(s);
    expect(manifestProblem(s, expected)).toMatch(/signature does not verify/);
    expect(manifestProblem(s, { ...expected, publicKey: undefined })).toBeUndefined();
  });

  it('refuses an unsigned manifest and one signed with another key when a key is expected', () => {
    expect(manifestProblem(unsigned(), expected)).toMatch(/has no signature/);
    expect(manifestProblem(signManifest(unsigned(), other), expected)).toMatch(/signed with key .*not this worker's key/);
    const forged = { ...signManifest(unsigned(), other), signature: { keyId: key.keyId, value: signManifest(unsigned(), other).signature!.value } };
    expect(manifestProblem(forged, expected)).toMatch(/signature does not verify/);
  });

  it('an amendment drops the old signature (it is signed again by whoever commits it)', () => {
    const a = amendManifest(signManifest(unsigned(), key), { rolledBack: { at: 'x', restored: 0, targetDeleted: 0, kept: [] } });
    expect(a.signature).toBeUndefined();
    expect(manifestDigest(a)).toBe(a.digest);
    expect(manifestProblem(signManifest(a, key), expected)).toBeUndefined();
  });
});
