// The public readers; being split out of scanner.ts (issue 13).
export * from './scanner.ts';
