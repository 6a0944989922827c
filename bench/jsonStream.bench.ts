/**
 * Micro-benchmark: readJsonObjectOfObjects vs the same reader on stream-json
 * (bench/streamJsonReader.ts, the library lib/json/README.md compares against)
 * vs JSON.parse(fs.readFileSync()).
 *
 *   node --import tsx bench/jsonStream.bench.ts [sizeMB]
 *
 * Writes a dump-shaped file (default ~100 MB) into os.tmpdir(), then runs each
 * reader in its own child process so that the peak RSS figures do not mix,
 * alternated three times; prints each run, then the medians.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readJsonObjectOfObjects } from '../lib/json/stream.ts';
import { readJsonObjectOfObjects as readWithStreamJson } from './streamJsonReader.ts';

const MB = 1024 * 1024;

function generate(file: string, targetBytes: number): void {
  const fd = fs.openSync(file, 'w');
  try {
    let written = 0;
    let project = 0;
    let pending: string[] = [];
    let pendingBytes = 0;
    const put = (text: string): void => {
      pending.push(text);
      pendingBytes += text.length; // ASCII only
      if (pendingBytes >= 4 * MB) flush();
    };
    const flush = (): void => {
      const text = pending.join('');
      fs.writeSync(fd, text);
      written += text.length;
      pending = [];
      pendingBytes = 0;
    };
    put('{\n');
    while (written + pendingBytes < targetBytes) {
      // Uneven project sizes: most small, some with very long token lists.
      const tokens = project % 50 === 0 ? 20_000 : 1 + ((project * 7919) % 400);
      put(`${project === 0 ? '' : ',\n'}  "proj-${project}": {\n`);
      put(`    "repository": "https://git.example.com/group-${project % 97}/repo-${project}.git",\n`);
      put(`    "owner": "user-${project % 1000}@example.com",\n    "tokens": [`);
      for (let t = 0; t < tokens; t++) {
        const created = 1_600_000_000 + ((project * 131 + t * 17) % 100_000_000);
        put(
          `${t === 0 ? '\n' : ',\n'}      {"token_id": "tok-${project.toString(36)}-${t.toString(36).padStart(6, '0')}", ` +
            `"created_at": "${new Date(created * 1000).toISOString()}", ` +
            `"expires_at": ${t % 3 === 0 ? 'null' : `"${new Date((created + 86_400 * 90) * 1000).toISOString()}"`}}`,
        );
      }
      put('\n    ]\n  }');
      project++;
    }
    put('\n}\n');
    flush();
  } finally {
    fs.closeSync(fd);
  }
}

async function runOne(mode: string, file: string): Promise<void> {
  const bytes = fs.statSync(file).size;
  const started = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  let projects = 0;
  let tokens = 0;
  if (mode === 'stream' || mode === 'stream-json') {
    for await (const event of (mode === 'stream' ? readJsonObjectOfObjects : readWithStreamJson)(file)) {
      if (event.kind === 'entryStart') projects++;
      else if (event.kind === 'arrayElement') tokens++;
    }
  } else {
    const all = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, { tokens?: unknown[] }>;
    for (const name in all) {
      projects++;
      tokens += all[name]?.tokens?.length ?? 0;
    }
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuStart);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6; // all threads, reads included
  const peakRssMB = process.resourceUsage().maxRSS / 1024; // maxRSS is in KiB
  console.log(JSON.stringify({ mode, seconds, cpuSeconds, mbPerSecond: bytes / MB / seconds, peakRssMB, projects, tokens }));
}

interface Run {
  mode: string;
  seconds: number;
  cpuSeconds: number;
  mbPerSecond: number;
  peakRssMB: number;
  projects: number;
  tokens: number;
}

function printMedians(runs: Run[]): void {
  const median = (values: number[]): number => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const of = (mode: string) => runs.filter((r) => r.mode === mode);
  const base = of('stream');
  const [wall, cpu] = [median(base.map((r) => r.seconds)), median(base.map((r) => r.cpuSeconds))];
  for (const mode of ['stream', 'stream-json', 'JSON.parse']) {
    const [w, c] = [median(of(mode).map((r) => r.seconds)), median(of(mode).map((r) => r.cpuSeconds))];
    console.log(`median ${mode.padEnd(11)} wall ${w.toFixed(2)} s (${(w / wall).toFixed(2)}x)  CPU ${c.toFixed(2)} s (${(c / cpu).toFixed(2)}x)`);
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === '--run') {
    await runOne(process.argv[3]!, process.argv[4]!);
    return;
  }
  const sizeMB = Number(process.argv[2] ?? 100);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jsonstream-bench-'));
  const file = path.join(dir, 'dump.json');
  try {
    const t0 = Date.now();
    generate(file, sizeMB * MB);
    const size = fs.statSync(file).size;
    console.log(`generated ${(size / MB).toFixed(1)} MB in ${Date.now() - t0} ms: ${file}`);
    const self = fileURLToPath(import.meta.url);
    const runs: Run[] = [];
    for (const mode of ['stream', 'stream-json', 'JSON.parse', 'stream', 'stream-json', 'JSON.parse', 'stream', 'stream-json', 'JSON.parse']) {
      const out = execFileSync(process.execPath, [...process.execArgv, self, '--run', mode, file], {
        encoding: 'utf8',
        maxBuffer: 1 << 20,
      });
      const r = JSON.parse(out.trim().split('\n').pop()!) as Run;
      runs.push(r);
      console.log(
        `${r.mode.padEnd(10)} ${r.seconds.toFixed(2)} s  ${r.mbPerSecond.toFixed(0).padStart(4)} MB/s  ` +
          `(CPU ${r.cpuSeconds.toFixed(2)} s)  ` +
          `peak RSS ${r.peakRssMB.toFixed(0)} MB  (${r.projects} projects, ${r.tokens} tokens)`,
      );
    }
    printMedians(runs);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
