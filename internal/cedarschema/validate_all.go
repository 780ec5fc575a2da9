package cedarschema

import (
	"errors"
	"maps"
	"slices"
)

// SetSource is the source of one active policy set.
type SetSource struct {
	Filename string
	Source   []byte
}

// ValidateAll parses and strictly validates every policy set against s, as
// when a pin change produces a new schema. Sets are checked in name order
// and every problem in every set is reported in one *Error.
func ValidateAll(s *Schema, sets map[string]SetSource) error {
	if s == nil {
		return errors.New("validate policy sets: no schema")
	}
	var all Error
	for _, name := range slices.Sorted(maps.Keys(sets)) {
		src := sets[name]
		_, err := s.ParsePolicies(name, src.Filename, src.Source)
		if err == nil {
			continue
		}
		e, ok := asError(err)
		if !ok {
			return err
		}
		all.Diagnostics = append(all.Diagnostics, e.Diagnostics...)
	}
	if len(all.Diagnostics) > 0 {
		return &all
	}
	return nil
}
