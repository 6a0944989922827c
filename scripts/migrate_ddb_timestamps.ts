#!/usr/bin/env -S npx tsx
// Step 4, second command: converts token timestamps to the canonical form, from the dump written by dump-ddb.ts.
//
//   ./scripts/migrate_ddb_timestamps.ts --file ddb-dump.json --table cello --region us-west-2
//
// A launcher: Ctrl-C safety first (lib/cli/launch.ts), then the step itself, lib/repair/main.ts.
import { launch } from '../lib/cli/launch.ts';

await launch(() => import('../lib/repair/main.ts'));
