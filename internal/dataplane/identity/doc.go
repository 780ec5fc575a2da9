// Package identity verifies JSON Web Tokens against the JWT issuers a
// configuration snapshot trusts (IdentitySource.jwt_issuer).
//
// A [Verifier] is built once per compiled snapshot with [New] and is safe
// for concurrent use. For each token it:
//
//   - refuses tokens larger than [MaxTokenBytes] before parsing anything;
//   - parses the compact JWS with the union of the trusted issuers'
//     algorithms, never "none" and never an HMAC algorithm;
//   - picks the issuer whose `iss` matches and whose use covers what is
//     asked (agents or users), and checks the token's algorithm is on that
//     issuer's allowlist;
//   - picks the key by `kid` (a token without `kid` is accepted only when the
//     issuer has exactly one key) and checks the key's type and curve fit
//     the algorithm, so an RSA public key can never verify an HMAC token;
//     keys embedded in the token (jwk, x5c, jku) are ignored;
//   - checks the signature, `aud` (one of the issuer's audiences), `exp`
//     (required), `nbf` and `iat`, all with the issuer's leeway.
//
// Keys come from the issuer's inline JWKS or from its jwks_url. A URL is
// fetched lazily on first use, through an HTTP client that dials only what
// the egress policy permits, follows no redirects, gives up after 5s and
// reads at most 64 KiB. A token whose `kid` is unknown triggers a refetch,
// at most once per issuer per 30 seconds; otherwise it is refused.
//
// Every error returned by Verify* has a message that is safe to show to the
// caller: it says why the token was refused and never carries key material,
// token contents or network detail. The detail is kept as the wrapped
// cause, for logs.
package identity
