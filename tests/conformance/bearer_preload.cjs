// Loaded into the conformance CLI with NODE_OPTIONS=--require: adds
// `Authorization: Bearer $CONFORMANCE_BEARER_TOKEN` to every request it sends to
// $CONFORMANCE_BEARER_ORIGIN. @modelcontextprotocol/conformance 0.1.16 has no option for
// request headers: its MCP client uses the global fetch, and dns-rebinding-protection
// uses undici's request(), so both are wrapped. Requests that already carry an
// Authorization header are left as they are.
'use strict';
const { createRequire } = require('node:module');

const token = process.env.CONFORMANCE_BEARER_TOKEN;
const origin = process.env.CONFORMANCE_BEARER_ORIGIN;
const root = process.env.CONFORMANCE_PACKAGE_DIR; // .../node_modules/@modelcontextprotocol/conformance
if (!token || !origin || !root) {
  throw new Error('bearer_preload: CONFORMANCE_BEARER_TOKEN, _ORIGIN and CONFORMANCE_PACKAGE_DIR must be set');
}
const value = `Bearer ${token}`;
const targets = (url) => new URL(String(url)).origin === origin;

const originalFetch = globalThis.fetch;
globalThis.fetch = function fetchWithBearer(input, init) {
  const url = input instanceof Request ? input.url : input;
  if (!targets(url)) return originalFetch(input, init);
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  if (!headers.has('authorization')) headers.set('authorization', value);
  return originalFetch(input, { ...init, headers });
};

// The conformance bundle does `import { request } from 'undici'` (a CommonJS module): its
// named exports are read from module.exports when first imported, after this preload ran.
const undici = createRequire(`${root}/package.json`)('undici');
const originalRequest = undici.request;
undici.request = function requestWithBearer(url, options = {}) {
  if (!targets(url)) return originalRequest.call(this, url, options);
  const headers = { ...(options.headers ?? {}) };
  if (!Object.keys(headers).some((name) => name.toLowerCase() === 'authorization')) headers.authorization = value;
  return originalRequest.call(this, url, { ...options, headers });
};
