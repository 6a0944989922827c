#!/usr/bin/env -S npx tsx
// Step 4, first command: every item of a DynamoDB table, as a JSON array of plain objects, written to a file.
//
//   ./scripts/dump-ddb.ts --table cello --output dump.json --region us-west-2
//
// A launcher: Ctrl-C safety first (lib/cli/launch.ts), then the step itself, lib/dumpDdb/main.ts.
import { launch } from '../lib/cli/launch.ts';

await launch(() => import('../lib/dumpDdb/main.ts'));
