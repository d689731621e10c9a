package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Report is the result of one `skein bench`.
type Report struct {
	Started  time.Time `json:"started"`
	Duration float64   `json:"duration_s"`
	Machine  Machine   `json:"machine"`
	// Commit is the VCS revision the binary was built from (with
	// "+dirty" when modified), or "unknown".
	Commit string `json:"commit"`
	// GoVersion and Modules: the toolchain and the versions of the
	// modules that bound the figures.
	GoVersion string            `json:"go_version"`
	Modules   map[string]string `json:"modules"`
	Runs      int               `json:"runs"`
	Quick     bool              `json:"quick"`
	// Limits measured in this run, by name (see the Limit* constants).
	Limits    []Limit    `json:"limits"`
	Scenarios []Scenario `json:"scenarios"`
	// Notes are known gaps the figures depend on.
	Notes []string `json:"notes,omitempty"`
}

// Machine describes where the report was measured.
type Machine struct {
	Hostname string `json:"hostname"`
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemoryMB uint64 `json:"memory_mib"`
	Kernel   string `json:"kernel"`
	OS       string `json:"os_arch"`
}

// Limit is a bound measured in the same run that a figure is compared to.
type Limit struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Note  string  `json:"note,omitempty"`
}

// Scenario is one scenario (a-f) in one mode.
type Scenario struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Mode string `json:"mode"`
	// LoadBefore and LoadAfter are /proc/loadavg (1, 5, 15 min).
	LoadBefore string   `json:"load_before"`
	LoadAfter  string   `json:"load_after"`
	Figures    []Figure `json:"figures"`
	// Profile is the file of a CPU profile of the node under test taken
	// during the scenario, Top its heaviest functions (cumulative).
	Profile string   `json:"profile,omitempty"`
	Top     []string `json:"top,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Figure is one measured value: the median of its runs.
type Figure struct {
	Name  string    `json:"name"`
	Value float64   `json:"value"`
	Unit  string    `json:"unit"`
	Runs  []float64 `json:"runs"`
	// Target is the target ("≥ 30000", "≤ 1"), Met whether the
	// median meets it (nil: no target).
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	// Limit names the limit of this run it is compared to and Fraction
	// how much of it the figure reaches (figure/limit for rates,
	// limit/figure for times: 1 is as fast as the limit allows).
	Limit    string  `json:"limit,omitempty"`
	Fraction float64 `json:"fraction,omitempty"`
}

// target is a goal a figure is checked against.
type target struct {
	atLeast bool
	value   float64
}

func (t target) String() string {
	if t.atLeast {
		return "≥ " + fmtNum(t.value)
	}
	return "≤ " + fmtNum(t.value)
}

func (t target) met(v float64) bool {
	if t.atLeast {
		return v >= t.value
	}
	return v <= t.value
}

// median returns the median of vs (the mean of the middle two for an
// even count).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile returns the p-th percentile (0-100) of vs, nearest rank.
func percentile(vs []float64, p float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// JSON writes the report as indented JSON.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Markdown writes the report as markdown: the machine, the limits, then
// one table per scenario with each figure, its runs, target and share of
// its limit.
func (r *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# skein bench, %s\n\n", r.Started.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "- machine: %s, %s, %d cores, %d MiB, %s (%s)\n", r.Machine.Hostname, r.Machine.CPU, r.Machine.Cores, r.Machine.MemoryMB, r.Machine.Kernel, r.Machine.OS)
	fmt.Fprintf(&b, "- commit %s, %s\n", r.Commit, r.GoVersion)
	var mods []string
	for m, v := range r.Modules {
		mods = append(mods, m+" "+v)
	}
	slices.Sort(mods)
	if len(mods) > 0 {
		fmt.Fprintf(&b, "- modules: %s\n", strings.Join(mods, ", "))
	}
	quick := ""
	if r.Quick {
		quick = " (--quick: small sizes, not comparable with targets)"
	}
	fmt.Fprintf(&b, "- %d run(s) per figure, median shown%s; took %.0f s\n\n", r.Runs, quick, r.Duration)
	b.WriteString("## Limits measured in this run\n\n| limit | value | |\n|---|---|---|\n")
	for _, l := range r.Limits {
		fmt.Fprintf(&b, "| %s | %s %s | %s |\n", l.Name, fmtNum(l.Value), l.Unit, l.Note)
	}
	b.WriteString("\n")
	for _, s := range r.Scenarios {
		fmt.Fprintf(&b, "## %s. %s — %s\n\nload average before %s, after %s\n\n", s.ID, s.Name, s.Mode, s.LoadBefore, s.LoadAfter)
		if s.Error != "" {
			fmt.Fprintf(&b, "**failed:** %s\n\n", s.Error)
		}
		if len(s.Figures) > 0 {
			b.WriteString("| figure | median | runs | target | of limit |\n|---|---|---|---|---|\n")
			for _, f := range s.Figures {
				runs := make([]string, len(f.Runs))
				for i, v := range f.Runs {
					runs[i] = fmtNum(v)
				}
				tgt := f.Target
				if f.Met != nil {
					if *f.Met {
						tgt += " ✓"
					} else {
						tgt += " **missed**"
					}
				}
				frac := ""
				if f.Limit != "" {
					frac = fmt.Sprintf("%.3g of %s", f.Fraction, f.Limit)
				}
				fmt.Fprintf(&b, "| %s | %s %s | %s | %s | %s |\n", f.Name, fmtNum(f.Value), f.Unit, strings.Join(runs, ", "), tgt, frac)
			}
			b.WriteString("\n")
		}
		if len(s.Top) > 0 {
			fmt.Fprintf(&b, "CPU profile of the node (%s), heaviest (cumulative):\n\n", s.Profile)
			for _, t := range s.Top {
				fmt.Fprintf(&b, "- %s\n", t)
			}
			b.WriteString("\n")
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fmtNum prints v with 3 significant digits, thousands separated.
func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v == 0:
		return "0"
	case math.Abs(v) >= 1000:
		s := fmt.Sprintf("%.0f", v)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var out []string
		for len(s) > 3 {
			out = append([]string{s[len(s)-3:]}, out...)
			s = s[:len(s)-3]
		}
		out = append([]string{s}, out...)
		r := strings.Join(out, ",")
		if neg {
			r = "-" + r
		}
		return r
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
