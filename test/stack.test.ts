import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { Connection } from '@temporalio/client';
import { destroySiteClients } from '../src/storage/clients';
import { clients, exists, get, put, sha256, uniqueId } from './helpers';

describe('the local stack', () => {
  const c = clients();
  afterAll(() => destroySiteClients(c));

  it('runs four independent S3 sites, each serving its own bucket', async () => {
    expect([...c.keys()].sort()).toEqual(['eu-ie', 'eu-no', 'sg', 'us']);
    for (const s of c.values()) {
      const r = await s.s3.send(new ListBucketsCommand({}));
      expect(r.Buckets?.map((b) => b.Name)).toContain(s.bucket);
    }
  });

  it('an object written through one site is absent from the other three', async () => {
    const key = `${uniqueId('stack')}/hello.txt`;
    await put(c, 'sg', key, 'only in Singapore');
    const got = await get(c, 'sg', key);
    expect(got?.body.toString()).toBe('only in Singapore');
    expect(sha256(got!.body)).toBe(sha256('only in Singapore'));
    for (const other of ['us', 'eu-ie', 'eu-no']) expect(await exists(c, other, key)).toBe(false);
  });

  it('runs a Temporal server with Clover\'s search attributes registered', async () => {
    const conn = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    try {
      const r = await conn.operatorService.listSearchAttributes({ namespace: 'default' });
      for (const a of ['CloverMigrationId', 'CloverUserId', 'CloverPhase', 'CloverTargetSite']) expect(Object.keys(r.customAttributes ?? {})).toContain(a);
    } finally {
      await conn.close();
    }
  });
});
