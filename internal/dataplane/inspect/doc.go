// Package inspect is runtime inspection's engine: the inspection rules of
// one configuration version, compiled (Compile), and what running them over
// a call's content finds (Scan) and does (redact, mask, block), plus the
// classifier client that asks an operator-run service for a verdict.
//
// It knows nothing of protocols or of the pipeline: a protocol shows its
// messages as Parts (text, or a JSON document whose string values are
// text) and applies the Edits this package returns; the pipeline stage
// that drives it (stages.Inspect) decides when each side is inspected.
//
// A rule looks at one side of a call: the request (arguments) or the
// response (the result, and the frames streamed before it). Findings are
// named "<detector>.<kind>" (package detector's names, plus rows.ceiling,
// size.ceiling, classifier.<label> and classifier.unavailable). An
// enforced rule acts on them; a shadow rule only records them.
package inspect
