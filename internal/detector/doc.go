// Package detector finds things in text that a gateway must not let pass
// unnoticed: credentials, personal data, exfiltration-shaped values,
// instructions aimed at an AI agent, and operator-defined patterns. It also
// counts the items at a path of a JSON document without building it.
//
// Every detector reports where it found something (byte offsets into the
// text it was given) and what kind of thing it was; callers record the
// place and the kind, never the matched text.
//
// # Names
//
// A detector has a name and reports kinds; a finding is named
// "<detector>.<kind>" ("pii.payment_card"). The names are stable: they are
// what inspection rules select and what Cedar policies read in
// context.findings.
//
//	secrets       jwt, bearer, basic, url_credentials, aws_access_key,
//	              private_key, github_token, gitlab_token, slack_token,
//	              stripe_key, portcullis_api_key, portcullis_join_credential,
//	              high_entropy
//	pii           email, phone, payment_card (Luhn and issuer prefix),
//	              iban (country length and mod-97), national_id (formats
//	              that carry a check digit; see nationalid.go)
//	exfiltration  url_payload, data_uri, image_link, encoded_blob,
//	              credential (any secrets kind)
//	injection     instruction, unicode_tags, hidden_text
//	pattern       one kind per operator pattern, named by the operator
//
// # Guarantees
//
// Every scanner makes a bounded number of passes over its input and uses
// Go's regexp package (RE2: no backtracking) for what is not scanned by
// hand, so time grows linearly with the input. None of them recurses on
// the input or allocates more than a constant factor of it, and none of
// them panics, whatever the bytes (FuzzScan, FuzzCount, FuzzLeaves).
// Matches are reported through a callback so that a caller can stop or
// bound them.
package detector
