// A real OpenID Connect provider (npm oidc-provider) on loopback, for moim's login tests.
// Started by the tests with one JSON argument:
//   { "port": 0,                      0: any free port; the chosen one is printed
//     "keysDir": "/tmp/x",            where signing keys live across restarts
//     "keys": ["a"],                  the signing keys published, the first one signs
//     "clients": [{ "client_id", "client_secret", "redirect_uris": [..], "auth": "client_secret_basic" }] }
// Prints `LISTENING <issuer>` once it answers. Accounts are made up on the spot: any login
// name on the dev login form becomes the subject, with a name, an e-mail and a picture.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const opts = JSON.parse(process.argv[2] || '{}');

/** An RS256 key by name, made on first use and kept in keysDir so a restart can publish it again. */
function signingKey(name) {
  const file = path.join(opts.keysDir, `${name}.jwk.json`);
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: `key-${name}`, alg: 'RS256', use: 'sig' };
  fs.mkdirSync(opts.keysDir, { recursive: true });
  fs.writeFileSync(file, JSON.stringify(jwk));
  return jwk;
}

// Listen first, so the issuer can name the port the kernel chose.
const server = http.createServer();
await new Promise((resolve) => server.listen(opts.port || 0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: (opts.clients || []).map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    token_endpoint_auth_method: c.auth || 'client_secret_basic',
    grant_types: ['authorization_code'],
    response_types: ['code'],
  })),
  jwks: { keys: (opts.keys || ['a']).map(signingKey) },
  // Every client must use PKCE, as moim does.
  pkce: { required: () => true },
  // The standard scopes, and Kakao's consent items as its documentation names them.
  claims: {
    openid: ['sub'],
    profile: ['name', 'picture'],
    email: ['email', 'email_verified'],
    profile_nickname: ['nickname'],
    profile_image: ['picture'],
    account_email: ['email', 'email_verified'],
  },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: `${id[0].toUpperCase()}${id.slice(1)} Example`, email: `${id}@example.test`, nickname: `${id}-nick`, email_verified: true, picture: `${issuer}/pictures/${id}.png` };
      },
    };
  },
  cookies: { keys: ['moim-oidc-test-cookie-key'] },
  features: { devInteractions: { enabled: true } },
});
// Plain http on loopback is what this test provider is for.
provider.proxy = false;
server.on('request', provider.callback());
process.stdout.write(`LISTENING ${issuer}\n`);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
