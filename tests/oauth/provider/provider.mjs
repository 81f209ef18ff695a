// The OpenID provider the OAuth tests run against: oidc-provider (OpenID Certified) on loopback,
// configured entirely by the JSON file named on the command line (tests/oauth/oidc.py writes it):
//   issuer, port         where it listens (http://127.0.0.1:PORT)
//   keys                 its private signing JWKs; the first one signs
//   resources            {indicator: {scope, format: "jwt"|"opaque", alg}}: the RFC 8707
//                        resource servers it issues tokens for
//   clientScopes         {client id: scope}: what those clients may get at any resource (the
//                        resource's whole scope for the others)
//   opaqueClients        client ids whose tokens are opaque whatever the resource's format
//   clients              static client metadata (client credentials, introspection, auth code)
//   tenantClaim          a claim every access token carries: "org-" + the account (or client)
//   untenantedClients    client ids whose access tokens lack the tenant claim
// Dynamic client registration and the development login/consent pages are on (the tests drive
// them headlessly). Each request is printed as one JSON line, so tests can count what was asked.
import { readFileSync } from 'node:fs';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const provider = new Provider(config.issuer, {
  jwks: { keys: config.keys },
  clients: config.clients,
  // The resource's scopes listed here too, as providers do: dynamic registration accepts only these.
  scopes: ['openid', 'offline_access', ...new Set(Object.values(config.resources).flatMap((r) => r.scope.split(' ')))],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client, oneOf) => oneOf,
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, indicator, client) {
        const server = config.resources[indicator];
        if (!server) throw new errors.InvalidTarget();
        const format = config.opaqueClients.includes(client.clientId) ? 'opaque' : server.format;
        return {
          scope: config.clientScopes[client.clientId] ?? server.scope,
          audience: indicator,
          accessTokenTTL: 600,
          accessTokenFormat: format,
          ...(format === 'jwt' ? { jwt: { sign: { alg: server.alg } } } : {}),
        };
      },
    },
  },
  async extraTokenClaims(ctx, token) {
    const who = token.accountId ?? token.clientId;
    if (!token.accountId && config.untenantedClients.includes(token.clientId)) return {};
    return { [config.tenantClaim]: `org-${who}` };
  },
  async findAccount(ctx, sub) {
    return { accountId: sub, claims: () => ({ sub }) };
  },
});
provider.proxy = false;

provider.use(async (ctx, next) => {
  await next();
  console.log(JSON.stringify({ method: ctx.method, path: ctx.path, status: ctx.status }));
});

provider.listen(config.port, '127.0.0.1', () => {
  console.log(JSON.stringify({ ready: config.issuer }));
});
