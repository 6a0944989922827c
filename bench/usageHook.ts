// Preloaded into every Node.js child the benchmark measures (`node --import tsx --import bench/usageHook.ts ...`):
// when the process exits, however it exits (process.exit from runMain included), it writes its own resource
// usage to the file named by CELLO_BENCH_USAGE_FILE. getrusage's ru_maxrss is the kernel's high-water mark of the
// process's resident set: exact, with no sampling interval that could miss a short peak.
import { writeFileSync } from 'node:fs';

const target = process.env.CELLO_BENCH_USAGE_FILE;
if (target) {
  process.on('exit', () => {
    const usage = process.resourceUsage();
    const figures = { maxRssKiB: usage.maxRSS, userCpuMicros: usage.userCPUTime, systemCpuMicros: usage.systemCPUTime };
    writeFileSync(target, `${JSON.stringify(figures)}\n`);
  });
}
