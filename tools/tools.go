//go:build tools

// Package tools pins the build tools (buf, golangci-lint) in a module of
// their own so the product's go.mod lists only what it ships with. The
// protoc plugins are pinned in the Makefile to the runtime versions the
// product's go.mod uses.
package tools

import (
	_ "github.com/bufbuild/buf/cmd/buf"
	_ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
)
