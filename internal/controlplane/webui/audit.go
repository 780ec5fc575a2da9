package webui

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/auditcsv"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// auditFilter is the audit search form: the filters of "gwctl audit
// query", as the form sends them.
type auditFilter struct {
	From, To, Agent, User, Tool, Upstream, Decision, Outcome, Mode, Dataplane, UserNotInList string
	Limit                                                                                    int
	PageToken                                                                                string
}

// maxFilterLen bounds each filter's text.
const maxFilterLen = 256

// Default and largest page sizes of the audit page (the API's).
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

func parseAuditFilter(q url.Values) (auditFilter, error) {
	get := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	f := auditFilter{
		From: get("from"), To: get("to"), Agent: get("agent"), User: get("user"), Tool: get("tool"), Upstream: get("upstream"),
		Decision: get("decision"), Outcome: get("outcome"), Mode: get("mode"), Dataplane: get("dataplane"),
		UserNotInList: get("user_not_in_list"), PageToken: get("page_token"), Limit: defaultAuditLimit,
	}
	for _, v := range []string{f.From, f.To, f.Agent, f.User, f.Tool, f.Upstream, f.Decision, f.Outcome, f.Mode, f.Dataplane, f.UserNotInList} {
		if len(v) > maxFilterLen {
			return f, fmt.Errorf("a filter is limited to %d characters", maxFilterLen)
		}
	}
	if s := get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxAuditLimit {
			return f, fmt.Errorf("records per page must be between 1 and %d", maxAuditLimit)
		}
		f.Limit = n
	}
	return f, nil
}

// parseTime reads a time filter: RFC 3339 (as gwctl takes it), or a
// date, or a date and minutes without a zone (as a browser's date-time
// field sends it), both read as UTC.
func parseTime(name, v string) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return timestamppb.New(t), nil
		}
	}
	return nil, fmt.Errorf("%s: want an RFC 3339 time such as 2026-01-31T00:00:00Z, or a date such as 2026-01-31 (UTC)", name)
}

// query is the API request of the filter.
func (f auditFilter) query() (*auditv1.QueryRequest, error) {
	from, err := parseTime("from", f.From)
	if err != nil {
		return nil, err
	}
	to, err := parseTime("to", f.To)
	if err != nil {
		return nil, err
	}
	return &auditv1.QueryRequest{
		From: from, To: to, Agent: f.Agent, User: f.User, Tool: f.Tool, Upstream: f.Upstream, Decision: f.Decision,
		Outcome: f.Outcome, Mode: f.Mode, Dataplane: f.Dataplane, UserNotInList: f.UserNotInList,
		Limit: int32(f.Limit), PageToken: f.PageToken, //nolint:gosec // bounded by parseAuditFilter
	}, nil
}

// values is the filter as URL parameters, without the page token and
// with only what is set.
func (f auditFilter) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{
		"from": f.From, "to": f.To, "agent": f.Agent, "user": f.User, "tool": f.Tool, "upstream": f.Upstream,
		"decision": f.Decision, "outcome": f.Outcome, "mode": f.Mode, "dataplane": f.Dataplane, "user_not_in_list": f.UserNotInList,
	} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if f.Limit != defaultAuditLimit {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	return v
}

// auditData is the audit page's content.
type auditData struct {
	Filter auditFilter
	// Searched says a search ran (the form was submitted).
	Searched bool
	Records  []*auditv1.Record
	// CSV and Next are links: the download of every matching record, and
	// the next page.
	CSV, Next string
	// Problem is a filter the page could not use.
	Problem string
}

func (h *Handler) auditPage(req *request) error {
	q := req.r.URL.Query()
	f, err := parseAuditFilter(q)
	d := auditData{Filter: f, Searched: q.Has("search")}
	status := http.StatusOK
	if err != nil {
		d.Problem, status = err.Error(), http.StatusBadRequest
	} else if d.Searched {
		qr, err := f.query()
		if err != nil {
			d.Problem, status = err.Error(), http.StatusBadRequest
		} else {
			res, err := h.api.Audit.Query(req.ctx, connect.NewRequest(qr))
			if err != nil {
				return err
			}
			d.Records = res.Msg.GetRecords()
			v := f.values()
			d.CSV = "/ui/audit.csv?" + v.Encode()
			if next := res.Msg.GetNextPageToken(); next != "" {
				v.Set("search", "1")
				v.Set("page_token", next)
				d.Next = "/ui/audit?" + v.Encode()
			}
		}
	}
	h.render(req.w, req.r, &req.user, status, "audit", page{Title: "Audit records", Nav: "audit", Data: d})
	return nil
}

// auditCSV streams every record the filters match as CSV (auditcsv, the
// same columns and escaping as "gwctl audit query -o csv"), page by page.
func (h *Handler) auditCSV(req *request) error {
	f, err := parseAuditFilter(req.r.URL.Query())
	if err != nil {
		h.fail(req.w, req.r, &req.user, http.StatusBadRequest, err.Error())
		return nil
	}
	f.Limit, f.PageToken = maxAuditLimit, ""
	qr, err := f.query()
	if err != nil {
		h.fail(req.w, req.r, &req.user, http.StatusBadRequest, err.Error())
		return nil
	}
	// The first page before any byte goes out, so that a refusal is a
	// proper error page.
	res, err := h.api.Audit.Query(req.ctx, connect.NewRequest(qr))
	if err != nil {
		return err
	}
	w := req.w
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", "portcullis-audit-"+h.cfg.Now().UTC().Format("20060102T150405Z")+".csv"))
	cw := auditcsv.NewWriter(w)
	seen := map[string]bool{}
	for {
		if cw.Write(res.Msg.GetRecords()) != nil {
			return nil //nolint:nilerr // the browser went away: nothing more to say to it
		}
		next := res.Msg.GetNextPageToken()
		if next == "" {
			return nil
		}
		if seen[next] {
			h.log.ErrorContext(req.r.Context(), "web view: CSV download: the audit service repeated a page token")
			panic(http.ErrAbortHandler)
		}
		seen[next] = true
		qr = proto.Clone(qr).(*auditv1.QueryRequest)
		qr.PageToken = next
		if res, err = h.api.Audit.Query(req.ctx, connect.NewRequest(qr)); err != nil {
			// Too late for an error page: the connection is cut, so the
			// browser reports a failed download rather than keep a short
			// file, and the log says why.
			h.log.ErrorContext(req.r.Context(), "web view: CSV download cut short", "err", err)
			panic(http.ErrAbortHandler)
		}
	}
}
