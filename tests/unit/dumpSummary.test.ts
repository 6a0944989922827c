import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDumpSummary, formatOrphanNotice } from '../../lib/dump/summary.ts';
import type { DumpCounts } from '../../lib/dump/dump.ts';

const counts: DumpCounts = {
  projects: 1200,
  tokens: 34567,
  nulls: { repository: 3, expires_at: 40 },
  orphanTokens: 0,
  orphanProjects: 0,
  orphanSample: [],
};

test("the dump summary starts with the original guide's four lines, counts with thousands separators", () => {
  assert.equal(
    formatDumpSummary('out.json', counts, false),
    '✓ Data dump completed successfully!\nFile created: out.json\nProjects processed: 1,200\nCello tokens processed: 34,567\n' +
      'NULL repository: 3, NULL expires_at: 40\nOrphan tokens (project not in projects): 0\n',
  );
});

test('orphan tokens: a warning when left out, a note when written, nothing when there are none', () => {
  const orphans = { ...counts, orphanTokens: 3, orphanProjects: 2, orphanSample: ['a', null] };
  assert.equal(formatOrphanNotice(counts, false), '');
  assert.equal(
    formatOrphanNotice(orphans, false),
    'warning: 3 token(s) belong to 2 project(s) missing from the projects table ("a", null, …); they were NOT written — pass --include-orphans to write them with "repository": null',
  );
  assert.match(formatOrphanNotice(orphans, true), /^note: .*; written under their project name with "repository": null$/);
  assert.match(
    formatDumpSummary('f', orphans, true),
    /Orphan tokens \(project not in projects\): 3 in 2 project\(s\), written with "repository": null\n$/,
  );
});
