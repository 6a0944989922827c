// Where a step's DynamoDB is: the region, the table's name and the endpoint, each checked before any request so a
// typo is one clear line (exit 2) rather than an SDK error after the database was read.
import { runEnvironment } from '../cli/currentRun.ts';
import { ExitCode, UserError } from '../cli/errors.ts';

export interface DynamoTarget {
  region: string;
  /** --endpoint-url; when absent the SDK reads AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL itself. */
  endpointUrl?: string | undefined;
}

const REGION_PATTERN = /^[a-z]{2}(-[a-z0-9]+)+$/;

export function checkRegion(region: string): void {
  if (!REGION_PATTERN.test(region)) {
    throw new UserError(`region ${JSON.stringify(region)} is not an AWS region name — use e.g. us-east-1 or eu-west-1`, ExitCode.usage);
  }
}

const TABLE_NAME_PATTERN = /^[A-Za-z0-9_.-]{3,255}$/;

/** DynamoDB's table-name rule (3–255 of letters, digits, `_`, `-`, `.`), checked before any request. */
export function checkTableName(tableName: string): void {
  if (!TABLE_NAME_PATTERN.test(tableName)) {
    throw new UserError(
      `table name ${JSON.stringify(tableName)} is not a DynamoDB table name — use 3 to 255 letters, digits, "_", "-" or "."`,
      ExitCode.usage,
    );
  }
}

/**
 * An endpoint URL the SDK can use: http or https. `source` names where it came from (the option or the environment
 * variable) in the message.
 */
export function checkEndpointUrl(endpointUrl: string, source = '--endpoint-url'): void {
  if (endpointUrl.trim() === '') {
    const fix = source === '--endpoint-url' ? 'give a URL' : `unset ${source} to use AWS, or set it to a URL`;
    throw new UserError(`${source} is empty — ${fix} such as http://localhost:8000`, ExitCode.usage);
  }
  let url: URL;
  try {
    url = new URL(endpointUrl);
  } catch {
    throw new UserError(`${source} ${JSON.stringify(endpointUrl)} is not a URL — use e.g. http://localhost:8000`, ExitCode.usage);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UserError(`${source} must start with http:// or https://, got ${JSON.stringify(endpointUrl)}`, ExitCode.usage);
  }
  // Requests are signed with AWS credentials; a user or password in the URL is at best ignored, and every message
  // that names the endpoint would print it. Not echoed here for the same reason.
  if (url.username !== '' || url.password !== '') {
    throw new UserError(
      `${source} holds a user name or password (user:password@host) — remove it: DynamoDB requests are signed with AWS credentials`,
      ExitCode.usage,
    );
  }
}

/**
 * The endpoint variable the SDK reads when there is no --endpoint-url: AWS_ENDPOINT_URL_DYNAMODB, else
 * AWS_ENDPOINT_URL (unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true). One that is set but empty is returned too,
 * to be refused: the SDK would skip it and send the run to AWS, which is not what an operator who set it meant.
 */
export function endpointFromEnvironment(env: NodeJS.ProcessEnv = runEnvironment()): { url: string; source: string } | undefined {
  if (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.toLowerCase() === 'true') return undefined;
  for (const source of ['AWS_ENDPOINT_URL_DYNAMODB', 'AWS_ENDPOINT_URL']) {
    const url = env[source];
    if (url !== undefined) return { url, source };
  }
  return undefined;
}

/**
 * The fewest bytes a BatchGetItem answer that the server cut at its size limit holds. DynamoDB cuts at 16 MB (its
 * answer then holds at least 16 MB less one item of at most 400 KB); dynalite, the local server, at 1 MB plus an item.
 * Any endpoint not on AWS is taken for an emulator: the error either way is benign (a cut mistaken for throttling
 * slows down; throttling of more than 1 MB mistaken for a cut is retried at once). Less 1 KB for size-rule rounding.
 */
export function batchGetCutBytes(target: DynamoTarget, env: NodeJS.ProcessEnv = process.env): number {
  const url = target.endpointUrl ?? endpointFromEnvironment(env)?.url;
  const onAws = url === undefined || /\.(amazonaws\.com(\.cn)?|api\.aws)$/.test(new URL(url).hostname);
  return (onAws ? 16 * 1024 * 1024 - 400 * 1024 : 1024 * 1024) - 1024;
}

/** Where requests go, for messages: the explicit endpoint, the SDK's environment override, or AWS itself. */
export function describeEndpoint(target: DynamoTarget): string {
  return target.endpointUrl ?? endpointFromEnvironment()?.url ?? `https://dynamodb.${target.region}.amazonaws.com`;
}
