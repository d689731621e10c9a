package sdk

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// maxDeliveredMarks bounds the messages per topic the host took from a
// verdict that the Subscribe stream has yet to skip. A mark that is never
// taken (the network did not deliver the message after all) ages out; one
// dropped early costs a duplicate delivery, never a lost one.
const maxDeliveredMarks = 4096

// hostDelivered is the plugin side of delivery in verdicts (ValidateTopic
// with deliver): the messages the host already took from its validator's
// answer, which the topic's Subscribe stream then does not send again.
// Marks are kept only while exactly one Subscribe stream of the topic is
// open: the host claims delivery only to its one subscription, and with
// more the plugin could not tell which stream to spare.
type hostDelivered struct {
	mu    sync.Mutex
	subs  map[string]int // open Subscribe streams per topic
	marks map[string]*deliveredMarks
}

type deliveredMarks struct {
	count map[[32]byte]int
	order [][32]byte // oldest first, for the bound
}

func deliveredKey(from string, data []byte) [32]byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(from)))
	h.Write(n[:])
	h.Write([]byte(from))
	h.Write(data)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// subscribed counts a Subscribe stream of topic until the returned func
// is called.
func (d *hostDelivered) subscribed(topic string) func() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.subs == nil {
		d.subs = map[string]int{}
		d.marks = map[string]*deliveredMarks{}
	}
	d.subs[topic]++
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.subs[topic]--; d.subs[topic] <= 0 {
			delete(d.subs, topic)
			delete(d.marks, topic)
		}
	}
}

// mark records that the host took the message (from, data) of topic; it
// reports false (nothing recorded) unless one Subscribe stream is open.
func (d *hostDelivered) mark(topic string, k [32]byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.subs[topic] != 1 {
		return false
	}
	m := d.marks[topic]
	if m == nil {
		m = &deliveredMarks{count: map[[32]byte]int{}}
		d.marks[topic] = m
	}
	m.count[k]++
	m.order = append(m.order, k)
	if len(m.order) > maxDeliveredMarks {
		old := m.order[0]
		m.order = m.order[1:]
		if m.count[old]--; m.count[old] <= 0 {
			delete(m.count, old)
		}
	}
	return true
}

// take reports whether the host already took the message (and forgets
// one mark of it).
func (d *hostDelivered) take(topic string, from string, data []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.marks[topic]
	if m == nil || len(m.count) == 0 {
		return false
	}
	k := deliveredKey(from, data)
	if m.count[k] <= 0 {
		return false
	}
	if m.count[k]--; m.count[k] == 0 {
		delete(m.count, k)
	}
	return true
}
