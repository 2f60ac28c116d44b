// A real OpenID provider for the end-to-end test: oidc-provider with its development login
// form (any login and password are accepted; the login becomes the account's email).
//
//   node provider.mjs PORT CLIENT_SECRET REDIRECT_URI [REDIRECT_URI ...]
//
// Prints "ready" on standard output once it listens on 127.0.0.1:PORT.
import Provider from 'oidc-provider';

const [port, secret, ...redirectUris] = process.argv.slice(2);
if (!port || !secret || redirectUris.length === 0) {
  console.error('usage: node provider.mjs PORT CLIENT_SECRET REDIRECT_URI...');
  process.exit(2);
}

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'idgate-e2e',
    client_secret: secret,
    redirect_uris: redirectUris,
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
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
  // Put the email in the ID token itself (idgate reads the ID token, not userinfo).
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['idgate-e2e-test-only-cookie-key'] },
});
provider.proxy = false;

provider.listen(Number(port), '127.0.0.1', () => {
  console.log('ready');
});
