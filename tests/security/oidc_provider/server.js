// A real OpenID Provider (oidc-provider) on loopback for Lumina's OIDC login tests.
//
// Usage: node server.js --port PORT --client-id ID --client-secret SECRET --redirect-uri URI
// (each also readable from OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI).
// Logging in and consenting happen without a page: GET /interaction/<uid> signs in the
// account described by the `test_account` cookie (base64url JSON of its claims, default
// below) and grants the requested scopes, so a test completes the flow by following
// redirects.
import { generateKeyPairSync } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.OIDC_PORT },
    'client-id': { type: 'string', default: process.env.OIDC_CLIENT_ID },
    'client-secret': { type: 'string', default: process.env.OIDC_CLIENT_SECRET },
    'redirect-uri': { type: 'string', default: process.env.OIDC_REDIRECT_URI },
  },
});
for (const name of ['port', 'client-id', 'client-secret', 'redirect-uri']) {
  if (!args[name]) {
    console.error(`missing --${name}`);
    process.exit(2);
  }
}

const host = '127.0.0.1';
const issuer = `http://${host}:${args.port}`;
const defaultAccount = {
  sub: 'user-1',
  email: 'ada@example.test',
  email_verified: true,
  name: 'Ada Lovelace',
};

// Claims of each account that signed in, so the token endpoint can put them in ID tokens.
const accounts = new Map();

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key-1', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: args['client-id'],
      client_secret: args['client-secret'],
      redirect_uris: [args['redirect-uri']],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['lumina-test-cookie-key'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // Every client must use PKCE.
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  ttl: { AccessToken: 600, Grant: 600, IdToken: 600, Interaction: 600, Session: 600 },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => {
    const claims = accounts.get(id);
    if (!claims) return undefined;
    return { accountId: id, claims: async () => ({ ...claims }) };
  },
});

function accountFrom(ctx) {
  const cookie = ctx.cookies.get('test_account');
  if (!cookie) return defaultAccount;
  return { ...defaultAccount, ...JSON.parse(Buffer.from(cookie, 'base64url').toString('utf8')) };
}

// The non-interactive login and consent: sign in, then grant whatever is missing.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([\w-]+)$/.exec(ctx.path);
  if (ctx.method !== 'GET' || !match) {
    await next();
    return;
  }
  const { prompt, params, session, grantId } = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  if (prompt.name === 'login') {
    const account = accountFrom(ctx);
    accounts.set(account.sub, account);
    result = { login: { accountId: account.sub } };
  } else if (prompt.name === 'consent') {
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { details } = prompt;
    if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
    result = { consent: { grantId: await grant.save() } };
  } else {
    ctx.throw(501, `prompt ${prompt.name} is not handled`);
  }
  ctx.respond = false;
  await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
});

const server = provider.listen(Number(args.port), host, () => {
  console.log(`oidc-provider listening on ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
