#!/usr/bin/env -S npx tsx
// Step 5 of the migration guide: does the DynamoDB table hold exactly what PostgreSQL holds?
//
//   PGPASSWORD=... npx tsx scripts/verify_migration.ts localhost cello_user cello_db cello us-west-2
//
// A launcher: Ctrl-C safety first (lib/cli/launch.ts), then the step itself, lib/verify/main.ts.
import { launch } from '../lib/cli/launch.ts';

await launch(() => import('../lib/verify/main.ts'));
