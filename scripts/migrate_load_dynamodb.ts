#!/usr/bin/env -S npx tsx
// Step 2 of the migration guide: loads the JSON file written by step 1 into the Cello DynamoDB table.
//
//   npx tsx scripts/migrate_load_dynamodb.ts migration_data.json cello us-west-2
//
// A launcher: Ctrl-C safety first (lib/cli/launch.ts), then the step itself, lib/load/main.ts.
import { launch } from '../lib/cli/launch.ts';

await launch(() => import('../lib/load/main.ts'));
