// Package argjson reads a call's JSON arguments exactly and safely, for the
// policy engine (which converts them to Cedar values) and the schema
// validator (which checks them against a pinned JSON Schema): one JSON
// object without duplicate keys, numbers kept as their literal text and
// read exactly (never through float64) within ±10^[MaxExponent], and
// messages that name a JSON Pointer path but never a caller's value.
package argjson
