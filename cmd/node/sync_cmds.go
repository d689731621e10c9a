package main

import (
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
