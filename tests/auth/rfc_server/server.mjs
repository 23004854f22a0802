// A standards-compliant RFC 6749 authorization server for botkit's token-layer tests: panva/oidc-provider
// (the certified OpenID/OAuth server), configured for plain OAuth 2.0 with refresh-token rotation, PKCE S256,
// RFC 7009 revocation and RFC 8414/OIDC discovery. Only the scaffolding around it is ours: an auto-approving
// interaction (the "browser"), a protected test resource, counters and fault injection for the tests.
//
// Usage: node server.mjs  (env: AT_TTL, RT_TTL seconds). Prints one JSON line {"issuer": ...} when listening.
import http from 'node:http';
import { Provider, errors } from 'oidc-provider';

const AT_TTL = Number(process.env.AT_TTL || 4);
const RT_TTL = Number(process.env.RT_TTL || 60);
const RESOURCE = 'urn:botkit:api';
const API_SCOPES = ['balances.read', 'orders.read', 'orders.create', 'orders.delete', 'deals.read', 'apikeys.read'];

const counts = {};
const bump = (k) => { counts[k] = (counts[k] || 0) + 1; };
let faults = []; // queued [status, retryAfter] answers for the next POST /token requests
let deny = false;

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const clients = [
  ['botkit-basic', 'client_secret_basic'],
  ['botkit-post', 'client_secret_post'],
  // reserved characters in the secret: client_secret_basic must form-encode it (RFC 6749 §2.3.1)
  ['botkit-basic-special', 'client_secret_basic', 'botkit special: secret+/%&~*'],
].map(([id, method, secret]) => ({
  client_id: id,
  client_secret: secret || `${id}-secret`,
  application_type: 'native', // loopback redirect: any port matches (RFC 8252 §7.3)
  redirect_uris: ['http://127.0.0.1/callback', 'http://[::1]/callback'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: method,
}));

const provider = new Provider(issuer, {
  clients,
  cookies: { keys: ['botkit-test-cookie-key'] },
  scopes: ['offline_access', ...API_SCOPES],
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({ scope: API_SCOPES.join(' '), accessTokenFormat: 'opaque', accessTokenTTL: AT_TTL }),
    },
  },
  pkce: { required: () => true },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  ttl: { AccessToken: AT_TTL, RefreshToken: RT_TTL, AuthorizationCode: 60, Grant: 3600, Session: 3600, Interaction: 600 },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
});

provider.on('grant.success', (ctx) => {
  bump(`ok:${ctx.oidc.params.grant_type}`);
  if (ctx.oidc.params.grant_type === 'refresh_token' && ctx.oidc.params.scope) bump('refresh_with_scope');
});
provider.on('grant.error', (ctx, err) => bump(`error:${ctx.oidc.params?.grant_type}:${err.error}`));
provider.on('grant.revoked', () => bump('grant_revoked'));

const json = (res, status, body, headers = {}) => {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (deny) {
    return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'user said no' });
  }
  const { params, prompt } = details;
  if (process.env.RFC_DEBUG) console.error(JSON.stringify(prompt), JSON.stringify(params));
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: 'tester', clientId: params.client_id });
  const d = prompt.details || {};
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  return provider.interactionFinished(req, res, { login: { accountId: 'tester' }, consent: { grantId } }, { mergeWithLastSubmission: false });
}

async function resource(req, res, scope) {
  const auth = req.headers.authorization || '';
  const value = auth.toLowerCase().startsWith('bearer ') ? auth.slice(7).trim() : '';
  const at = value ? await provider.AccessToken.find(value) : undefined;
  if (!at || at.isExpired) {
    bump('resource_401');
    return json(res, 401, { error: 'invalid_token' }, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
  }
  if (!at.scopes.has(scope)) {
    bump('resource_403');
    return json(res, 403, { error: 'insufficient_scope' }, { 'WWW-Authenticate': `Bearer error="insufficient_scope", scope="${scope}"` });
  }
  bump('resource_ok');
  return json(res, 200, { ok: true, scope });
}

const handler = provider.callback();
server.on('request', async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (url.pathname === '/_admin/counts') return json(res, 200, counts);
    if (url.pathname === '/_admin/clear-faults') { faults = []; deny = false; return json(res, 200, {}); }
    if (url.pathname === '/_admin/fault') {
      faults.push([Number(url.searchParams.get('status')), url.searchParams.get('retry_after')]);
      return json(res, 200, { queued: faults.length });
    }
    if (url.pathname === '/_admin/kill-access') {
      // fault injection: one access token dies mid-life, its grant and refresh token stay (RFC 7009 revocation
      // in oidc-provider revokes the whole grant, which is a different test)
      const at = await provider.AccessToken.find(url.searchParams.get('token') || '');
      if (at) await at.destroy();
      return json(res, 200, { killed: Boolean(at) });
    }
    if (url.pathname === '/_admin/deny') { deny = url.searchParams.get('on') === '1'; return json(res, 200, { deny }); }
    if (url.pathname.startsWith('/interaction/')) return await interaction(req, res);
    if (url.pathname.startsWith('/resource/')) return await resource(req, res, decodeURIComponent(url.pathname.slice(10)));
    if (url.pathname === '/token' && req.method === 'POST') {
      bump('token_requests');
      if (faults.length) {
        const [status, retryAfter] = faults.shift();
        bump('token_faults');
        const headers = retryAfter !== null ? { 'Retry-After': retryAfter } : {};
        return json(res, status, { error: 'temporarily_unavailable' }, headers);
      }
    }
    return handler(req, res);
  } catch (err) {
    json(res, 500, { error: 'server_error', error_description: String(err && err.message) });
  }
});

void errors;
process.stdout.write(`${JSON.stringify({ issuer })}\n`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
