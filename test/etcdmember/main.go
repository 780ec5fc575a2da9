// Command etcdmember is the etcd server, built from the pinned
// go.etcd.io/etcd/server/v3 module (etcdmain, the same main as the etcd
// release binary's), so that end-to-end tests, chaos drills and benchmarks
// run real etcd member processes at the version the product is tested
// against, without a system etcd. It takes etcd's own flags.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
