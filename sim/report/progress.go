package report

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Progress draws a progress bar on a terminal (redrawn in place) or, on
// anything else, a line every few seconds. Safe for concurrent use.
type Progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	label    string
	total    int
	done     int
	note     string
	last     time.Time
	every    time.Duration
	finished bool
	start    time.Time
}

// NewProgress returns a bar of total steps labelled label on w; a nil w
// draws nothing.
func NewProgress(w io.Writer, label string, total int) *Progress {
	p := &Progress{w: w, label: label, total: max(total, 1), every: 2 * time.Second, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.every = true, 100*time.Millisecond
		}
	}
	return p
}

// Set records done steps and a note (such as "partition"); the bar is
// redrawn at most every 100 ms on a terminal, every 2 s elsewhere.
func (p *Progress) Set(done int, note string) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.note = min(done, p.total), note
	if time.Since(p.last) >= p.every {
		p.drawLocked()
	}
}

// Done draws the final state and ends the line.
func (p *Progress) Done(note string) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	p.note = note
	p.drawLocked()
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

func (p *Progress) drawLocked() {
	p.last = time.Now()
	const width = 30
	filled := p.done * width / p.total
	bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	line := fmt.Sprintf("%s [%s] %3d%% %s %s", p.label, bar, 100*p.done/p.total,
		time.Since(p.start).Round(100*time.Millisecond), p.note)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}
