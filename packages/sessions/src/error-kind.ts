/** What an error says without its message, which may quote a URL or a key: its name and code. */
export function errorKind(err: unknown): string {
  if (!(err instanceof Error)) return 'unknown error';
  const code = (err as { code?: unknown }).code ?? (err.cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? `${err.name} (${code})` : err.name;
}
