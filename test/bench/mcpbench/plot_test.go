package main

import (
	"encoding/xml"
	"strconv"
	"strings"
	"testing"
)

func TestPercentilePlot(t *testing.T) {
	fast, slow := newHist(), newHist()
	for i := range 10_000 {
		_ = fast.RecordValue(int64(500 + i%700))         // 0.5–1.2 ms
		_ = slow.RecordValue(int64(900 + (i*37)%90_000)) // up to ~91 ms
	}
	empty := newHist()
	svg := percentilePlot("title <&>", "sub", []plotSeries{
		{name: "fast", color: "#000000", hist: fast},
		{name: "slow", color: "#D55E00", hist: slow},
		{name: "empty", color: "#0072B2", hist: empty},
	})

	var doc struct {
		XMLName   xml.Name `xml:"svg"`
		Polylines []struct {
			Points string `xml:"points,attr"`
			Title  string `xml:"title"`
		} `xml:"polyline"`
	}
	if err := xml.Unmarshal([]byte(svg), &doc); err != nil {
		t.Fatalf("not well-formed XML: %v", err)
	}
	if len(doc.Polylines) != 2 {
		t.Fatalf("%d series drawn, want 2 (the empty one left out)", len(doc.Polylines))
	}
	for _, pl := range doc.Polylines {
		prevX, prevY := -1.0, 1e9
		pts := strings.Fields(pl.Points)
		if len(pts) < 100 {
			t.Errorf("%s: only %d points", pl.Title, len(pts))
		}
		for _, p := range pts {
			xs, ys, _ := strings.Cut(p, ",")
			x, err1 := strconv.ParseFloat(xs, 64)
			y, err2 := strconv.ParseFloat(ys, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: point %q", pl.Title, p)
			}
			// Inside the frame; left to right; latency never falls (y
			// grows downwards in SVG).
			if x < marginL || x > plotW-marginR || y < marginT || y > plotH-marginB {
				t.Errorf("%s: point %q outside the frame", pl.Title, p)
			}
			if x < prevX || y > prevY+1e-9 {
				t.Errorf("%s: point %q after (%.1f,%.1f): not monotone", pl.Title, p, prevX, prevY)
			}
			prevX, prevY = x, y
		}
	}
	if !strings.Contains(svg, "title &lt;&amp;&gt;") {
		t.Errorf("title not escaped")
	}
}

func TestPercentileLabel(t *testing.T) {
	for k, want := range []string{"0%", "90%", "99%", "99.9%", "99.99%"} {
		if got := percentileLabel(float64(k)); got != want {
			t.Errorf("percentileLabel(%d) = %q, want %q", k, got, want)
		}
	}
}
