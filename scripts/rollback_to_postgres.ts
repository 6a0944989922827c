#!/usr/bin/env -S npx tsx
// The way back after the switch: makes PostgreSQL hold what the DynamoDB table holds, in one transaction.
//
//   PGPASSWORD=... npx tsx scripts/rollback_to_postgres.ts localhost cello_user cello_db cello us-west-2 --dry-run
//
// A launcher: Ctrl-C safety first (lib/cli/launch.ts), then the step itself, lib/rollback/main.ts.
import { launch } from '../lib/cli/launch.ts';

await launch(() => import('../lib/rollback/main.ts'));
