#!/usr/bin/env -S npx tsx
// Step 1 of the migration guide: every project and token of the Cello PostgreSQL database, written to a JSON file.
//
//   PGPASSWORD=... npx tsx scripts/migrate_dump_postgres.ts localhost cello_user cello_db migration_data.json
//
// A launcher: Ctrl-C safety first (lib/cli/launch.ts), then the step itself, lib/dump/main.ts.
import { launch } from '../lib/cli/launch.ts';

await launch(() => import('../lib/dump/main.ts'));
