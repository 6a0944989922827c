// A diagnostic, not part of `npm run bench`: the memory a run actually holds, as opposed to its peak RSS. V8 lets
// garbage pile up between major collections, and longer runs let it pile higher, so peak RSS grows with the run's
// length even when the data held does not. Preloaded with --expose-gc, this collects garbage every 250 ms and keeps
// the largest heap + external memory found right after a collection (the live set), and the largest RSS:
//
//   node --expose-gc --import tsx --import ./bench/liveMemoryHook.ts scripts/<name>.ts ...
//
// It prints one line on stderr at exit. The forced collections slow the run (the dump of 1M tokens: ~30 %): use it
// for memory, never for speed.
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('liveMemoryHook: run node with --expose-gc\n');
} else {
  let liveBytes = 0;
  let rssBytes = 0;
  setInterval(() => {
    gc();
    const usage = process.memoryUsage();
    liveBytes = Math.max(liveBytes, usage.heapUsed + usage.external);
  }, 250).unref();
  setInterval(() => {
    rssBytes = Math.max(rssBytes, process.memoryUsage().rss);
  }, 50).unref();
  const mib = (bytes: number) => (bytes / 1048576).toFixed(0);
  process.on('exit', () =>
    process.stderr.write(`live memory (heap + external after GC): ${mib(liveBytes)} MiB at most; RSS ${mib(rssBytes)} MiB at most\n`),
  );
}
