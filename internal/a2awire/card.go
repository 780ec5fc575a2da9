package a2awire

import (
	"errors"
	"net/url"
)

// Agent-card locations.
const (
	// WellKnownCardPath is where an agent publishes its card unless it
	// says otherwise (A2A 0.3 and 1.0).
	WellKnownCardPath = "/.well-known/agent-card.json"
	// LegacyCardPath is where A2A 0.2 agents published it.
	LegacyCardPath = "/.well-known/agent.json"
)

// Card members the gateway reads or rewrites. 1.0 cards list their
// endpoints in supportedInterfaces; 0.3 cards name one in url (with
// preferredTransport) and others in additionalInterfaces.
const (
	CardName                 = "name"
	CardSkills               = "skills"
	CardSupportedInterfaces  = "supportedInterfaces"
	CardURL                  = "url"
	CardPreferredTransport   = "preferredTransport"
	CardAdditionalInterfaces = "additionalInterfaces"
	CardProtocolVersion      = "protocolVersion"
	CardCapabilities         = "capabilities"
	CardSecuritySchemes      = "securitySchemes"
	// CardSecurityRequirements is 1.0's list of requirements; CardSecurity
	// 0.3's.
	CardSecurityRequirements = "securityRequirements"
	CardSecurity             = "security"
	CardSignatures           = "signatures"
	CardDocumentationURL     = "documentationUrl"
	CardIconURL              = "iconUrl"
	CardProvider             = "provider"
	// CardSupportsExtendedCard is 0.3's flag for the authenticated
	// extended card; 1.0 moved it to capabilities.extendedAgentCard.
	CardSupportsExtendedCard = "supportsAuthenticatedExtendedCard"

	CapPushNotifications = "pushNotifications"
	CapStreaming         = "streaming"
	CapExtendedAgentCard = "extendedAgentCard"

	// Interface members: url and, in 1.0, protocolBinding,
	// protocolVersion and tenant; in 0.3, transport.
	IfaceURL             = "url"
	IfaceProtocolBinding = "protocolBinding"
	IfaceProtocolVersion = "protocolVersion"
	IfaceTenant          = "tenant"
	IfaceTransport       = "transport"
)

// Transports (protocol bindings) a card names.
const (
	BindingJSONRPC  = "JSONRPC"
	BindingGRPC     = "GRPC"
	BindingHTTPJSON = "HTTP+JSON"
)

// CardLocation is where an agent whose JSON-RPC endpoint is endpoint
// publishes its card: path (WellKnownCardPath when empty) on the
// endpoint's origin. The card is always looked for on the endpoint's own
// origin, so a credential bound to the agent's host never goes elsewhere.
func CardLocation(endpoint, path string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", errors.New("the agent's URL is not an http(s) URL without user information")
	}
	if path == "" {
		path = WellKnownCardPath
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: path}).String(), nil
}
