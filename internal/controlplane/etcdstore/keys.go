package etcdstore

import (
	"fmt"
	"strings"
)

// keys names the store's keys under the prefix (see the package doc).
type keys struct{ prefix string }

func (k keys) log() string            { return k.prefix + "/log/" }
func (k keys) entry(id string) string { return k.log() + id }
func (k keys) head() string           { return k.prefix + "/head" }
func (k keys) blobs() string          { return k.prefix + "/blob/" }
func (k keys) blob(id string) string  { return k.blobs() + id + "/" }
func (k keys) chunk(id string, i int) string {
	return fmt.Sprintf("%s%08d", k.blob(id), i)
}
func (k keys) manifest() string           { return k.prefix + "/snapshot" }
func (k keys) truncated() string          { return k.prefix + "/truncated" }
func (k keys) holds() string              { return k.prefix + "/applied/" }
func (k keys) hold(node string) string    { return k.holds() + node }
func (k keys) election() string           { return k.prefix + "/election/" }
func (k keys) entryID(key string) string  { return strings.TrimPrefix(key, k.log()) }
func (k keys) holdNode(key string) string { return strings.TrimPrefix(key, k.holds()) }

// blobID returns the blob id of a chunk key ("" when key is not one).
func (k keys) blobID(key string) string {
	rest, ok := strings.CutPrefix(key, k.blobs())
	if !ok {
		return ""
	}
	id, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return id
}
