// Package crossplane holds tests that run data-plane components against a
// real control plane in one process (cptest): the config-sync client and
// the audit uploader against the services that serve them. They live here,
// outside both planes, because neither plane may import the other — test
// files included (scripts/check-imports).
package crossplane
