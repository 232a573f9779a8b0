import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createArchiveActivities, type PrepareArchivedInput, type PrepareArchivedResult } from '../../src/activities/archive';
import type { ActivityDeps } from '../../src/activities/deps';
import { ERASED_VERSION, residueClassifier } from '../../src/domain/residue';
import {
  addToEstimate, archivedLine, lockReason, planKeyVersionDeletes, restoreState, targetStorageClass, type ObjectVersion, type StorageClassEstimate,
} from '../../src/domain/versions';
import { ByteBudget } from '../../src/storage/byte-budget';
import type { Site } from '../../src/storage/clients';
import { copyObject } from '../../src/storage/object-copy';

const v = (versionId: string, etag: string, over: Partial<ObjectVersion> = {}): ObjectVersion => ({
  key: 'u/k', versionId, etag, size: 1, deleteMarker: etag === '', latest: false, lastModified: '2026-01-01T00:00:00.000Z', ...over,
});

describe('versions at cut-over (planKeyVersionDeletes)', () => {
  it('deletes the older versions and markers oldest first, the migrated version last', () => {
    const p = planKeyVersionDeletes([v('3', 'e3', { latest: true }), v('2', ''), v('1', 'e1')], 'e3');
    expect(p).toEqual({ action: 'delete', order: [v('1', 'e1'), v('2', ''), v('3', 'e3', { latest: true })] });
  });
  it('keeps everything when a newer version or a delete marker appeared after the final pass', () => {
    expect(planKeyVersionDeletes([v('4', 'e4', { latest: true }), v('3', 'e3')], 'e3')).toMatchObject({ action: 'changed', reason: expect.stringMatching(/a newer version, 4/) });
    expect(planKeyVersionDeletes([v('4', '', { latest: true }), v('3', 'e3')], 'e3')).toMatchObject({ action: 'changed', reason: expect.stringMatching(/delete marker, 4/) });
  });
  it('the same bytes written again after the final pass are a new version: kept when the copy recorded its version id', () => {
    const versions = [v('4', 'e3', { latest: true }), v('3', 'e3')];
    expect(planKeyVersionDeletes(versions, 'e3', '3')).toMatchObject({ action: 'changed', reason: expect.stringMatching(/a newer version, 4/) });
    expect(planKeyVersionDeletes(versions, 'e3', '4')).toMatchObject({ action: 'delete' });
  });
  it('no version at all is absent', () => {
    expect(planKeyVersionDeletes([], 'e')).toEqual({ action: 'absent' });
  });
});

describe('object lock reasons', () => {
  const now = new Date('2026-06-01T00:00:00Z');
  it('names retention with its date, legal hold, both; an expired retention is no lock', () => {
    expect(lockReason({ mode: 'COMPLIANCE', retainUntil: new Date('2027-01-01T00:00:00Z') }, now)).toBe('under object lock (COMPLIANCE) until 2027-01-01T00:00:00.000Z');
    expect(lockReason({ legalHold: 'ON' }, now)).toBe('under legal hold (it can go once the hold is removed)');
    expect(lockReason({ legalHold: 'ON', mode: 'GOVERNANCE', retainUntil: '2026-07-01T00:00:00Z' }, now)).toMatch(/legal hold.*; under object lock \(GOVERNANCE\) until 2026-07-01/);
    expect(lockReason({ mode: 'GOVERNANCE', retainUntil: new Date('2026-05-01T00:00:00Z'), legalHold: 'OFF' }, now)).toBeUndefined();
  });
});

describe('residue of a versioned source', () => {
  const classify = residueClassifier({
    entries: [{ key: 'u/m', size: 1, sha256: 'x', sourceSite: 'sg', sourceEtag: 'e1', sourceLastModified: '', targetEtag: 't', outcome: 'copied' }],
    conflicts: [],
  }, []);
  it('names the version, an erased key\'s data, an older version of a migrated key', () => {
    expect(classify({ key: 'u/gone', site: 'sg', etag: 'a', versionId: 'v1', noncurrent: true, erased: true }).reason).toBe(`version v1 (noncurrent): ${ERASED_VERSION}`);
    expect(classify({ key: 'u/m', site: 'sg', etag: 'old', versionId: 'v0', noncurrent: true }).reason).toBe('version v0 (noncurrent): an older version of a migrated key, not deleted');
    expect(classify({ key: 'u/m', site: 'sg', etag: 'new', versionId: 'v2' }).reason).toBe('version v2: written at this key after Clover deleted the migrated object (different bytes)');
  });
});

describe('storage classes', () => {
  it('the EU copy\'s class: the plan\'s, else the source\'s unless archival or STANDARD', () => {
    expect(targetStorageClass('STANDARD_IA', 'GLACIER')).toBe('STANDARD_IA');
    expect(targetStorageClass(undefined, 'ONEZONE_IA')).toBe('ONEZONE_IA');
    expect(targetStorageClass(undefined, 'GLACIER')).toBeUndefined();
    expect(targetStorageClass(undefined, 'STANDARD')).toBeUndefined();
    expect(targetStorageClass(undefined, undefined)).toBeUndefined();
  });
  it('the estimate counts objects and bytes per class and names archived keys', () => {
    const e: StorageClassEstimate = { classes: {}, archived: [] };
    addToEstimate(e, { site: 'sg', key: 'a', size: 10 });
    addToEstimate(e, { site: 'sg', key: 'b', size: 5, storageClass: 'GLACIER' });
    addToEstimate(e, { site: 'us', key: 'c', size: 7, storageClass: 'DEEP_ARCHIVE' });
    addToEstimate(e, { site: 'us', key: 'd', size: 3, storageClass: 'STANDARD_IA' });
    expect(e.classes).toEqual({ STANDARD: { objects: 1, bytes: 10 }, GLACIER: { objects: 1, bytes: 5 }, DEEP_ARCHIVE: { objects: 1, bytes: 7 }, STANDARD_IA: { objects: 1, bytes: 3 } });
    expect(e.archived.map((a) => `${a.site} ${a.key} ${a.storageClass}`)).toEqual(['sg b GLACIER', 'us c DEEP_ARCHIVE']);
  });
  it('x-amz-restore', () => {
    expect(restoreState(undefined)).toBe('none');
    expect(restoreState('ongoing-request="true"')).toBe('ongoing');
    expect(restoreState('ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"')).toBe('done');
  });
});

/**
 * The restore sequence against recorded S3 responses (versitygw 1.7.0 answers RestoreObject with 501
 * NotImplemented and reports every object as STANDARD, so it cannot play Glacier): the requests Clover
 * sends, in order, and what it makes of each answer.
 */
describe('archived objects (recorded S3 responses)', () => {
  type Step = { command: string; input?: Record<string, unknown>; output?: Record<string, unknown>; error?: { name: string; status: number } };
  const fakeSite = (steps: Step[]) => {
    const sent: { command: string; input: Record<string, unknown> }[] = [];
    const s3 = {
      send: async (cmd: { constructor: { name: string }; input: Record<string, unknown> }) => {
        const command = cmd.constructor.name.replace(/Command$/, '');
        sent.push({ command, input: cmd.input });
        const step = steps.shift();
        if (!step || step.command !== command) throw new Error(`unexpected ${command} (recorded: ${step?.command ?? 'nothing'})`);
        if (step.input) expect(cmd.input).toMatchObject(step.input);
        if (step.error) throw Object.assign(new Error(step.error.name), { name: step.error.name, $metadata: { httpStatusCode: step.error.status } });
        return { $metadata: { httpStatusCode: 200 }, ...step.output };
      },
    } as unknown as S3Client;
    const site: Site = { name: 'sg', bucket: 'b', s3, config: { region: 'r', bucket: 'b', jurisdiction: 'SG', forcePathStyle: true } };
    return { site, sent, steps };
  };
  const run = (site: Site, input: PrepareArchivedInput) => {
    const deps: ActivityDeps = {
      clients: new Map([['sg', site]]), budget: new ByteBudget(1 << 20),
      copy: { multipartThreshold: 1 << 20, minPartSize: 1 << 20, partConcurrency: 1 }, batch: { maxPages: 1, maxMillis: 1000, listPageSize: 1000 },
    };
    const acts = createArchiveActivities(deps);
    // Quiet: the failures these tests expect would be logged as errors.
    return new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR', () => undefined) }).run<[PrepareArchivedInput], PrepareArchivedResult, typeof acts.prepareArchived>(acts.prepareArchived, input);
  };
  const listing = {
    command: 'ListObjectsV2', input: { Prefix: 'users/u/' },
    output: {
      IsTruncated: false,
      Contents: [
        { Key: 'users/u/a', Size: 3, ETag: '"e"', StorageClass: 'STANDARD' },
        { Key: 'users/u/cold', Size: 5, ETag: '"f"', StorageClass: 'GLACIER' },
        { Key: 'users/u/colder', Size: 7, ETag: '"g"', StorageClass: 'DEEP_ARCHIVE' },
      ],
    },
  };

  it('without restoreArchived the user fails at once, one line per archived key', async () => {
    const f = fakeSite([listing]);
    await expect(run(f.site, { userId: 'u', sources: ['sg'], prefix: 'users/u/' })).rejects.toMatchObject({
      type: 'ArchivedObjects', nonRetryable: true,
      message: `${archivedLine('sg', 'users/u/cold', 'GLACIER')}\n${archivedLine('sg', 'users/u/colder', 'DEEP_ARCHIVE')}`,
    });
    expect(f.sent.map((s) => s.command)).toEqual(['ListObjectsV2']);
    expect(archivedLine('sg', 'users/u/cold', 'GLACIER')).toBe('ARCHIVED site sg key users/u/cold (GLACIER): add "restoreArchived" to the plan or restore it');
  });

  it('with restoreArchived: RestoreObject, then HEAD until ongoing-request="false"', async () => {
    const restore = { days: 2, tier: 'Bulk' };
    // First call: nothing asked yet for `cold`; `colder` already being restored (409 on a repeated ask is fine too).
    const first = fakeSite([
      listing,
      { command: 'HeadObject', input: { Key: 'users/u/cold' }, output: {} },
      { command: 'RestoreObject', input: { Key: 'users/u/cold', RestoreRequest: { Days: 2, GlacierJobParameters: { Tier: 'Bulk' } } } },
      { command: 'HeadObject', input: { Key: 'users/u/colder' }, output: {} },
      { command: 'RestoreObject', input: { Key: 'users/u/colder' }, error: { name: 'RestoreAlreadyInProgress', status: 409 } },
    ]);
    expect(await run(first.site, { userId: 'u', sources: ['sg'], prefix: 'users/u/', restore })).toEqual({ archived: 2, pending: 2 });
    expect(first.steps).toEqual([]);
    // After a timer: one still ongoing (no new request), one done.
    const second = fakeSite([
      listing,
      { command: 'HeadObject', input: { Key: 'users/u/cold' }, output: { Restore: 'ongoing-request="true"' } },
      { command: 'HeadObject', input: { Key: 'users/u/colder' }, output: { Restore: 'ongoing-request="false", expiry-date="Fri, 21 Dec 2026 00:00:00 GMT"' } },
    ]);
    expect(await run(second.site, { userId: 'u', sources: ['sg'], prefix: 'users/u/', restore })).toEqual({ archived: 2, pending: 1 });
    // Then both done: the workflow goes on to the copy.
    const third = fakeSite([
      listing,
      { command: 'HeadObject', output: { Restore: 'ongoing-request="false", expiry-date="Fri, 21 Dec 2026 00:00:00 GMT"' } },
      { command: 'HeadObject', output: { Restore: 'ongoing-request="false", expiry-date="Fri, 21 Dec 2026 00:00:00 GMT"' } },
    ]);
    expect(await run(third.site, { userId: 'u', sources: ['sg'], prefix: 'users/u/', restore })).toEqual({ archived: 2, pending: 0 });
    expect(third.sent.map((s) => s.command)).toEqual(['ListObjectsV2', 'HeadObject', 'HeadObject']);
  });

  it('a refused restore fails with the site, key and action named', async () => {
    const f = fakeSite([listing, { command: 'HeadObject', output: {} }, { command: 'RestoreObject', error: { name: 'AccessDenied', status: 403 } }]);
    await expect(run(f.site, { userId: 'u', sources: ['sg'], prefix: 'users/u/', restore: { days: 1, tier: 'Standard' } }))
      .rejects.toThrow(/RestoreObject failed at site sg, bucket b, key "users\/u\/cold"/);
  });
});

/** The storage class on the EU copy's PUT (versitygw accepts the header and reports STANDARD whatever it is). */
describe('storage class of the EU copy (the requests sent)', () => {
  const body = Buffer.from('bytes of an infrequently read object');
  const etag = createHash('md5').update(body).digest('hex');
  const copyWith = async (sourceClass: string | undefined, planned: string | undefined, retention?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number }) => (await putOf(sourceClass, planned, retention)).StorageClass;
  const putOf = async (sourceClass: string | undefined, planned: string | undefined, retention?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number }) => {
    const puts: Record<string, unknown>[] = [];
    const source = {
      name: 'sg', bucket: 'b', config: { region: 'r', bucket: 'b', jurisdiction: 'SG', forcePathStyle: true },
      s3: { send: async () => ({ Body: Readable.from([body]), ContentLength: body.length, ETag: `"${etag}"`, StorageClass: sourceClass, Metadata: {} }) } as unknown as S3Client,
    } satisfies Site;
    const target = {
      name: 'eu-ie', bucket: 't', config: { region: 'r', bucket: 't', jurisdiction: 'IE', forcePathStyle: true },
      s3: {
        send: async (cmd: { input: Record<string, unknown> }) => {
          if (cmd.input.Key === 'users/u/a') puts.push(cmd.input); // not the site probes (e.g. Content-MD5)
          return { ETag: '"t"', ChecksumSHA256: '' };
        },
      } as unknown as S3Client,
    } satisfies Site;
    await copyObject({
      source, target, object: { site: 'sg', key: 'users/u/a', etag, size: body.length, lastModified: '2026-01-01T00:00:00.000Z' }, migrationId: 'm',
      settings: { multipartThreshold: 1 << 20, minPartSize: 1 << 20, partConcurrency: 1 }, budget: new ByteBudget(1 << 20), storageClass: planned, retention,
    });
    expect(puts).toHaveLength(1);
    return puts[0]!;
  };
  it('the plan\'s targetStorageClass, else the source\'s unless STANDARD or archival', async () => {
    expect(await copyWith('STANDARD_IA', undefined)).toBe('STANDARD_IA');
    expect(await copyWith('GLACIER', undefined)).toBeUndefined();
    expect(await copyWith(undefined, undefined)).toBeUndefined();
    expect(await copyWith('GLACIER', 'ONEZONE_IA')).toBe('ONEZONE_IA');
  });
  it('the plan\'s targetRetention: the PUT carries the Object Lock mode and a retain-until date `days` from now', async () => {
    const before = Date.now();
    const put = await putOf(undefined, undefined, { mode: 'COMPLIANCE', days: 30 });
    expect(put.ObjectLockMode).toBe('COMPLIANCE');
    const until = (put.ObjectLockRetainUntilDate as Date).getTime();
    expect(until).toBeGreaterThanOrEqual(before + 30 * 86_400_000);
    expect(until).toBeLessThanOrEqual(Date.now() + 30 * 86_400_000);
    expect((await putOf(undefined, undefined)).ObjectLockMode).toBeUndefined();
  });
});
