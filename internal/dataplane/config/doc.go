// Package config compiles a data-plane snapshot into the configuration the
// request path serves from.
//
// [Compile] checks a serialized snapshot completely before anything is
// swapped in: the snapshot decodes; every tool pin names an existing
// upstream and an existing active version whose input schema compiles as
// JSON Schema 2020-12 without loading anything remote; every upstream
// credential's secret is present; the Cedar schema generates from the pins
// exactly as the control plane generates it; and every policy set parses and
// strictly validates against it. A refused snapshot yields an [*Error]
// listing every problem, bounded in size, fit to be sent back to the control
// plane as the reason for a nack.
//
// The result, [*Compiled], is immutable and implements [pipeline.Config]
// and [pipeline.TokenAuthenticator]: API-key and JWT authentication (see
// package identity), tool lookup, Cedar authorization and the emergency
// brake, all safe for concurrent use. "Immutable" covers the configuration;
// keys fetched from a JWKS URL are cached inside it.
//
// # Tool arguments in Cedar
//
// Authorize hands a tool's arguments to Cedar as context.arguments, converted
// by the Cedar types the generated schema gives them (see package
// cedarschema): integer → Long, number → decimal, string → String, boolean →
// Bool, object → Record, array → Set. The conversion reads the types from the
// generated schema itself, so it cannot drift from what policies were
// validated against. Attributes the schema leaves untyped are dropped.
// Numbers are converted exactly from their JSON text, never through float64:
// an integer must be integral and fit in 64 bits, a decimal must have at most
// four decimal places and lie within Cedar's decimal range. Anything that
// does not fit — a wrong JSON type, a missing required argument, a number
// Cedar cannot hold, a duplicate object key — denies the call with an error
// rather than letting Cedar skip a forbid policy that would have errored.
//
// # Users
//
// A call made on behalf of a user carries the user's verified token; its
// Cedar context then has user = User::"<source>/<name>", where source is the
// name of the IdentitySource that trusted the token and name the value of
// its user claim, with attributes name and (when the token has one) email,
// and one parent Group::"<group>" per entry of the groups claim. Without a
// user token context.user is absent, so policies guard it with
// `context has user`.
//
// # Deciding at scale
//
// Compile buckets the policies by action scope and, within that, by
// principal scope (`principal == Agent::"x"`, `principal in Team::"t"`, or
// any), so Authorize and Listable evaluate only the policies whose scope can
// match the call and decision time does not grow with policies for other
// agents or tools. Compile also notes which context attributes each bucket's
// conditions read, and Authorize remembers decisions in a bounded cache of
// the Compiled (so a new version starts empty) keyed on the agent, the
// action and only those values — taken from the converted Cedar request, so
// arguments that fail conversion are refused before the cache is consulted.
// A call is not cached when an applicable policy reads context.time or the
// context in a way the analysis does not follow. [WithDecisionCache] sizes
// or disables the cache. Both give exactly the decision, determining policies
// and errors of evaluating every policy.
package config
