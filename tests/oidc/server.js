// A real OpenID provider (panva's certified `oidc-provider`) on 127.0.0.1 for Keel's
// OAuth tests, plus a few routes answering in GitHub's documented shapes (GitHub is
// OAuth2 without OpenID Connect: /login/oauth/authorize, /login/oauth/access_token,
// /user, /user/emails).
//
// Start: `node server.js` (from a folder where `oidc-provider` is installed). It
// listens on a random port and prints `LISTENING <port>` on stdout.
//
// Logins are approved at once: the account is the `login_hint` of the authorization
// request (default `alice@example.com`); its email is verified unless it starts with
// `unverified`. Consent is granted automatically. Clients:
//   keel / keel-secret           client_secret_basic (generic OIDC by discovery)
//   keel-google / google-secret  client_secret_post (the `google` provider type)
//   other / other-secret         another client, to try codes across clients
// Any http://127.0.0.1:<port>/v1/auth/oauth/<name>/callback is an allowed redirect.

import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

function account(id) {
  const email = id.includes('@') ? id : `${id}@example.com`;
  return {
    sub: id,
    email,
    email_verified: !email.startsWith('unverified'),
    name: email.split('@')[0],
  };
}

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = server.address().port;
const issuer = `http://127.0.0.1:${port}`;

const client = (id, secret, method) => ({
  client_id: id,
  client_secret: secret,
  redirect_uris: ['http://127.0.0.1/v1/auth/oauth/local/callback'],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: method,
});

const provider = new Provider(issuer, {
  clients: [
    client('keel', 'keel-secret', 'client_secret_basic'),
    client('keel-google', 'google-secret', 'client_secret_post'),
    client('other', 'other-secret', 'client_secret_basic'),
  ],
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return account(id); } };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // First-party test clients: consent is implied.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
});

// Any loopback port, any provider name: Keel's test servers listen on random ports.
provider.Client.prototype.redirectUriAllowed = function allowed(uri) {
  return /^http:\/\/127\.0\.0\.1:\d+\/v1\/auth\/oauth\/[a-z0-9_]+\/callback$/.test(uri);
};
provider.on('server_error', (ctx, err) => console.error('server_error', err));

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const accountId = details.params.login_hint || 'alice@example.com';
  await provider.interactionFinished(req, res, { login: { accountId } }, {
    mergeWithLastSubmission: false,
  });
}

// ---- GitHub's shapes ----
const codes = new Map();
const tokens = new Map();

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function form(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

async function github(req, res, url) {
  const path = url.pathname.slice('/github'.length);
  if (path === '/login/oauth/authorize' && req.method === 'GET') {
    const q = url.searchParams;
    if (q.get('client_id') !== 'gh-client') return json(res, 404, { error: 'unknown client' });
    const code = crypto.randomBytes(16).toString('hex');
    codes.set(code, {
      login: q.get('login') || 'octocat',
      challenge: q.get('code_challenge'),
      redirect: q.get('redirect_uri'),
    });
    const to = new URL(q.get('redirect_uri'));
    to.searchParams.set('code', code);
    to.searchParams.set('state', q.get('state'));
    res.writeHead(302, { location: to.toString() });
    return res.end();
  }
  if (path === '/login/oauth/access_token' && req.method === 'POST') {
    const f = await form(req);
    const grant = codes.get(f.get('code'));
    codes.delete(f.get('code'));
    const verifier = f.get('code_verifier') || '';
    const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    // GitHub answers errors with 200 and an `error` member.
    if (!grant || f.get('client_id') !== 'gh-client' || f.get('client_secret') !== 'gh-secret'
      || grant.challenge !== challenge || grant.redirect !== f.get('redirect_uri')) {
      return json(res, 200, {
        error: 'bad_verification_code',
        error_description: 'The code passed is incorrect or expired.',
        error_uri: 'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code',
      });
    }
    const token = `gho_${crypto.randomBytes(16).toString('hex')}`;
    tokens.set(token, grant.login);
    return json(res, 200, { access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
  }
  const auth = (req.headers.authorization || '').replace(/^(Bearer|token) /i, '');
  const login = tokens.get(auth);
  if (!login) return json(res, 401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' });
  if (path === '/user') {
    return json(res, 200, {
      login, id: 583231, node_id: 'MDQ6VXNlcjU4MzIzMQ==', type: 'User',
      name: 'The Octocat', email: null,
    });
  }
  if (path === '/user/emails') {
    return json(res, 200, [
      { email: `${login}@users.noreply.github.com`, primary: false, verified: true, visibility: null },
      { email: `${login}@github.example`, primary: true, verified: !login.startsWith('unverified'), visibility: 'public' },
    ]);
  }
  return json(res, 404, { message: 'Not Found' });
}

const callback = provider.callback();
server.on('request', async (req, res) => {
  const url = new URL(req.url, issuer);
  try {
    if (url.pathname.startsWith('/interaction/')) return await interaction(req, res);
    if (url.pathname.startsWith('/github/')) return await github(req, res, url);
    return callback(req, res);
  } catch (err) {
    console.error(err);
    if (!res.headersSent) json(res, 500, { error: String(err) });
    return undefined;
  }
});

console.log(`LISTENING ${port}`);
