import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  GuideFormatError,
  ShellSyntaxError,
  compareShape,
  extractCodeBlocks,
  findBlock,
  isShellBlock,
  lineShape,
  localSubstitutions,
  mentionedScripts,
  outputShape,
  parseCommand,
  reverseSubstitutions,
  scriptInvocation,
  splitCommands,
  substitute,
  type LocalValues,
} from '../../tools/guideCommands.ts';

const FENCE = '```';

// ---- code blocks -------------------------------------------------------------------------------------------------

test('extractCodeBlocks reads language, tags, attributes, text, line and heading', () => {
  const markdown = ['# Guide', '', '## Step 1', 'text', `${FENCE}sh id=extract no-test`, 'echo one', 'echo two', FENCE, ''].join('\n');
  const [block] = extractCodeBlocks(markdown);
  assert.ok(block);
  assert.equal(block.language, 'sh');
  assert.deepEqual([...block.tags], ['no-test']);
  assert.deepEqual([...block.attributes], [['id', 'extract']]);
  assert.equal(block.text, 'echo one\necho two\n');
  assert.equal(block.line, 5);
  assert.equal(block.heading, 'Step 1');
  assert.ok(isShellBlock(block));
});

test('extractCodeBlocks returns blocks in document order, of every language', () => {
  const markdown = [`${FENCE}text output`, 'a', FENCE, `${FENCE}json file=x.json`, '{}', FENCE, `${FENCE}bash`, 'b', FENCE].join('\n');
  const blocks = extractCodeBlocks(markdown);
  assert.deepEqual(
    blocks.map((block) => block.language),
    ['text', 'json', 'bash'],
  );
  assert.deepEqual(
    blocks.map((block) => isShellBlock(block)),
    [false, false, true],
  );
  assert.equal(blocks[1]!.attributes.get('file'), 'x.json');
});

test('extractCodeBlocks strips the indentation of a fence inside a list item', () => {
  const markdown = ['- install:', '', `  ${FENCE}sh`, '  npm install', '    indented more', `  ${FENCE}`].join('\n');
  assert.equal(extractCodeBlocks(markdown)[0]!.text, 'npm install\n  indented more\n');
});

test('a longer fence may hold a shorter one, and ~~~ fences count', () => {
  const markdown = ['````md', FENCE, 'inner', FENCE, '````', '~~~sh', 'echo', '~~~'].join('\n');
  const blocks = extractCodeBlocks(markdown);
  assert.equal(blocks.length, 2);
  assert.equal(blocks[0]!.text, `${FENCE}\ninner\n${FENCE}\n`);
  assert.equal(blocks[1]!.text, 'echo\n');
});

test('an empty block has empty text; a heading inside a block is not a heading', () => {
  const [empty, after] = extractCodeBlocks([`${FENCE}sh`, FENCE, `${FENCE}sh`, '# comment', FENCE].join('\n'));
  assert.equal(empty!.text, '');
  assert.equal(after!.heading, '');
});

test('an unclosed fence is an error naming its line', () => {
  assert.throws(
    () => extractCodeBlocks(['text', `${FENCE}sh`, 'echo'].join('\n')),
    (error: unknown) => error instanceof GuideFormatError && /line 2/.test(error.message),
  );
});

test('findBlock returns the one block with the id, and refuses none or two', () => {
  const blocks = extractCodeBlocks([`${FENCE}sh id=a`, 'x', FENCE, `${FENCE}sh id=b`, 'y', FENCE, `${FENCE}sh id=b`, 'z', FENCE].join('\n'));
  assert.equal(findBlock(blocks, 'a').text, 'x\n');
  assert.throws(() => findBlock(blocks, 'b'), /2 code blocks with id=b/);
  assert.throws(() => findBlock(blocks, 'c'), /0 code blocks with id=c/);
});

// ---- commands ----------------------------------------------------------------------------------------------------

test('splitCommands joins continuation lines and drops comments and blank lines', () => {
  const text = '# a comment\n\naws dynamodb get-item \\\n  --table-name cello \\\n  --key x\necho done   # trailing\n';
  assert.deepEqual(splitCommands(text), ['aws dynamodb get-item    --table-name cello    --key x', 'echo done']);
});

test('splitCommands keeps # inside quotes and inside words, and quotes spanning lines', () => {
  assert.deepEqual(splitCommands('echo \'PROJECT#a\' TOKEN#b "x # y"\n'), ['echo \'PROJECT#a\' TOKEN#b "x # y"']);
  assert.deepEqual(splitCommands("echo 'one\ntwo'\necho three\n"), ["echo 'one\ntwo'", 'echo three']);
});

test('splitCommands refuses an unterminated quote', () => {
  assert.throws(() => splitCommands("echo 'open\n"), GuideFormatError);
});

test('parseCommand splits words as bash does: quotes, escapes, assignments', () => {
  const parsed = parseCommand(`PGPASSWORD='s3 cret' PGSSLMODE=require npx tsx scripts/x.ts "a b" c\\ d '{"k":"v"}'`);
  assert.equal(parsed.kind, 'run');
  if (parsed.kind !== 'run') return;
  assert.deepEqual(
    [...parsed.assignments],
    [
      ['PGPASSWORD', 's3 cret'],
      ['PGSSLMODE', 'require'],
    ],
  );
  assert.deepEqual(parsed.words, ['npx', 'tsx', 'scripts/x.ts', 'a b', 'c d', '{"k":"v"}']);
});

test('parseCommand reads export NAME=value', () => {
  assert.deepEqual(parseCommand("export PGPASSWORD='your_password'"), { kind: 'export', name: 'PGPASSWORD', value: 'your_password' });
  assert.throws(() => parseCommand('export A B'), ShellSyntaxError);
});

test('a quoted NAME=value is a word, not an assignment', () => {
  const parsed = parseCommand(`'A=b' run`);
  assert.ok(parsed.kind === 'run');
  assert.equal(parsed.assignments.size, 0);
  assert.deepEqual(parsed.words, ['A=b', 'run']);
});

test('parseCommand refuses pipes, redirections, expansions and globs', () => {
  for (const command of ['a | b', 'a > f', 'a; b', 'a && b', 'echo $HOME', 'echo "$HOME"', 'ls *.json', 'echo [x]', 'echo `x`', 'A=b']) {
    assert.throws(() => parseCommand(command), ShellSyntaxError, command);
  }
});

test('scriptInvocation recognises npx tsx scripts/x.ts and ./scripts/x.ts, nothing else', () => {
  const viaNpx = scriptInvocation(parseCommand('PGPASSWORD=x npx tsx scripts/migrate_dump_postgres.ts localhost u d out.json'));
  assert.deepEqual(viaNpx && { env: [...viaNpx.env], script: viaNpx.script, args: viaNpx.args }, {
    env: [['PGPASSWORD', 'x']],
    script: 'migrate_dump_postgres.ts',
    args: ['localhost', 'u', 'd', 'out.json'],
  });
  assert.deepEqual(scriptInvocation(parseCommand('./scripts/dump-ddb.ts --table cello'))?.args, ['--table', 'cello']);
  assert.equal(scriptInvocation(parseCommand('./scripts/dump-ddb.ts'))?.script, 'dump-ddb.ts');
  assert.equal(scriptInvocation(parseCommand('aws dynamodb list-tables')), undefined);
  assert.equal(scriptInvocation(parseCommand('npx tsc --noEmit')), undefined);
  assert.equal(scriptInvocation(parseCommand('./other/x.ts')), undefined);
  assert.equal(scriptInvocation(parseCommand('export A=b')), undefined);
});

test('mentionedScripts lists each scripts/<name>.ts once, in order', () => {
  const text = 'run `npx tsx scripts/b.ts`, then ./scripts/dump-ddb.ts and scripts/b.ts again; not lib/scripts/c.ts or myscripts/d.ts';
  assert.deepEqual(mentionedScripts(text), ['b.ts', 'dump-ddb.ts']);
});

// ---- placeholders ------------------------------------------------------------------------------------------------

const LOCAL: LocalValues = {
  postgresHostPort: '127.0.0.1:54321',
  user: 'postgres',
  rollbackUser: 'rollback_4242_3',
  database: 'cello_4242_1',
  password: 'pw-123',
  table: 'cello_4242_2',
  endpoint: 'http://127.0.0.1:40000',
};

test('localSubstitutions maps every host placeholder, with or without a port, to the local server', () => {
  const apply = (text: string) => substitute(text, localSubstitutions(LOCAL));
  assert.equal(apply('x localhost u'), 'x 127.0.0.1:54321 u');
  assert.equal(apply('x localhost:5433 u'), 'x 127.0.0.1:54321 u');
  assert.equal(apply('x db.example.com:5432 u'), 'x 127.0.0.1:54321 u');
  assert.equal(apply('x db.example.com u'), 'x 127.0.0.1:54321 u');
  assert.equal(apply('x 192.168.1.100:5432 u'), 'x 127.0.0.1:54321 u');
});

test('localSubstitutions maps user, database, password, table and endpoint, and leaves look-alikes', () => {
  const apply = (text: string) => substitute(text, localSubstitutions(LOCAL));
  assert.equal(
    apply(`export PGPASSWORD='your_password'\nx localhost cello_user cello_db migration_data.json`),
    `export PGPASSWORD='pw-123'\nx 127.0.0.1:54321 postgres cello_4242_1 migration_data.json`,
  );
  assert.equal(
    apply('load f.json cello us-west-2 --endpoint-url http://localhost:8000'),
    'load f.json cello_4242_2 us-west-2 --endpoint-url http://127.0.0.1:40000',
  );
  assert.equal(apply('--table-name cello --table cello'), '--table-name cello_4242_2 --table cello_4242_2');
  assert.equal(apply('x localhost cello_rollback cello_db cello us-west-2'), 'x 127.0.0.1:54321 rollback_4242_3 cello_4242_1 cello_4242_2 us-west-2');
  assert.equal(apply('cello-migrate cello.json PROJECT#cello docs/cello'), 'cello-migrate cello.json PROJECT#cello docs/cello');
  assert.equal(apply('us-west-2 @localhost example.com'), 'us-west-2 @localhost example.com');
});

test("localSubstitutions maps psql's -h and -p", () => {
  assert.equal(
    substitute('psql -h localhost -p 5432 -U cello_user -d cello_db', localSubstitutions(LOCAL)),
    'psql -h 127.0.0.1 -p 54321 -U postgres -d cello_4242_1',
  );
});

test('reverseSubstitutions maps the local table, database, server, endpoint and users back, not the superuser', () => {
  const apply = (text: string) => substitute(text, reverseSubstitutions(LOCAL));
  assert.equal(apply('GRANT INSERT ON projects TO rollback_4242_3;'), 'GRANT INSERT ON projects TO cello_rollback;');
  assert.equal(substitute('TO reader_1_2;', reverseSubstitutions({ ...LOCAL, user: 'reader_1_2' })), 'TO cello_user;');
  assert.equal(apply('Dumped 6 items from table cello_4242_2 (region us-west-2)'), 'Dumped 6 items from table cello (region us-west-2)');
  assert.equal(apply('at 127.0.0.1:54321 in cello_4242_1 via http://127.0.0.1:40000'), 'at localhost:5432 in cello_db via http://localhost:8000');
  assert.equal(apply('user postgres'), 'user postgres');
});

// ---- shapes ------------------------------------------------------------------------------------------------------

test('lineShape abstracts numbers and both timestamp formats, differently', () => {
  assert.equal(lineShape('Items loaded: 1,234,567  '), 'Items loaded: <n>');
  assert.equal(
    lineShape('  created_at: 2022-02-02 18:01:49.345261+00 → 2022-02-02T18:01:49.345261000Z'),
    '  created_at: <pg-timestamp> → <iso-timestamp>',
  );
  assert.equal(lineShape('2023-06-15 09:30:00.5+05:30'), '<pg-timestamp>');
  assert.equal(lineShape('[PROJECT#my-project][TOKEN#tkn-123]:'), '[PROJECT#my-project][TOKEN#tkn-<n>]:');
  assert.equal(lineShape('took 0.5 s'), 'took <n> s');
});

test('outputShape drops leading and trailing blank lines, not inner ones', () => {
  assert.deepEqual(outputShape('\n\na 1\n\nb\n\n'), ['a <n>', '', 'b']);
  assert.deepEqual(outputShape('a\r\nb\r\n'), ['a', 'b']);
});

test('compareShape accepts other numbers and timestamps, and repeated lines', () => {
  const expected =
    'Summary:\n[PROJECT#p][TOKEN#t]:\n  created_at: 2022-02-02 18:01:49+00 → 2022-02-02T18:01:49.000000000Z\n  ✓ Updated\n\nTotal: 150\n';
  const actual =
    'Summary:\n[PROJECT#p][TOKEN#t]:\n  created_at: 2021-01-01 00:00:00.5+00 → 2021-01-01T00:00:00.500000000Z\n  ✓ Updated\n\n' +
    '[PROJECT#p][TOKEN#t]:\n  created_at: 2020-01-01 00:00:00+00 → 2020-01-01T00:00:00.000000000Z\n  ✓ Updated\n\nTotal: 2\n';
  assert.equal(compareShape(expected, actual), undefined);
});

test('compareShape refuses a line of a kind the guide does not show', () => {
  const mismatch = compareShape('Loaded 6 records\nDone.\n', 'Loaded 6 records\nwarning: something\nDone.\n');
  assert.match(mismatch ?? '', /line 2 of the output has a shape the guide does not show:\n {2}warning: something/);
});

test('compareShape refuses an output missing a line the guide shows, or with lines out of order', () => {
  assert.match(compareShape('a\nb\nc\n', 'a\nc\n') ?? '', /line 2 of the guide's output is missing/);
  assert.match(compareShape('a\nb\n', 'b\na\n') ?? '', /line 2 of the guide's output is missing/);
  assert.match(compareShape('x\n', '') ?? '', /line 1 of the guide's output is missing/);
});

test('compareShape tells canonical from legacy timestamps', () => {
  assert.notEqual(compareShape('created_at: 2022-02-02 18:01:49+00\n', 'created_at: 2022-02-02T18:01:49.000000000Z\n'), undefined);
});
