// Where Cello keeps its data in PostgreSQL: two tables, a column per attribute (items.ts, named as it), plus the project
// name that becomes the partition key. The steps check these columns' types; the local stack creates them (Cello's DDL).
import { PROJECT_ATTRIBUTE_ENTRIES, TOKEN_ATTRIBUTE_ENTRIES, type CelloAttribute, type ItemKind } from './items.ts';

export const PROJECTS_TABLE = 'projects';
export const TOKENS_TABLE = 'tokens';
/** The project's name: the key of `projects`, and each token's reference to its project. */
export const PROJECT_COLUMN = 'project';

const TEXT_TYPES = ['character varying', 'text', 'character'] as const;
const TIMESTAMPTZ = ['timestamp with time zone'] as const;

interface SourceColumn {
  name: string;
  /** Type names (as format_type prints them) whose values the migration reads exactly. */
  accepts: readonly string[];
  /** The column's definition in Cello's own migrations. */
  ddl: string;
}

/** An attribute's column as the steps select it: a timestamp as its text, exact under TimeZone UTC (no Date involved). */
export function selectedColumn({ name, kind }: CelloAttribute): string {
  return kind === 'timestamp' ? `${name}::text AS ${name}` : name;
}

/** An attribute's column: its type from its kind, NOT NULL unless nullable, an id the table's key. */
function attributeColumn(entry: CelloAttribute): SourceColumn {
  const type = entry.kind === 'timestamp' ? 'timestamptz' : (entry.sqlType ?? 'text');
  const constraint = entry.kind === 'id' ? ' PRIMARY KEY' : entry.nullable ? '' : ' NOT NULL';
  return { name: entry.name, accepts: entry.kind === 'timestamp' ? TIMESTAMPTZ : TEXT_TYPES, ddl: `${type}${constraint}` };
}

const projectReference: SourceColumn = {
  name: PROJECT_COLUMN,
  accepts: TEXT_TYPES,
  ddl: `varchar(80) NOT NULL REFERENCES ${PROJECTS_TABLE}(${PROJECT_COLUMN}) ON DELETE CASCADE ON UPDATE CASCADE`,
};
/** Where Cello's first migration put the tokens' project column: after token_id and created_at. */
const PROJECT_REFERENCE_POSITION = 2;

/** Cello's tables and columns, in the order its migrations create them (a later attribute's column comes last). */
const SOURCE_TABLES: Record<string, readonly SourceColumn[]> = {
  [PROJECTS_TABLE]: [
    { name: PROJECT_COLUMN, accepts: TEXT_TYPES, ddl: 'varchar(80) PRIMARY KEY' },
    ...PROJECT_ATTRIBUTE_ENTRIES.map(attributeColumn),
  ],
  [TOKENS_TABLE]: TOKEN_ATTRIBUTE_ENTRIES.map(attributeColumn).toSpliced(PROJECT_REFERENCE_POSITION, 0, projectReference),
};

/** Table → column → the type names its values are read exactly from: what lib/postgres/schema.ts checks. */
export const CELLO_TABLES: Record<string, Record<string, readonly string[]>> = Object.fromEntries(
  Object.entries(SOURCE_TABLES).map(([table, columns]) => [table, Object.fromEntries(columns.map((column) => [column.name, column.accepts]))]),
);

/** The Cello schema, exactly as Cello's own migrations create it (for the local stack and the tests). */
export const CELLO_SCHEMA_SQL = `\n${Object.entries(SOURCE_TABLES)
  .map(([table, columns]) => `CREATE TABLE ${table} (\n${columns.map((column) => `  ${column.name} ${column.ddl}`).join(',\n')}\n);\n`)
  .join('')}`;

/** A Cello table as rows to write: its key column and every column, a timestamp's written as timestamptz. */
export interface RowTable {
  name: string;
  key: string;
  columns: readonly { name: string; isTimestamp: boolean }[];
}

const rowColumn = (entry: CelloAttribute) => ({ name: entry.name, isTimestamp: entry.kind === 'timestamp' });
const projectNameColumn = { name: PROJECT_COLUMN, isTimestamp: false };

/** Each item kind's table: a project is a row of `projects` keyed by its name, a token a row of `tokens` keyed by its id. */
export const ROW_TABLES = {
  project: {
    name: PROJECTS_TABLE,
    key: PROJECT_COLUMN,
    columns: [projectNameColumn, ...PROJECT_ATTRIBUTE_ENTRIES.map(rowColumn)],
  },
  token: {
    name: TOKENS_TABLE,
    key: TOKEN_ATTRIBUTE_ENTRIES.find((entry) => entry.kind === 'id')!.name,
    columns: [...TOKEN_ATTRIBUTE_ENTRIES.map(rowColumn), projectNameColumn],
  },
} as const satisfies Record<ItemKind, RowTable>;
