package config

import (
	"fmt"
	"slices"

	"github.com/portcullis-gw/portcullis/internal/dataplane/pipeline"
	configv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/config/v1"
)

// checkTool is the authz.ToolCheck of Compile: it compiles the active
// version's input schema as JSON Schema and, when that works, records the
// tool as the data plane serves it. Package authz checks everything else
// about pins (upstream, name, action, active version).
func (b *builder) checkTool(action string, p *configv1.ToolPin, v *configv1.ToolVersion) error {
	compiled, err := compileInputSchema(v.GetInputSchema())
	if err != nil {
		return fmt.Errorf("input schema does not compile: %w", err)
	}
	b.c.tools[action] = pipeline.Tool{
		Kind:              pipeline.KindTool,
		Action:            action,
		Upstream:          p.GetUpstream(),
		Name:              p.GetTool(),
		Class:             v.GetClass(),
		Version:           v.GetVersion(),
		Definition:        slices.Clone(v.GetDefinition()),
		DefinitionHash:    v.GetDefinitionHash(),
		ValidateArguments: argumentValidator(compiled),
	}
	return nil
}
