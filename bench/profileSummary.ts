// Summarises a V8 CPU profile (written by `npm run bench -- --cpu-prof`, or `node --cpu-prof`): where the time
// went, by package or file (@aws-sdk, postgres, lib/load/, node internals, GC, idle) and by function (self time).
//
//   node --import tsx bench/profileSummary.ts <file.cpuprofile> [--top 25]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives: a package, a file of this project, node's internals, or V8's pseudo-frames. */
export function areaOf(url: string, functionName: string): string {
  if (url === '') return `(${functionName.replace(/[()]/g, '') || 'native'})`;
  const packageMatch = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (packageMatch) {
    const name = packageMatch[1]!;
    // The AWS SDK is dozens of packages; one line for all of them reads better.
    return name.startsWith('@aws-sdk/') || name.startsWith('@smithy/') ? '@aws-sdk + @smithy' : name;
  }
  if (url.startsWith('node:')) return 'node internals';
  const projectMatch = /\/((?:lib|scripts|bench|tests)\/[^/]+)$/.exec(url);
  return projectMatch ? projectMatch[1]! : url;
}

export interface ProfileSummary {
  totalMs: number;
  byArea: { area: string; ms: number }[];
  byFunction: { name: string; ms: number }[];
}

export function summariseProfile(profile: CpuProfile): ProfileSummary {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMs = new Map<number, number>();
  profile.samples.forEach((id, index) => {
    selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0) / 1000);
  });
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let totalMs = 0;
  for (const [id, ms] of selfMs) {
    const frame = nodes.get(id)!.callFrame;
    totalMs += ms;
    const area = areaOf(frame.url, frame.functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + ms);
    const where =
      frame.url === ''
        ? ''
        : ` ${frame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/((?:lib|scripts|bench)\/)/, '$1')}:${frame.lineNumber + 1}`;
    const name = `${frame.functionName || '(anonymous)'}${where}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
  }
  const sorted = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]);
  return {
    totalMs,
    byArea: sorted(byArea).map(([area, ms]) => ({ area, ms })),
    byFunction: sorted(byFunction).map(([name, ms]) => ({ name, ms })),
  };
}

export function formatProfileSummary(summary: ProfileSummary, top: number): string {
  const share = (ms: number) => `${((ms / summary.totalMs) * 100).toFixed(1).padStart(5)} %`;
  const lines = [`${(summary.totalMs / 1000).toFixed(2)} s sampled`, '', 'by area (self time):'];
  for (const { area, ms } of summary.byArea.slice(0, top)) lines.push(`  ${share(ms)}  ${(ms / 1000).toFixed(2).padStart(7)} s  ${area}`);
  lines.push('', 'by function (self time):');
  for (const { name, ms } of summary.byFunction.slice(0, top)) lines.push(`  ${share(ms)}  ${(ms / 1000).toFixed(2).padStart(7)} s  ${name}`);
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] === import.meta.filename) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
  if (positionals.length !== 1) {
    process.stderr.write('usage: profileSummary.ts <file.cpuprofile> [--top N]\n');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as CpuProfile;
  process.stdout.write(formatProfileSummary(summariseProfile(profile), Number(values.top)));
}
