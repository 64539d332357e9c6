-- Logins under way at a provider: what the callback must find to finish
-- one. Keyed by the SHA-256 of the OAuth `state`; a row is taken (deleted)
-- by the callback that uses it, so a replayed `state` finds nothing.
-- `browser_hash` is the SHA-256 of a cookie set on the browser that
-- started the login: a callback from any other browser is refused.
CREATE TABLE login_attempts (
    state_hash TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    browser_hash TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    nonce TEXT NOT NULL,
    return_to TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX login_attempts_by_expiry ON login_attempts (expires_at);
