package limits

// CheckJSON checks that objects and arrays nest at most JSONNesting deep in
// a JSON document and that it is at most maxBytes long, in one pass over
// its bytes, before any JSON parser runs. It does not check that doc is
// JSON: the parser that runs next does. field names doc in the error.
func CheckJSON(field string, doc []byte, maxBytes int) error {
	if len(doc) > maxBytes {
		return exceeded(field, "at most %d bytes (this one has %d)", maxBytes, len(doc))
	}
	depth := 0
	for i := 0; i < len(doc); i++ {
		switch doc[i] {
		case '"':
			for i++; i < len(doc) && doc[i] != '"'; i++ {
				if doc[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
			if depth > JSONNesting {
				return exceeded(field, "objects and arrays nest more than %d levels deep (at byte %d)", JSONNesting, i)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}
