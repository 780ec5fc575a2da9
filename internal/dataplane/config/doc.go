// Package config compiles a data-plane snapshot into the configuration the
// request path serves from.
//
// [Compile] checks a serialized snapshot completely before anything is
// swapped in: the snapshot decodes; every upstream credential's secret is
// present; API keys, JWT issuers and client-certificate trust anchors are
// well formed; every tool pin's active version has an input schema that
// compiles as JSON Schema 2020-12 without loading anything remote; and the
// policy engine compiles (package authz: pins name existing upstreams and
// versions, the Cedar schema generates from the pins exactly as the control
// plane generates it, every policy set parses and strictly validates
// against it, every value list a policy reads exists). A refused snapshot
// yields an [*Error] listing every problem, bounded in size, fit to be sent
// back to the control plane as the reason for a nack.
//
// The result, [*Compiled], is immutable and implements [pipeline.Config]
// and [pipeline.TokenAuthenticator]: API-key, JWT and certificate
// authentication (see package identity), tool lookup and argument
// validation, the emergency brake, and authorization, all safe for
// concurrent use. "Immutable" covers the configuration; keys fetched from a
// JWKS URL are cached inside it, and so are the policy engine's decisions.
//
// Authorization is the version's authz.Engine: authz.go adapts pipeline
// calls to it (Authorize, Listable, ContentUpstreams) and is the only part
// of this package that knows about policies. See package authz for the
// Cedar contract — entities, actions, context, argument typing, the policy
// index and the decision cache. Tool arguments are decoded once, exactly
// (package argjson), by the policy engine; the Validate stage reuses that
// decoding to check them against the pinned JSON Schema.
package config
