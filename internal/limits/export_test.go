package limits

// CedarBounds returns the depth bound CheckCedar computes for each policy of
// src, ignoring CedarDepth at the end of a policy (CedarNesting and the
// running bound still apply), and the scan's complaint, if any.
func CedarBounds(src []byte) (bounds []int, msg string) {
	sc := cedarScanner{src: src, bounds: &bounds}
	_, msg = sc.scan()
	return bounds, msg
}
