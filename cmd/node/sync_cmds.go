package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apiv1 "github.com/skein-p2p/skein/api/v1"
)

// syncTotals sums what a sync status says over its groups.
type syncTotals struct {
	behind, notInSync    int
	missingHeads         uint64
	missingAbout         uint64 // estimated entries missing
	fetched, fetchedByte uint64
}

func totalsOf(r *apiv1.SyncStatusResponse) syncTotals {
	var t syncTotals
	for _, g := range r.GetGroups() {
		if !g.GetInSync() {
			t.notInSync++
		}
		if g.GetState() == "behind" {
			t.behind++
		}
		for _, l := range g.GetLogs() {
			t.missingHeads += l.GetMissing()
			t.missingAbout += l.GetMissingEntries()
			t.fetched += l.GetFetched()
			t.fetchedByte += l.GetFetchedBytes()
		}
	}
	return t
}

// groupLabel is a group's name, or its id's prefix.
func groupLabel(g *apiv1.GroupSync) string {
	if g.GetName() != "" {
		return g.GetName()
	}
	return g.GetGroup()[:min(12, len(g.GetGroup()))]
}

// stateText says why a group is or is not in sync, in words.
func stateText(g *apiv1.GroupSync, now time.Time) string {
	switch g.GetState() {
	case "", "in sync":
		if g.GetInSync() || g.GetState() == "in sync" {
			return "in sync"
		}
		return "behind"
	case "behind":
		t := totalsOf(&apiv1.SyncStatusResponse{Groups: []*apiv1.GroupSync{g}})
		s := "behind: " + count(int(t.missingHeads), "head", "heads") + " missing"
		if t.missingAbout > 0 {
			s += fmt.Sprintf(", about %d entries", t.missingAbout)
		}
		if !g.GetReachable() {
			s += ", " + unreachableText(g, now)
		}
		return s
	case "no peer reachable":
		s := unreachableText(g, now)
		if g.GetLastSync() == 0 {
			s += ", never synced"
		}
		return s
	}
	return g.GetState()
}

func unreachableText(g *apiv1.GroupSync, now time.Time) string {
	if g.GetLastReachable() == 0 {
		return "no peer reachable since the node started"
	}
	at := time.Unix(0, g.GetLastReachable())
	return fmt.Sprintf("no peer reachable since %s (%s ago)", at.Local().Format(time.DateTime), now.Sub(at).Round(time.Second))
}

// waitSynced prints a progress line on stderr until every group is in
// sync; when the wait is over first it fails, saying why for each group.
func (c *cli) waitSynced(ctx context.Context, r *apiv1.SyncStatusResponse, get func() (*apiv1.SyncStatusResponse, error), wait time.Duration) (*apiv1.SyncStatusResponse, error) {
	start := time.Now()
	deadline := start.Add(wait)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	first := totalsOf(r)
	for {
		t := totalsOf(r)
		if t.notInSync == 0 {
			if got := t.fetched - first.fetched; got > 0 {
				fmt.Fprintf(c.stderr, "\rsynced: %d entries (%s) fetched in %s%20s\n", got, sizeText(t.fetchedByte-first.fetchedByte),
					time.Since(start).Round(100*time.Millisecond), "")
			}
			return r, nil
		}
		fmt.Fprintf(c.stderr, "\r%s   ", progressText(r, first, t, time.Since(start)))
		if time.Now().After(deadline) || ctx.Err() != nil {
			fmt.Fprintln(c.stderr)
			var why []string
			for _, g := range r.GetGroups() {
				if !g.GetInSync() {
					why = append(why, groupLabel(g)+": "+stateText(g, time.Now()))
				}
			}
			err := fmt.Errorf("sync status --wait: not in sync after %s: %s", wait, strings.Join(why, "; "))
			if ctx.Err() != nil {
				err = errors.Join(err, ctx.Err())
			}
			return r, err
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		var err error
		if r, err = get(); err != nil {
			return nil, err
		}
	}
}

// progressText is the --wait progress line: what is missing and fetched,
// the rate since the wait began and the time left at that rate.
func progressText(r *apiv1.SyncStatusResponse, first, t syncTotals, took time.Duration) string {
	if t.behind == 0 {
		// Nothing known missing: waiting for a peer or a first sync.
		for _, g := range r.GetGroups() {
			if !g.GetInSync() {
				return "waiting: " + groupLabel(g) + ": " + stateText(g, time.Now())
			}
		}
	}
	got := t.fetched - first.fetched
	s := fmt.Sprintf("syncing: %s behind", count(t.behind, "group", "groups"))
	if t.missingAbout > 0 {
		s += fmt.Sprintf(", about %d entries missing", t.missingAbout)
	} else {
		s += fmt.Sprintf(", %s missing", count(int(t.missingHeads), "head", "heads"))
	}
	s += fmt.Sprintf(", %d fetched (%s)", got, sizeText(t.fetchedByte-first.fetchedByte))
	if secs := took.Seconds(); got > 0 && secs > 0 {
		rate := float64(got) / secs
		s += fmt.Sprintf(" at %.1f/s", rate)
		if t.missingAbout > 0 {
			s += fmt.Sprintf(", about %s left", (time.Duration(float64(t.missingAbout) / rate * float64(time.Second))).Round(time.Second))
		}
	}
	return s
}

// sizeText is n bytes in B, KiB or MiB.
func sizeText(n uint64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func syncJSON(r *apiv1.SyncStatusResponse) []map[string]any {
	out := []map[string]any{}
	for _, g := range r.GetGroups() {
		logs := []map[string]any{}
		for _, l := range g.GetLogs() {
			logs = append(logs, map[string]any{"log": l.GetLog(), "local_heads": nonNil(l.GetLocalHeads()),
				"remote_heads": nonNil(l.GetRemoteHeads()), "missing": l.GetMissing(), "entries": l.GetEntries(),
				"missing_entries": l.GetMissingEntries(), "fetched": l.GetFetched(), "fetched_bytes": l.GetFetchedBytes(),
				"unheld": l.GetUnheld()})
		}
		var last, lastRdv, lastReach any
		if g.GetLastSync() != 0 {
			last = time.Unix(0, g.GetLastSync()).UTC().Format(time.RFC3339Nano)
		}
		if g.GetLastRendezvous() != 0 {
			lastRdv = time.Unix(0, g.GetLastRendezvous()).UTC().Format(time.RFC3339Nano)
		}
		if g.GetLastReachable() != 0 {
			lastReach = time.Unix(0, g.GetLastReachable()).UTC().Format(time.RFC3339Nano)
		}
		rdv := map[string]any{"found": g.GetRendezvousFound(), "last": lastRdv, "error": g.GetRendezvousError()}
		if _, note := rendezvousNote(g.GetRendezvousError()); note != "" {
			rdv["note"] = note
		}
		out = append(out, map[string]any{"group": g.GetGroup(), "name": g.GetName(), "in_sync": g.GetInSync(),
			"state": g.GetState(), "reachable": g.GetReachable(), "last_reachable": lastReach,
			"last_sync": last, "peers": nonNil(g.GetPeers()), "logs": logs, "rendezvous": rdv})
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// noDHTPeer is the error libp2p's DHT gives when it knows no DHT server.
const noDHTPeer = "failed to find any peer in table"

// rendezvousNote turns a rendezvous error into a short status and, for
// the errors that only say there is nobody to ask, a note saying what that
// means and what to do ("" for other errors, shown as they are).
func rendezvousNote(err string) (short, note string) {
	switch {
	case err == "":
		return "", ""
	case strings.Contains(err, noDHTPeer), strings.Contains(err, "DHT is off"):
		return "no DHT server to ask", "rdv: the group's rendezvous is looked up and announced in a DHT, and this node " +
			"knows no DHT server (none among its peers, or the DHT is off). That is normal on a private network " +
			"without one: peers are then found through the bootstrap list, the peers remembered from earlier runs, " +
			"`skein peers connect` and mDNS on a LAN. To use rendezvous, give the network plugin a bootstrap peer that " +
			"runs the DHT as a server (network.ipfs dht_mode: server on an always-on node), or use the public-ipfs preset."
	}
	return err, ""
}

func (c *cli) printSync(r *apiv1.SyncStatusResponse) {
	if len(r.GetGroups()) == 0 {
		fmt.Fprintln(c.stdout, "no groups")
	}
	now := time.Now()
	notes := map[string]bool{}
	var noteOrder []string
	for _, g := range r.GetGroups() {
		last := "never"
		if g.GetLastSync() != 0 {
			last = now.Sub(time.Unix(0, g.GetLastSync())).Round(time.Second).String() + " ago"
		}
		name := g.GetName()
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(c.stdout, "%s  %s  %s, last sync %s, %s\n", g.GetGroup()[:12], name, stateText(g, now), last, count(len(g.GetPeers()), "peer", "peers"))
		for _, l := range g.GetLogs() {
			line := fmt.Sprintf("  %-8s  %s local, %s announced, %d missing, %s", l.GetLog(),
				count(len(l.GetLocalHeads()), "head", "heads"), count(len(l.GetRemoteHeads()), "head", "heads"), l.GetMissing(),
				count(int(l.GetEntries()), "entry", "entries"))
			if l.GetFetched() > 0 {
				line += fmt.Sprintf(", %d fetched (%s)", l.GetFetched(), sizeText(l.GetFetchedBytes()))
			}
			fmt.Fprintln(c.stdout, line)
		}
		if n := unheldOf(g); n > 0 {
			fmt.Fprintf(c.stdout, "  %s not yet on any other node\n", count(int(n), "of your messages", "of your messages"))
		}
		if g.GetLastRendezvous() != 0 {
			line := fmt.Sprintf("  %-8s  %s found, last round %s ago", "rdv", count(int(g.GetRendezvousFound()), "peer", "peers"),
				now.Sub(time.Unix(0, g.GetLastRendezvous())).Round(time.Second))
			if short, note := rendezvousNote(g.GetRendezvousError()); short != "" {
				line += ": " + short
				if note != "" && !notes[note] {
					notes[note] = true
					noteOrder = append(noteOrder, note)
				}
			}
			fmt.Fprintln(c.stdout, line)
		}
	}
	for _, n := range noteOrder {
		fmt.Fprintln(c.stdout, "\n"+n)
	}
}

// unheldOf is how many of this device's messages in g no other node is
// known to hold.
func unheldOf(g *apiv1.GroupSync) uint64 {
	var n uint64
	for _, l := range g.GetLogs() {
		if l.GetLog() == "messages" {
			n += l.GetUnheld()
		}
	}
	return n
}
