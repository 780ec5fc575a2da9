package main

import (
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-gw/portcullis/internal/auditchain"
	"github.com/portcullis-gw/portcullis/internal/controlplane/auditstore"
	auditv1 "github.com/portcullis-gw/portcullis/internal/gen/portcullis/audit/v1"
)

// Fill's shape: records arrive from this many data planes, this many at a
// time (one upload batch).
const (
	fillDataplanes = 8
	fillBatch      = 500
)

// fill appends n records to s as uploads from fillDataplanes data planes
// would arrive, each chain starting at the store's first sequence, and
// returns the bytes the records take encoded (frames excluded). Records
// are built and hashed on one goroutine and appended on another, so both
// cores work.
func fill(s *auditstore.Store, n int) (int64, error) {
	type chain struct {
		name string
		seq  uint64
		prev []byte
	}
	chains := make([]*chain, fillDataplanes)
	for i := range chains {
		name := fmt.Sprintf("dp-%d", i+1)
		chains[i] = &chain{name: name, seq: s.Next(name), prev: auditchain.Zero}
		if chains[i].seq != 1 {
			return 0, fmt.Errorf("fill: the store already holds records of %s", name)
		}
	}
	type batch struct {
		dp      string
		next    uint64 // the sequence after the batch
		records []*auditv1.Record
	}
	batches := make(chan batch, 4)
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for b := range batches {
			next, err := s.Append(b.dp, b.records)
			if err == nil && next != b.next {
				err = fmt.Errorf("the store expects %d from %s, not %d", next, b.dp, b.next)
			}
			if err != nil {
				errc <- fmt.Errorf("fill: append: %w", err)
				for range batches {
				}
				return
			}
		}
	}()
	// Times run up to now, a millisecond apart, so that no retention
	// setting would drop them.
	start := time.Now().Add(-time.Duration(n) * time.Millisecond)
	var scratch []byte
	var encoded int64
	var err error
	for done := 0; done < n && err == nil; {
		c := chains[(done/fillBatch)%fillDataplanes]
		b := batch{dp: c.name, records: make([]*auditv1.Record, 0, fillBatch)}
		for k := 0; k < fillBatch && done < n; k++ {
			r := record(c.name, c.seq, start.Add(time.Duration(done)*time.Millisecond), done)
			r.PrevHash = c.prev
			var sum [auditchain.HashSize]byte
			if sum, scratch, err = auditchain.Hash(r, scratch); err != nil {
				break
			}
			r.Hash = sum[:]
			encoded += int64(len(scratch) + 2 + len(r.Hash))
			c.prev, c.seq = r.Hash, c.seq+1
			b.records = append(b.records, r)
			done++
		}
		b.next = c.seq
		batches <- b
	}
	close(batches)
	if aerr := <-errc; aerr != nil {
		return 0, aerr
	}
	return encoded, err
}

// The values records vary over, made once.
var (
	agents    = strs(5000, "agent-%04d")
	tools     = strs(200, "billing__tool_%03d")
	policies  = strs(5000, "policy%d")
	users     = strs(800, "user-%d@example.com")
	customers = strs(20000, "cust-%05d")
	sources   = strs(250, "10.0.%d.17")
)

func strs(n int, format string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}

// record is a typical data-plane audit record of an allowed MCP tools/call.
func record(dp string, seq uint64, t time.Time, i int) *auditv1.Record {
	return &auditv1.Record{
		Time:            timestamppb.New(t),
		Dataplane:       dp,
		Agent:           agents[i%len(agents)],
		Protocol:        "mcp",
		Method:          "tools/call",
		Upstream:        "billing",
		Tool:            tools[i%len(tools)],
		SnapshotVersion: 4211,
		Mode:            "normal",
		Decision:        "allow",
		Policies:        []string{policies[i%len(policies)]},
		Outcome:         "ok",
		Latency:         durationpb.New(time.Duration(900+i%700) * time.Microsecond),
		UpstreamLatency: durationpb.New(time.Duration(400+i%500) * time.Microsecond),
		SourceIp:        sources[i%len(sources)],
		Sequence:        seq,
		User:            users[i%len(users)],
		ArgumentsJson:   `{"customer":"` + customers[i%len(customers)] + `","limit":` + strconv.Itoa(10+i%40) + `,"status":"open"}`,
		ResponseBytes:   int64(600 + i%900),
		Kind:            auditv1.EventKind_EVENT_KIND_CALL,
		Operation:       "call",
		TargetKind:      "tool",
	}
}
