import type { Client } from '@temporalio/client';
import { manifestKey } from '../../src/domain/layout';
import type { Manifest } from '../../src/domain/manifest';
import type { SiteClients } from '../../src/storage/clients';
import { SA, userWorkflowId } from '../../src/workflows/definitions';
import { get, type CliResult } from '../helpers';
import { asObject, euState, sourceState, type Application } from './app';
import { waitUntil } from './wait';

/** Shared by the live-data test files: reading a user's state in storage and in Temporal. */

/** The user's newest committed manifest generation (a test that expects one fails naming the user when there is none). */
export async function readManifest(c: SiteClients, id: string, userId: string): Promise<Manifest> {
  const m = await get(c, 'eu-ie', manifestKey(id, userId));
  if (!m) throw new Error(`no manifest for user ${userId} of migration ${id}`);
  return JSON.parse(m.body.toString()) as Manifest;
}

/** The user workflow's CloverPhase. */
export async function userPhase(client: Client, id: string, userId: string): Promise<string | undefined> {
  return (await client.workflow.getHandle(userWorkflowId(id, userId)).describe()).typedSearchAttributes.get(SA.phase);
}

export function waitForInSync(client: Client, id: string, userId: string): Promise<string | undefined> {
  return waitUntil(`user ${userId} waits in phase in-sync`, () => userPhase(client, id, userId), (p) => p === 'in-sync', { timeoutMs: 30_000 });
}

/** The exit code, with what the CLI printed when it is not the expected one (a failing test explains itself). */
export const expectExit = (r: CliResult, code: number) => expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toMatchObject({ code });

/** The EU copy equals the sources as storage lists them and as the application wrote them: every key, byte for byte, both ways. */
export async function expectInStep(c: SiteClients, app: Application, userId: string, sources: string[]): Promise<void> {
  const eu = asObject(await euState(c, userId));
  expect(eu).toEqual(asObject(await sourceState(c, userId, sources)));
  expect(eu).toEqual(asObject(app.expected(userId, sources)));
}
