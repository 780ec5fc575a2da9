// Package pki manages the Portcullis cluster certificate authority and the
// certificates it issues to control-plane nodes and data planes, and builds
// the TLS configurations that use them.
//
// Identities are carried in URI subject alternative names:
//
//	spiffe://portcullis.cluster/node/<id>          control-plane nodes
//	spiffe://portcullis.cluster/dataplane/<name>   data planes
//
// Servers send their chain as [leaf, CA] so that a client which pins the
// CA's fingerprint (see ClientConfig) can check it.
package pki
