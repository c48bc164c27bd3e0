/**
 * A backend URL with credentials in it (`https://client:secret@idp/introspect`, the usual way to
 * give an RFC 7662 endpoint its HTTP Basic client authentication) split into the URL without them
 * (fetch refuses URLs that carry credentials, and error messages quote URLs) and the
 * `Authorization` header that sends them.
 */
export function splitCredentials(raw: string): { url: URL; authorization: string | undefined } {
  const url = new URL(raw);
  if (url.username === '' && url.password === '') return { url, authorization: undefined };
  const user = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  url.username = '';
  url.password = '';
  return { url, authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}
