package main

import (
	"fmt"
	"html"
	"math"
	"strings"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// plotSeries is one path's latency distribution in the plot.
type plotSeries struct {
	name  string
	color string
	hist  *hdrhistogram.Histogram // microseconds
}

// pathColors are the series colours, by path (colour-blind-safe Okabe-Ito
// hues).
var pathColors = map[string]string{
	pathDirect:     "#000000",
	pathNginx:      "#009E73",
	pathDPAsync:    "#0072B2",
	pathDPDurable:  "#D55E00",
	pathDPShadow:   "#CC79A7",
	pathDPTraced:   "#56B4E9",
	pathDPTraced10: "#E69F00",
}

// Plot geometry, in SVG user units.
const (
	plotW, plotH                       = 1000, 540
	marginL, marginR, marginT, marginB = 80, 270, 50, 70
)

// percentilePlot draws the latency percentile distributions of series as
// an SVG, in the manner of HdrHistogram's plotter: the x axis is the
// percentile on a log scale of 1/(1−q) (0%, 90%, 99%, 99.9%, …), so the
// tail gets as much room as the body; the y axis is latency on a log scale,
// so p50s near a millisecond and tails near a hundred stay readable
// together. Each series stops where its calls run out (at q = 1 − 1/N).
func percentilePlot(title, subtitle string, series []plotSeries) string {
	// The x range: as many nines as the largest series resolves.
	maxCount := int64(1)
	lo, hi := math.Inf(1), math.Inf(-1) // log10 of latency in ms
	for _, s := range series {
		if s.hist == nil || s.hist.TotalCount() == 0 {
			continue
		}
		maxCount = max(maxCount, s.hist.TotalCount())
		lo = min(lo, math.Log10(max(float64(s.hist.Min()), 1)/1000))
		hi = max(hi, math.Log10(max(float64(s.hist.Max()), 1)/1000))
	}
	nines := math.Max(2, math.Ceil(math.Log10(float64(maxCount))))
	if math.IsInf(lo, 1) {
		lo, hi = -1, 1
	}
	yMin, yMax := math.Floor(lo), math.Ceil(hi)
	if yMax <= yMin {
		yMax = yMin + 1
	}
	innerW, innerH := float64(plotW-marginL-marginR), float64(plotH-marginT-marginB)
	x := func(k float64) float64 { return marginL + innerW*k/nines }
	y := func(msLog float64) float64 { return marginT + innerH*(1-(msLog-yMin)/(yMax-yMin)) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n", plotW, plotH, plotW, plotH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", marginL, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="40" fill="#555555">%s</text>`+"\n", marginL, html.EscapeString(subtitle))

	// Grid and y labels: 1, 2 and 5 times each power of ten.
	for p := yMin; p <= yMax; p++ {
		for _, m := range []float64{1, 2, 5} {
			v := math.Log10(m) + p
			if v > yMax+1e-9 {
				break
			}
			stroke := "#e4e4e4"
			if m == 1 {
				stroke = "#c8c8c8"
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", marginL, y(v), x(nines), y(v), stroke)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", marginL-6, y(v), msLabel(math.Pow(10, v)))
		}
	}
	// Grid and x labels: 0%, 90%, 99%, …
	for k := 0.0; k <= nines; k++ {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#c8c8c8"/>`+"\n", x(k), marginT, x(k), y(yMin))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(k), y(yMin)+18, percentileLabel(k))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%.1f" fill="none" stroke="#333333"/>`+"\n", marginL, marginT, innerW, innerH)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">percentile (log scale of 1/(1−q))</text>`+"\n", marginL+innerW/2, plotH-20)
	fmt.Fprintf(&b, `<text transform="translate(22 %.1f) rotate(-90)" text-anchor="middle">latency, ms (log scale)</text>`+"\n", marginT+innerH/2)

	// One polyline per series, then the legend.
	legendY := marginT + 10
	for _, s := range series {
		if s.hist == nil || s.hist.TotalCount() == 0 {
			continue
		}
		var pts []string
		limit := math.Log10(float64(s.hist.TotalCount()))
		for k := 0.0; ; k += 0.02 {
			k = math.Min(k, limit)
			v := float64(s.hist.Min()) // the 0th percentile
			if k > 0 {
				v = float64(s.hist.ValueAtQuantile(100 * (1 - math.Pow(10, -k))))
			}
			v = math.Log10(math.Max(v, 1) / 1000)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(k), y(math.Min(math.Max(v, yMin), yMax))))
			if k >= limit {
				break
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"><title>%s</title></polyline>`+"\n",
			s.color, strings.Join(pts, " "), html.EscapeString(s.name))
		lx := float64(plotW - marginR + 16)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", lx, legendY, lx+24, legendY, s.color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" dominant-baseline="middle">%s</text>`+"\n", lx+30, legendY, html.EscapeString(s.name))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" dominant-baseline="middle" fill="#555555" font-size="11">p50 %s · p99 %s · max %s</text>`+"\n", lx+30, legendY+16,
			msLabel(float64(s.hist.ValueAtQuantile(50))/1000), msLabel(float64(s.hist.ValueAtQuantile(99))/1000), msLabel(float64(s.hist.Max())/1000))
		legendY += 44
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// msLabel is a latency in ms with as many digits as it needs.
func msLabel(v float64) string {
	switch {
	case v >= 10:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 1:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".") + " ms"
	default:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".") + " ms"
	}
}

// percentileLabel is the percentile at k nines: 0%, 90%, 99%, 99.9%, …
func percentileLabel(k float64) string {
	if k == 0 {
		return "0%"
	}
	return fmt.Sprintf("%.*f%%", max(int(k)-2, 0), 100*(1-math.Pow(10, -k)))
}
