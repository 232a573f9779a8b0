import { request, type IncomingMessage, type ServerResponse } from 'node:http';

/**
 * Sends `req` on to `upstream` unchanged (method, path, headers, and its body, or `body` when the caller
 * has read it already) and its answer back: the pass-through of the tests' own HTTP proxies.
 */
export function forward(upstream: URL, req: IncomingMessage, res: ServerResponse, body?: Buffer): void {
  const fwd = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
    res.writeHead(up.statusCode ?? 502, up.headers);
    up.pipe(res);
  });
  fwd.on('error', (err) => res.writeHead(502).end(err.message));
  if (body) fwd.end(body);
  else req.pipe(fwd);
}
