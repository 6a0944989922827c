// How tests/run.ts runs the test files (and how tests/testRunner.test.ts runs its own files the same way).
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const support = import.meta.dirname;

/** node's arguments: runTestFiles.ts, with tsx and blockingStdout.ts loaded in it and in every test file's process. */
export function testFilesCommand(files: string[]): string[] {
  return ['--import', 'tsx', '--import', pathToFileURL(join(support, 'blockingStdout.ts')).href, join(support, 'runTestFiles.ts'), ...files];
}
