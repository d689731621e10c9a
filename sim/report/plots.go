package report

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/skein-p2p/skein/internal/bytesize"
)

// Plot size.
const plotW, plotH = 16 * vg.Centimeter, 10 * vg.Centimeter

// maxSpreadLines bounds the messages drawn in the spread plot (evenly
// chosen); the median over all messages is always drawn.
const maxSpreadLines = 60

func save(p *plot.Plot, path string) error {
	return p.Save(plotW, plotH, path) // the extension picks PNG or SVG
}

// cdf returns the empirical CDF of ascending latencies as a step line.
func cdf(lat []time.Duration, expected int) plotter.XYs {
	pts := make(plotter.XYs, 0, 2*len(lat)+1)
	if expected < len(lat) || expected == 0 {
		expected = len(lat)
	}
	pts = append(pts, plotter.XY{X: 0, Y: 0})
	for i, l := range lat {
		x := ms(l)
		pts = append(pts, plotter.XY{X: x, Y: float64(i) / float64(expected)}, plotter.XY{X: x, Y: float64(i+1) / float64(expected)})
	}
	return pts
}

func (r *Result) plotLatencyCDF(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: delivery latency (N=%d)", r.Scenario, r.Nodes)
	p.X.Label.Text = "latency (ms)"
	p.Y.Label.Text = "fraction of expected deliveries"
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	l, err := plotter.NewLine(cdf(r.Latencies(), r.Expected))
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(0)
	p.Add(l)
	return save(p, path)
}

// spreadOf returns, for one message, the fraction of its group's members
// holding it (the sender from the send) at each delivery, by timeline time.
func spreadOf(s Send, ds []Delivery) plotter.XYs {
	m := float64(max(s.Members, 1))
	times := make([]time.Duration, len(ds))
	for i, d := range ds {
		times[i] = d.Delivered
	}
	slices.Sort(times)
	pts := plotter.XYs{{X: s.At.Seconds(), Y: 1 / m}}
	for i, t := range times {
		pts = append(pts, plotter.XY{X: t.Seconds(), Y: float64(i+1) / m}, plotter.XY{X: t.Seconds(), Y: float64(i+2) / m})
	}
	return pts
}

func (r *Result) bySeq() map[int][]Delivery {
	out := map[int][]Delivery{}
	for _, d := range r.Deliveries {
		out[d.Seq] = append(out[d.Seq], d)
	}
	return out
}

func (r *Result) plotSpread(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: members holding each message (N=%d, %d messages)", r.Scenario, r.Nodes, len(r.Sends))
	p.X.Label.Text = "time (s)"
	p.Y.Label.Text = "fraction of members holding it"
	p.Y.Min, p.Y.Max = 0, 1.02
	p.Add(plotter.NewGrid())
	by := r.bySeq()
	step := max(1, (len(r.Sends)+maxSpreadLines-1)/maxSpreadLines)
	for i := 0; i < len(r.Sends); i += step {
		s := r.Sends[i]
		l, err := plotter.NewLine(spreadOf(s, by[s.Seq]))
		if err != nil {
			return err
		}
		c := plotutil.Color(i / step)
		r8, g8, b8, _ := c.RGBA()
		l.Color = color.NRGBA{uint8(r8 >> 8), uint8(g8 >> 8), uint8(b8 >> 8), 140}
		l.Width = vg.Points(0.7)
		p.Add(l)
	}
	if len(r.Sends) == 0 {
		p.Title.Text += " (no traffic)"
	}
	if err := addMarks(p, r.Marks); err != nil {
		return err
	}
	return save(p, path)
}

// addMarks draws each kind of network event as dashed vertical lines, with
// one legend entry per kind.
func addMarks(p *plot.Plot, marks []Mark) error {
	kinds := map[string]int{}
	var order []string
	for _, m := range marks {
		if _, ok := kinds[m.Kind]; !ok {
			kinds[m.Kind] = len(order)
			order = append(order, m.Kind)
		}
	}
	for _, kind := range order {
		var first *plotter.Line
		for _, m := range marks {
			if m.Kind != kind {
				continue
			}
			x := m.At.Seconds()
			l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: 1.02}})
			if err != nil {
				return err
			}
			l.Color = color.Gray{Y: uint8(40 + 50*kinds[kind])}
			l.Width = vg.Points(1.2)
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2 + 2*float64(kinds[kind]))}
			p.Add(l)
			if first == nil {
				first = l
			}
		}
		p.Legend.Add(kind, first)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	return nil
}

// SweepPoint is one run of a sweep, by the value swept.
type SweepPoint struct {
	Value  string
	Result *Result
}

// WriteSweep writes the sweep's table (sweep.csv, sweep.json) and plots
// into dir: convergence time and bytes per node against the node count,
// and the latency CDFs of every run on one plot.
func WriteSweep(dir, key string, points []SweepPoint) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("write sweep: %w", err)
	}
	pts := slices.Clone(points)
	if key == "nodes" {
		slices.SortStableFunc(pts, func(a, b SweepPoint) int { return cmp.Compare(a.Result.Nodes, b.Result.Nodes) })
	}
	var files []string
	names := metricNames(pts)
	csvPath := filepath.Join(dir, "sweep.csv")
	if err := writeSweepCSV(csvPath, key, names, pts); err != nil {
		return nil, fmt.Errorf("write %s: %w", csvPath, err)
	}
	files = append(files, csvPath)
	type row struct {
		Value   string             `json:"value"`
		Nodes   int                `json:"nodes"`
		Settled bool               `json:"settled"`
		LoadAvg string             `json:"loadavg"`
		Metrics map[string]float64 `json:"metrics"`
	}
	rows := make([]row, len(pts))
	for i, p := range pts {
		rows[i] = row{p.Value, p.Result.Nodes, p.Result.Settled, p.Result.LoadAvg, p.Result.Metrics}
	}
	data, err := json.MarshalIndent(map[string]any{"key": key, "runs": rows}, "", " ")
	if err != nil {
		return files, err
	}
	jsonPath := filepath.Join(dir, "sweep.json")
	if err := os.WriteFile(jsonPath, append(data, '\n'), 0o644); err != nil {
		return files, fmt.Errorf("write %s: %w", jsonPath, err)
	}
	files = append(files, jsonPath)
	for _, ext := range []string{"png", "svg"} {
		for _, pl := range []struct {
			name, title, y string
			f              func(*Result) float64
		}{
			{"convergence-vs-n", "convergence time after the last send", "convergence (ms)", func(r *Result) float64 { return ms(r.Convergence) }},
			{"bytes-vs-n", "payload bytes sent + received per node", "KiB per node", func(r *Result) float64 { return r.BytesPerNode() / 1024 }},
		} {
			name := pl.name
			if key != "nodes" {
				name = strings.TrimSuffix(name, "n") + key // convergence-vs-links.default.loss
			}
			path := filepath.Join(dir, name+"."+ext)
			if err := plotAgainst(path, key, pts, pl.title, pl.y, pl.f); err != nil {
				return files, fmt.Errorf("write %s: %w", path, err)
			}
			files = append(files, path)
		}
		path := filepath.Join(dir, "latency-cdf."+ext)
		if err := plotCDFs(path, key, pts); err != nil {
			return files, fmt.Errorf("write %s: %w", path, err)
		}
		files = append(files, path)
	}
	return files, nil
}

func metricNames(pts []SweepPoint) []string {
	set := map[string]bool{}
	for _, p := range pts {
		for k := range p.Result.Metrics {
			set[k] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func writeSweepCSV(path, key string, names []string, pts []SweepPoint) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	head := []string{key, "nodes", "settled", "loadavg"}
	if key == "nodes" {
		head = slices.Delete(head, 1, 2)
	}
	_ = w.Write(append(head, names...))
	for _, p := range pts {
		rec := []string{p.Value, strconv.Itoa(p.Result.Nodes), strconv.FormatBool(p.Result.Settled), p.Result.LoadAvg}
		if key == "nodes" {
			rec = slices.Delete(rec, 1, 2)
		}
		for _, n := range names {
			rec = append(rec, strconv.FormatFloat(p.Result.Metrics[n], 'g', 6, 64))
		}
		_ = w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sweepX is a sweep point's position on the x axis: its node count for a
// sweep over nodes, else its value as a number (a duration in ms, a size
// in bytes), else its rank.
func sweepX(key string, i int, pt SweepPoint) (float64, string) {
	if key == "nodes" {
		return float64(pt.Result.Nodes), "nodes (N)"
	}
	if f, err := strconv.ParseFloat(pt.Value, 64); err == nil {
		return f, key
	}
	if d, err := time.ParseDuration(pt.Value); err == nil {
		return ms(d), key + " (ms)"
	}
	if b, err := bytesize.Parse(pt.Value); err == nil {
		return float64(b), key + " (bytes)"
	}
	return float64(i), key + " (run)"
}

func plotAgainst(path, key string, pts []SweepPoint, title, ylabel string, f func(*Result) float64) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	xy := make(plotter.XYs, len(pts))
	for i, pt := range pts {
		xy[i].X, p.X.Label.Text = sweepX(key, i, pt)
		xy[i].Y = f(pt.Result)
	}
	if key == "nodes" && len(pts) > 2 && pts[0].Result.Nodes > 0 && pts[len(pts)-1].Result.Nodes/pts[0].Result.Nodes >= 50 {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if err := plotutil.AddLinePoints(p, "", xy); err != nil {
		return err
	}
	p.Legend.Top = true
	return save(p, path)
}

func plotCDFs(path, key string, pts []SweepPoint) error {
	p := plot.New()
	p.Title.Text = "delivery latency by " + key
	p.X.Label.Text = "latency (ms)"
	p.Y.Label.Text = "fraction of expected deliveries"
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = false
	for i, pt := range pts {
		l, err := plotter.NewLine(cdf(pt.Result.Latencies(), pt.Result.Expected))
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		p.Add(l)
		p.Legend.Add(key+"="+pt.Value, l)
	}
	return save(p, path)
}
