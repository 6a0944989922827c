// `npm run demo` and `npm run stack` take no arguments: `-- --help` says what they do, anything else is refused in one
// line, before any server starts (both start one, and a mistyped option must not start it either).

/** Prints `usage` and exits 0 on --help or -h; exits 2 with one line on any other argument; returns when there is none. */
export function takeNoArguments(command: string, usage: string): void {
  const args = process.argv.slice(2);
  if (args.length === 0) return;
  if (args.every((arg) => arg === '--help' || arg === '-h')) {
    process.stdout.write(`Usage: ${command}\n\n${usage}`);
    process.exit(0);
  }
  process.stderr.write(`error: ${command} takes no arguments, and was given ${JSON.stringify(args.join(' '))} — run ${command} -- --help\n`);
  process.exit(2);
}
