package pluginhost

import (
	"io"
	"log/slog"
	"testing"
)

// FuzzLineLogger feeds arbitrary plugin output (what a plugin writes to
// stderr/stdout, split anywhere) through the line logger and the JSON record
// parser: no panic, and every complete line is logged at most once.
func FuzzLineLogger(f *testing.F) {
	f.Add([]byte("plain line\n"), 3)
	f.Add([]byte(`{"time":"2026-01-01T00:00:00Z","level":"WARN","msg":"disk low","free":"1%"}`+"\n"), 10)
	f.Add([]byte(`{"msg":5,"level":"NOPE"}`+"\n{\"msg\":\"x\",\"level\":\"ERROR+2\",\"a\":{\"b\":[1,2]}}\n"), 1)
	f.Add([]byte("no newline at all"), 0)
	f.Add([]byte(`{"@timestamp":"2026-01-01T00:00:00.123456789Z","@level":"warn","@message":"low","grp":{"k":1}}`+"\n"), 7)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		rec := newLogRecorder()
		w := &lineLogger{l: slog.New(rec), stream: "stderr", level: slog.LevelInfo}
		if split < 0 || split > len(data) {
			split = len(data) / 2
		}
		for _, part := range [][]byte{data[:split], data[split:]} {
			if n, err := w.Write(part); err != nil || n != len(part) {
				t.Fatalf("Write = %d, %v", n, err)
			}
		}
		lines := 0
		for _, b := range data {
			if b == '\n' {
				lines++
			}
		}
		if len(rec.records) > lines+1 {
			t.Fatalf("%d records from %d lines", len(rec.records), lines)
		}
		_, _ = parseJSONRecord(string(data))
		newHCLog(slog.New(slog.NewTextHandler(io.Discard, nil))).Named("bin").Debug(string(data))
	})
}
