package cedarschema

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cedar-policy/cedar-go"

	"github.com/portcullis-gw/portcullis/internal/limits"
)

// AlertAnnotation is the annotation that makes a denial by a policy page
// someone: @alert("security") tags it "security", and alert rules match
// denials by tag.
const AlertAnnotation = "alert"

// Annotations parses one policy set's source, without validating it
// against a schema, and returns the annotations of each policy by its
// gateway-wide id ("<set>/<id>", as ParsePolicies names it). It is for
// readers of an already accepted set, such as the control plane's alert
// consumer, which matches the policies an audit record names.
func Annotations(setName string, src []byte) (map[string]map[string]string, error) {
	if err := limits.CheckCedar(src); err != nil {
		return nil, fmt.Errorf("annotations of policy set %q: %w", setName, err)
	}
	if setName == "" || strings.Contains(setName, "/") {
		return nil, errors.New("annotations: invalid policy set name")
	}
	list, err := cedar.NewPolicyListFromBytes(setName+".cedar", src)
	if err != nil {
		return nil, fmt.Errorf("annotations of policy set %q: %w", setName, err)
	}
	out := make(map[string]map[string]string, len(list))
	for i, p := range list {
		ann := p.Annotations()
		if len(ann) == 0 {
			continue
		}
		m := make(map[string]string, len(ann))
		for k, v := range ann {
			m[string(k)] = string(v)
		}
		out[setName+"/"+policyID(p, i)] = m
	}
	return out, nil
}
