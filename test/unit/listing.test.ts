import type { ListMultipartUploadsCommandOutput, ListObjectsV2CommandOutput } from '@aws-sdk/client-s3';
import { decodeListedKey, decodeObjectsPage, decodeUploadsPage } from '../../src/storage/listing';

const meta = { $metadata: {} };

describe('listing keys asked with encoding-type=url', () => {
  it('decodes what S3 encodes: form encoding (+ for a space), control characters, UTF-8', () => {
    expect(decodeListedKey('users/u/a%0Db')).toBe('users/u/a\rb');
    expect(decodeListedKey('users/u/tab%09here')).toBe('users/u/tab\there');
    expect(decodeListedKey('users/u/ctl%01x')).toBe('users/u/ctl\x01x');
    expect(decodeListedKey('users/u/sp+ace%2Bplus%2525')).toBe('users/u/sp ace+plus%25');
    expect(decodeListedKey('users/u/%C3%BC%E2%82%AC%F0%9F%98%80')).toBe('users/u/ü€😀');
    expect(decodeListedKey('users/u/x/../y')).toBe('users/u/x/../y');
  });

  it('decodes every key of a page the server says it encoded', () => {
    const page: ListObjectsV2CommandOutput = {
      ...meta, EncodingType: 'url', Prefix: 'users/u+1/', StartAfter: 'users/u+1/a%0D', Delimiter: '%2F',
      Contents: [{ Key: 'users/u+1/a%0Db', Size: 1 }, { Key: 'users/u+1/100%25', Size: 2 }],
      CommonPrefixes: [{ Prefix: 'users/u+1/d%09/' }],
    };
    const d = decodeObjectsPage(page);
    expect(d.Contents?.map((o) => o.Key)).toEqual(['users/u 1/a\rb', 'users/u 1/100%']);
    expect(d.Contents?.map((o) => o.Size)).toEqual([1, 2]);
    expect([d.Prefix, d.StartAfter, d.Delimiter, d.CommonPrefixes?.[0]?.Prefix]).toEqual(['users/u 1/', 'users/u 1/a\r', '/', 'users/u 1/d\t/']);
  });

  it('leaves a page alone when the server ignored the request (versitygw): a key with % or + is not decoded', () => {
    for (const EncodingType of [undefined, '' as never]) {
      const page: ListObjectsV2CommandOutput = { ...meta, EncodingType, Contents: [{ Key: 'users/u/sp ace+plus%25' }, { Key: 'users/u/a\rb' }] };
      expect(decodeObjectsPage(page).Contents?.map((o) => o.Key)).toEqual(['users/u/sp ace+plus%25', 'users/u/a\rb']);
    }
  });

  it('decodes multipart upload listings, including the marker that goes back as KeyMarker', () => {
    const page: ListMultipartUploadsCommandOutput = {
      ...meta, EncodingType: 'url', KeyMarker: 'users/u/a%0Db', NextKeyMarker: 'users/u/tab%09here',
      Uploads: [{ Key: 'users/u/tab%09here', UploadId: 'x+y' }],
    };
    const d = decodeUploadsPage(page);
    expect(d.Uploads).toEqual([{ Key: 'users/u/tab\there', UploadId: 'x+y' }]);
    expect([d.KeyMarker, d.NextKeyMarker]).toEqual(['users/u/a\rb', 'users/u/tab\there']);
    expect(decodeUploadsPage({ ...meta, Uploads: [{ Key: 'a%25' }] }).Uploads?.[0]?.Key).toBe('a%25');
  });
});
