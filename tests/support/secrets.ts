// Distinctive secrets for the scripts' environment, and the checks that none of them leaks: into stdout, stderr or a
// file (in any usual encoding, or in part), or into the argv of a running script or of any process it started.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import type { ScriptResult } from './harness.ts';

export const DB_PASSWORD = 'pw-Cello-7f3a9c1e-Sekret';
export const WRONG_PASSWORD = 'pw-Wrong-b41d07aa-Sekret';
export const AWS_SECRET = 'aws/Cello+5d2b8e4f/Sekret';
export const AWS_SESSION_TOKEN = 'tok-Cello-91ab3c7d-Sekret';
export const SECRETS = [DB_PASSWORD, WRONG_PASSWORD, AWS_SECRET, AWS_SESSION_TOKEN];

/** AWS credentials with a distinctive secret key and session token (dynalite accepts any). */
export const SECRET_AWS_ENV = {
  AWS_ACCESS_KEY_ID: 'AKIACELLOTESTKEY0001',
  AWS_SECRET_ACCESS_KEY: AWS_SECRET,
  AWS_SESSION_TOKEN,
};

/** Each secret as it could leak: verbatim, URL- or JSON-escaped, base64, and its distinctive middle alone (a part). */
export function leakForms(secret: string): string[] {
  const forms = [secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1), Buffer.from(secret).toString('base64')];
  const middle = secret.split(/[-/+]/).find((part) => /\d/.test(part) && part.length >= 8);
  return middle === undefined ? forms : [...forms, middle];
}

export function assertNoSecret(text: string, where: string, secrets: readonly string[] = SECRETS): void {
  for (const secret of secrets) {
    for (const form of leakForms(secret)) assert.equal(text.includes(form), false, `${where} holds ${JSON.stringify(form)}:\n${text.slice(0, 2000)}`);
  }
}

export function assertNoSecretInOutput(result: ScriptResult, what: string, secrets: readonly string[] = SECRETS): void {
  assertNoSecret(result.stdout, `stdout of ${what}`, secrets);
  assertNoSecret(result.stderr, `stderr of ${what}`, secrets);
}

/** The process and every descendant (children listed by the kernel in /proc/<pid>/task/<tid>/children). */
export function processTree(pid: number): number[] {
  const pids = [pid];
  for (let index = 0; index < pids.length; index++) {
    const current = pids[index]!;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${current}/task`);
    } catch {
      continue; // exited meanwhile
    }
    for (const task of tasks) {
      try {
        for (const child of readFileSync(`/proc/${current}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) pids.push(Number(child));
      } catch {
        // the thread ended meanwhile
      }
    }
  }
  return pids;
}

/** Asserts that no argv in the process tree of `pid` holds a secret; returns how many argv were read. */
export function assertNoSecretInArgv(pid: number): number {
  let read = 0;
  for (const each of processTree(pid)) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${each}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    read++;
    assertNoSecret(cmdline.split('\0').join(' '), `the argv of process ${each}`);
  }
  return read;
}
