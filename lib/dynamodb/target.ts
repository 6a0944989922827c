// Where a step's DynamoDB is: region, table name and endpoint, each checked before any request (a typo is one line, exit 2).
import { runEnvironment } from '../cli/currentRun.ts';
import { ExitCode, UserError } from '../cli/errors.ts';

export interface DynamoTarget {
  region: string;
  /** --endpoint-url; when absent the SDK reads AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL itself. */
  endpointUrl?: string | undefined;
}

export function checkRegion(region: string): void {
  if (!/^[a-z]{2}(-[a-z0-9]+)+$/.test(region)) {
    throw new UserError(`region ${JSON.stringify(region)} is not an AWS region name — use e.g. us-east-1 or eu-west-1`, ExitCode.usage);
  }
}

export function checkTableName(tableName: string): void {
  if (!/^[A-Za-z0-9_.-]{3,255}$/.test(tableName)) {
    throw new UserError(
      `table name ${JSON.stringify(tableName)} is not a DynamoDB table name — use 3 to 255 letters, digits, "_", "-" or "."`,
      ExitCode.usage,
    );
  }
}

/** An endpoint URL the SDK can use: http or https. `source` names the option or environment variable it came from. */
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
  // A password in the URL is at best ignored, and every message naming the endpoint would print it: not echoed here.
  if (url.username !== '' || url.password !== '') {
    throw new UserError(
      `${source} holds a user name or password (user:password@host) — remove it: DynamoDB requests are signed with AWS credentials`,
      ExitCode.usage,
    );
  }
}

/**
 * The endpoint variable the SDK reads when there is no --endpoint-url. One set but empty is returned too, to be
 * refused: the SDK would skip it and send the run to AWS, not what an operator who set it meant.
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
 * The fewest bytes of a BatchGetItem answer the server cut at its size limit: 16 MB less a 400 KB item on AWS, 1 MB
 * on dynalite (any endpoint not on AWS: a mistake either way only slows down or retries at once), less 1 KB rounding.
 */
export function batchGetCutBytes(target: DynamoTarget, env: NodeJS.ProcessEnv = runEnvironment()): number {
  const url = target.endpointUrl ?? endpointFromEnvironment(env)?.url;
  const onAws = url === undefined || /\.(amazonaws\.com(\.cn)?|api\.aws)$/.test(new URL(url).hostname);
  return (onAws ? 16 * 1024 * 1024 - 400 * 1024 : 1024 * 1024) - 1024;
}

/** Where requests go, for messages: the explicit endpoint, the SDK's environment override, or AWS itself. */
export function describeEndpoint(target: DynamoTarget): string {
  return target.endpointUrl ?? endpointFromEnvironment()?.url ?? `https://dynamodb.${target.region}.amazonaws.com`;
}
