// Real OpenID providers for the end-to-end test: oidc-provider with its development login
// form (any login and password are accepted; the login becomes the account's email).
//
//   node provider.mjs PORT DEFAULT_PORT CLIENT_SECRET REDIRECT_URI [REDIRECT_URI ...]
//
// On PORT the email is put in the ID token itself; on DEFAULT_PORT oidc-provider keeps its
// default claims behaviour and releases the email at the userinfo endpoint only (with the
// clients idgate-e2e and idgate-e2e-idtoken). Prints "ready" on standard output once both listen
// on 127.0.0.1.
import Provider from 'oidc-provider';

const [port, defaultPort, secret, ...redirectUris] = process.argv.slice(2);
if (!port || !defaultPort || !secret || redirectUris.length === 0) {
  console.error('usage: node provider.mjs PORT DEFAULT_PORT CLIENT_SECRET REDIRECT_URI...');
  process.exit(2);
}

// Each idgate (its base is the redirect URI without /callback) may be sent back there after a
// sign-out at the provider; the first one also receives the provider's back-channel logouts.
const bases = redirectUris.map((uri) => uri.replace(/\/callback$/, ''));
const client = (id) => ({
  client_id: id,
  client_secret: secret,
  redirect_uris: redirectUris,
  post_logout_redirect_uris: bases.map((base) => `${base}/signed-out`),
  backchannel_logout_uri: `${bases[0]}/backchannel-logout`,
  backchannel_logout_session_required: true,
  response_types: ['code'],
  grant_types: ['authorization_code'],
  token_endpoint_auth_method: 'client_secret_basic',
});

const common = {
  // The account id is what was typed at the login form.
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: `e2e-${id}`, email: id, email_verified: true };
      },
    };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  pkce: { required: () => true },
  // The test's idgate listens on 127.0.0.1, which oidc-provider's outgoing requests (the
  // back-channel logout) refuse by default as a special-use address.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  cookies: { keys: ['idgate-e2e-test-only-cookie-key'] },
};

// The email in the ID token itself.
const inToken = new Provider(`http://127.0.0.1:${port}`, {
  ...common,
  clients: [client('idgate-e2e')],
  conformIdTokenClaims: false,
});
// oidc-provider's defaults: the email at the userinfo endpoint only.
const atUserinfo = new Provider(`http://127.0.0.1:${defaultPort}`, {
  ...common,
  clients: [client('idgate-e2e'), client('idgate-e2e-idtoken')],
});

for (const provider of [inToken, atUserinfo]) {
  provider.on('backchannel.error', (ctx, err, client) => {
    console.error(`back-channel logout to ${client.clientId} (${client.backchannelLogoutUri}) failed: ${err} ${err.cause}`);
  });
}

let listening = 0;
for (const [provider, at] of [[inToken, port], [atUserinfo, defaultPort]]) {
  provider.proxy = false;
  provider.listen(Number(at), '127.0.0.1', () => {
    listening += 1;
    if (listening === 2) {
      console.log('ready');
    }
  });
}
