import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { GetObjectCommand, ListMultipartUploadsCommand, ListPartsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import { destroySiteClients } from '../src/storage/clients';
import { migrationWorkflowId, type MigrationResult } from '../src/workflows/definitions';
import { at, clients, copyCheckpoint, runCli, startWorkerProcess, stopProcess, tmpPlanDir, uniqueId, writePlan } from './helpers';
import { proxiedSites, type ProxiedSites } from './support/proxy';
import { waitUntil } from './support/wait';

const GiB = 1024 * 1024 * 1024;
const CHUNK = 1024 * 1024;

/** 1 GiB of reproducible bytes, generated as a stream (never held in memory). */
function bigStream(): Readable {
  let i = 0;
  return new Readable({
    read() {
      if (i * CHUNK >= GiB) return this.push(null);
      const b = Buffer.alloc(CHUNK, i % 251);
      b.writeUInt32BE(i, 0);
      i++;
      this.push(b);
    },
  });
}

async function sha256Of(stream: Readable): Promise<string> {
  const h = createHash('sha256');
  for await (const c of stream) h.update(c as Buffer);
  return h.digest('hex');
}

/**
 * A worker SIGKILLed in the middle of a 1 GiB multipart copy: the next attempt continues the same upload,
 * reusing every part the target already had, and the object's SHA-256 still comes out right.
 */
describe('part-level resume of a large object', () => {
  const c = clients();
  const workers: ChildProcess[] = [];
  let connection: Connection;
  let proxy: ProxiedSites;
  beforeAll(async () => {
    proxy = await proxiedSites(['sg']);
  });
  afterAll(async () => {
    for (const w of workers) await stopProcess(w, 'SIGKILL');
    destroySiteClients(c);
    await proxy?.close().catch(() => undefined);
    await connection?.close();
  });

  it('continues from the finished parts after the worker is killed', async () => {
    const migrationId = uniqueId('big');
    const userId = `${migrationId}-u`;
    const key = `users/${userId}/video.bin`;
    const src = c.get('sg')!;
    await src.s3.send(new PutObjectCommand({ Bucket: src.bucket, Key: key, Body: bigStream(), ContentLength: GiB }));
    const expected = await sha256Of(bigStream());
    const totalParts = GiB / (16 * 1024 * 1024);

    connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    const client = new Client({ connection });
    const env = { CLOVER_SITES: proxy.sitesFile };
    workers.push(startWorkerProcess(`${migrationId}-a`, [], env));
    const plan = writePlan(tmpPlanDir(), { migrationId, sources: ['sg', 'us'], routing: { default: 'eu-ie' }, users: [{ userId, country: 'DE' }], verify: 'full' });
    expect((await runCli(['start', '--plan', plan])).code).toBe(0);

    const target = c.get('eu-ie')!;
    const parts = async () => {
      const uploadId = (await copyCheckpoint(client, migrationId, userId))?.uploads?.[key]?.uploadId;
      if (!uploadId) return { uploadId, parts: 0 };
      return { uploadId, parts: (await target.s3.send(new ListPartsCommand({ Bucket: target.bucket, Key: key, UploadId: uploadId }))).Parts?.length ?? 0 };
    };
    const { uploadId } = await waitUntil('a quarter of the parts are uploaded', parts, (p) => p.parts >= totalParts / 4, { timeoutMs: 120_000 });
    // The source is held, so the copy is still mid-object when the worker dies, however fast it is.
    await proxy.hold('sg');
    await stopProcess(at(workers, 0), 'SIGKILL');
    // The target's own part list after the kill: what the next attempt must not send again.
    const partsAtKill = (await target.s3.send(new ListPartsCommand({ Bucket: target.bucket, Key: key, UploadId: uploadId }))).Parts?.length ?? 0;
    expect(partsAtKill).toBeGreaterThanOrEqual(totalParts / 4);
    expect(partsAtKill).toBeLessThan(totalParts);

    // The new worker reaches the source directly: the held proxy keeps the dead worker's connections, and
    // toxiproxy cannot drop a hold while those still have bytes in it.
    workers.push(startWorkerProcess(`${migrationId}-b`));
    const r = (await client.workflow.getHandle(migrationWorkflowId(migrationId)).result()) as MigrationResult;
    expect(r).toMatchObject({ phase: 'completed', usersDone: 1 });
    expect(r.counters.partsReused).toBeGreaterThanOrEqual(partsAtKill); // none of them was sent again
    expect(r.counters.partsReused).toBeLessThanOrEqual(totalParts);

    const got = await target.s3.send(new GetObjectCommand({ Bucket: target.bucket, Key: key }));
    expect(got.ContentLength).toBe(GiB);
    expect(got.Metadata?.['clover-sha256']).toBe(expected);
    expect(await sha256Of(got.Body as Readable)).toBe(expected);
    const uploads = await target.s3.send(new ListMultipartUploadsCommand({ Bucket: target.bucket, Prefix: `users/${userId}/` }));
    expect(uploads.Uploads ?? []).toEqual([]);
    expect((await runCli(['verify', migrationId])).code).toBe(0);
  });
});
