// The error the readers throw for an input file that is not the JSON they expect (or cannot be read), and its wording.
export class JsonInputError extends Error {
  override name = 'JsonInputError';
  readonly path: string;
  /** 1-based line and column (in bytes) of the problem, when known. */
  readonly line: number | undefined;
  readonly column: number | undefined;

  constructor(path: string, detail: string, position?: { line: number; column?: number }, options?: { cause?: unknown }) {
    const where =
      position === undefined ? '' : position.column === undefined ? `line ${position.line}: ` : `line ${position.line}, column ${position.column}: `;
    super(`${path}: ${where}${detail}`, options);
    this.path = path;
    this.line = position?.line;
    this.column = position?.column;
  }
}

export const NOT_JSON = ' — the file is not valid JSON';
export const NOT_UTF8 = 'the file is not UTF-8 text';

/** Line and column of bytes[at], given that bytes[from] is at `column` of `line`. */
export function positionIn(bytes: Uint8Array, from: number, at: number, line: number, column: number): { line: number; column: number } {
  let lineStart = from - column + 1;
  for (let j = from; j < at; j++) {
    if (bytes[j] === 0x0a) {
      line++;
      lineStart = j + 1;
    }
  }
  return { line, column: at - lineStart + 1 };
}

export function formatSize(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  if (Number.isInteger(mib)) return `${mib} MiB`;
  if (bytes >= 1024 * 1024) return `${mib.toFixed(1)} MiB`;
  return `${bytes} bytes`;
}
