package dashboard

import (
	"fmt"
	"html"
	"html/template"
	"slices"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/reports/store"
)

// chart is one sender × provider latency chart: p50 and p95 per bucket
// of the last hour, drawn on the server as SVG.
type chart struct {
	Sender, Provider string
	P50, P95         time.Duration // over the whole window
	Samples          int
	SVG              template.HTML
}

func charts(senders, providers []string, samples []store.LatencySample, now time.Time) []chart {
	by := map[[2]string][]store.LatencySample{}
	for _, s := range samples {
		k := [2]string{s.Sender, s.Provider}
		by[k] = append(by[k], s)
	}
	var out []chart
	for _, s := range senders {
		for _, p := range providers {
			ss := by[[2]string{s, p}]
			c := chart{Sender: s, Provider: p, Samples: len(ss)}
			var all []time.Duration
			for _, x := range ss {
				all = append(all, x.Latency)
			}
			c.P50, c.P95 = percentile(all, 50), percentile(all, 95)
			c.SVG = svg(s, p, ss, now)
			out = append(out, c)
		}
	}
	return out
}

// percentile is the nearest-rank percentile of ds (0 for none).
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	i := (p*len(ds) + 99) / 100
	return ds[max(i-1, 0)]
}

const (
	svgW, svgH  = 320, 90
	padL, padB  = 34, 14
	plotW       = svgW - padL - 4
	plotH       = svgH - padB - 6
	bucketWidth = latencyWindow / latencyBuckets
)

// svg draws the p50 and p95 lines of the buckets that have samples.
func svg(sender, provider string, ss []store.LatencySample, now time.Time) template.HTML {
	start := now.Add(-latencyWindow)
	buckets := make([][]time.Duration, latencyBuckets)
	for _, s := range ss {
		i := int(s.CreatedAt.Sub(start) / bucketWidth)
		if i >= 0 && i < latencyBuckets {
			buckets[i] = append(buckets[i], s.Latency)
		}
	}
	var top time.Duration
	p50, p95 := make([]time.Duration, latencyBuckets), make([]time.Duration, latencyBuckets)
	for i, b := range buckets {
		p50[i], p95[i] = percentile(b, 50), percentile(b, 95)
		top = max(top, p95[i])
	}
	if top <= 0 {
		top = time.Second
	}
	x := func(i int) float64 { return padL + (float64(i)+0.5)*plotW/latencyBuckets }
	y := func(d time.Duration) float64 { return 6 + plotH - float64(d)/float64(top)*plotH }
	line := func(vals []time.Duration, class string) string {
		var pts []string
		var dots strings.Builder
		for i, v := range vals {
			if len(buckets[i]) == 0 {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
			fmt.Fprintf(&dots, `<circle class="%s" cx="%.1f" cy="%.1f" r="2"/>`, class, x(i), y(v))
		}
		if len(pts) == 0 {
			return ""
		}
		return fmt.Sprintf(`<polyline class="%s" points="%s"/>`, class, strings.Join(pts, " ")) + dots.String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="latency of %s at %s, last hour">`,
		svgW, svgH, html.EscapeString(sender), html.EscapeString(provider))
	fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="6" x2="%d" y2="%d"/><line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`,
		padL, padL, 6+plotH, padL, 6+plotH, svgW-4, 6+plotH)
	fmt.Fprintf(&b, `<text class="lbl" x="%d" y="12" text-anchor="end">%s</text><text class="lbl" x="%d" y="%d" text-anchor="end">0</text>`,
		padL-3, short(top), padL-3, 6+plotH)
	fmt.Fprintf(&b, `<text class="lbl" x="%d" y="%d">−1h</text><text class="lbl" x="%d" y="%d" text-anchor="end">now</text>`,
		padL, svgH-2, svgW-4, svgH-2)
	b.WriteString(line(p95, "p95"))
	b.WriteString(line(p50, "p50"))
	if len(ss) == 0 {
		fmt.Fprintf(&b, `<text class="lbl" x="%d" y="%d" text-anchor="middle">no deliveries</text>`, padL+plotW/2, 6+plotH/2)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // built from numbers and escaped names only
}

// short prints a duration axis label.
func short(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return fmt.Sprintf("%.0fm", d.Minutes())
	case d >= time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}
