package group

import (
	"fmt"

	"github.com/skein-p2p/skein/core/crypto"
)

// payloadVersion is the first byte of every metadata payload, envelope
// and header. Version 2 seals metadata payloads and the envelope's epoch
// under keys derived from the replication key, and shares chain keys and
// epoch secrets with one ephemeral key per entry and 8-byte recipient ids.
// Version 1 (clear metadata) is not read: nothing was deployed with it.
const payloadVersion = 2

// envelopeVersion is the first byte of a message envelope and of its
// header. Version 4 (this one) seals the header once (crypto SealOnce, no
// nonce on the wire) under a key derived for the one message from the
// epoch's header key and the envelope's sealed epoch, which is unique per
// message (headerOnceKey; the argument is in docs/threat-model.md): 24
// bytes less than version 3. Version 3 dropped the sender's key from the
// header (the header's associated data binds the entry's writer already)
// and seals the body under its single-use message key with no nonce on
// the wire (crypto.SealOnce). Version 3 envelopes are still read (logs
// written before version 4 stay readable), never written; version 2 is
// not read (docs/protocol.md "Message envelope").
const envelopeVersion = 4

// envelopeVersion3 is the version before 4: its header is sealed with
// Seal (a random nonce on the wire) under the epoch's header key.
const envelopeVersion3 = 3

// Decoder limits: a payload asking for more is malformed.
const (
	maxShares   = 4096 // recipients in one chain-key or rekey entry
	maxAccounts = 2    // accounts named by group-created
	maxRemoved  = 1024 // accounts removed by one rekey
	maxCutoffs  = 4096 // devices with cutoffs in one entry
	maxEpochCut = 1024 // epochs in one device cutoff
	maxSealed   = 1 << 20
)

// Sizes of the boxes in shares: a chain-keys share holds u64(start index)
// || chain key, a rekey share the epoch secret; each plus the AEAD tag.
const (
	chainShareSize  = 8 + 32
	chainBoxSize    = chainShareSize + crypto.TagSize
	secretBoxSize   = 32 + crypto.TagSize
	sealedEpochSize = EpochIDSize + crypto.SealOverhead
)

// MetaType is the type of a metadata log entry.
type MetaType uint8

// Metadata entry types.
const (
	MetaGroupCreated      MetaType = 1
	MetaDeviceAdded       MetaType = 2
	MetaInvitationCreated MetaType = 3
	MetaChainKeys         MetaType = 4
	MetaRekey             MetaType = 5
	MetaMemberLeft        MetaType = 6
	MetaAppMetadata       MetaType = 7
	// MetaDeviceRemoved removes devices of the writer's own account (not
	// the account): a rekey whose Removed names devices (device_removal.go).
	MetaDeviceRemoved MetaType = 8
)

// String returns the type's name as used in docs/protocol.md.
func (t MetaType) String() string {
	switch t {
	case MetaGroupCreated:
		return "group-created"
	case MetaDeviceAdded:
		return "device-added"
	case MetaInvitationCreated:
		return "invitation-created"
	case MetaChainKeys:
		return "chain-keys"
	case MetaRekey:
		return "rekey"
	case MetaMemberLeft:
		return "member-left"
	case MetaAppMetadata:
		return "app-metadata"
	case MetaDeviceRemoved:
		return "device-removed"
	}
	return fmt.Sprintf("meta-type(%d)", uint8(t))
}

// Authorization types of a device-added entry.
const (
	AuthGroupKey   byte = 1
	AuthInvitation byte = 2
)

// RecipientIDSize is the length of a RecipientID.
const RecipientIDSize = 8

// RecipientID names a member device in a share: the first 8 bytes of its
// Ed25519 key. The membership state refuses a device whose id another
// device of the group already has (finding one takes about 2^64 work), so
// an id names one device.
type RecipientID [RecipientIDSize]byte

// RecipientOf returns the recipient id of a device key.
func RecipientOf(device crypto.PublicKey) RecipientID { return RecipientID(device[:RecipientIDSize]) }

// Share is one secret sealed to one member device: the box a
// crypto.MultiSealer made for the device's X25519 key (from its
// certificate) under the entry's ephemeral key.
type Share struct {
	Recipient RecipientID
	Box       []byte
}

// EpochLimit bounds the ratchet indices accepted from a removed device in
// one epoch: indices < Limit.
type EpochLimit struct {
	Epoch EpochID
	Limit uint64
}

// Cutoff is what a rekey or member-left records about one removed device:
// the largest Lamport times of its entries (in the metadata and message
// logs) and, per epoch, the ratchet-index limit. Entries past these are
// rejected.
type Cutoff struct {
	Device   crypto.PublicKey
	MetaTime uint64
	MsgTime  uint64
	Limits   []EpochLimit
}

// MetaPayload is the plaintext of a metadata log entry's payload. Type
// says which of the type-specific fields are meaningful. The entry carries
// it sealed under the group's metadata key, derived from the replication
// key (sealMeta): a member or a replication node opens it and checks write
// access; whoever holds only the block reads nothing of it. Secrets inside
// are sealed again, to devices (shares) or under an epoch key (Sealed).
type MetaPayload struct {
	Type MetaType
	// Epoch is the epoch the entry belongs to: the epoch a device joins,
	// an invitation or chain key is for, or that a rekey supersedes.
	Epoch EpochID

	// group-created
	Kind     Kind
	Accounts []crypto.PublicKey
	GroupSig []byte
	// device-added
	Cert      *crypto.DeviceCertificate
	AuthType  byte
	InviteKey crypto.PublicKey // AuthInvitation only
	AuthSig   []byte
	// chain-keys and rekey (the new epoch secret): the ephemeral X25519 key
	// of every box (absent when there is no share) and the boxes
	Ephemeral crypto.X25519PublicKey
	Shares    []Share
	// rekey (Removed: accounts) and device-removed (Removed: devices)
	NewEpoch EpochID
	Removed  []crypto.PublicKey
	// rekey and member-left
	Cutoffs []Cutoff
	// app-metadata
	Sealed []byte
}

// MarshalBinary encodes the payload's plaintext, type || epoch || body
// (layout in docs/protocol.md); sealMeta seals it for the log.
func (p *MetaPayload) MarshalBinary() ([]byte, error) {
	w := wireWriter{}
	w.byte1(byte(p.Type))
	w.raw(p.Epoch[:])
	switch p.Type {
	case MetaGroupCreated:
		w.byte1(byte(p.Kind))
		w.uvarint(uint64(len(p.Accounts)))
		for _, a := range p.Accounts {
			w.raw(a[:])
		}
		if len(p.GroupSig) != crypto.SignatureSize {
			return nil, fmt.Errorf("encode %s: signature of %d bytes", p.Type, len(p.GroupSig))
		}
		w.raw(p.GroupSig)
	case MetaDeviceAdded:
		if p.Cert == nil || len(p.AuthSig) != crypto.SignatureSize {
			return nil, fmt.Errorf("encode %s: missing certificate or signature", p.Type)
		}
		cb, _ := p.Cert.MarshalBinary()
		w.raw(cb)
		w.byte1(p.AuthType)
		if p.AuthType == AuthInvitation {
			w.raw(p.InviteKey[:])
		}
		w.raw(p.AuthSig)
	case MetaInvitationCreated:
		w.raw(p.InviteKey[:])
	case MetaChainKeys:
		if len(p.Shares) == 0 {
			return nil, fmt.Errorf("encode %s: no share", p.Type)
		}
		if err := writeShares(&w, p, chainBoxSize); err != nil {
			return nil, err
		}
	case MetaRekey, MetaDeviceRemoved:
		w.raw(p.NewEpoch[:])
		w.uvarint(uint64(len(p.Removed)))
		for _, a := range p.Removed {
			w.raw(a[:])
		}
		writeCutoffs(&w, p.Cutoffs)
		if err := writeShares(&w, p, secretBoxSize); err != nil {
			return nil, err
		}
	case MetaMemberLeft:
		writeCutoffs(&w, p.Cutoffs)
	case MetaAppMetadata:
		w.bytes(p.Sealed)
	default:
		return nil, fmt.Errorf("encode metadata: unknown type %d", p.Type)
	}
	return w.b, nil
}

// writeShares writes uvarint(n) || [ephemeral(32) if n > 0] ||
// n × (recipient(8) || box(boxSize)).
func writeShares(w *wireWriter, p *MetaPayload, boxSize int) error {
	if len(p.Shares) > maxShares {
		return fmt.Errorf("encode %s: %d shares, limit %d", p.Type, len(p.Shares), maxShares)
	}
	w.uvarint(uint64(len(p.Shares)))
	if len(p.Shares) == 0 {
		return nil
	}
	w.raw(p.Ephemeral[:])
	for _, sh := range p.Shares {
		if len(sh.Box) != boxSize {
			return fmt.Errorf("encode %s: share box of %d bytes, want %d", p.Type, len(sh.Box), boxSize)
		}
		w.raw(sh.Recipient[:])
		w.raw(sh.Box)
	}
	return nil
}

func writeCutoffs(w *wireWriter, cs []Cutoff) {
	w.uvarint(uint64(len(cs)))
	for _, c := range cs {
		w.raw(c.Device[:])
		w.uvarint(c.MetaTime)
		w.uvarint(c.MsgTime)
		w.uvarint(uint64(len(c.Limits)))
		for _, l := range c.Limits {
			w.raw(l.Epoch[:])
			w.uvarint(l.Limit)
		}
	}
}

// DecodeMetaPayload decodes a metadata payload's plaintext (what
// MarshalBinary writes and openMeta opens) strictly: unknown type, a count
// over its limit, a truncated field or trailing bytes is an error wrapping
// ErrMalformedPayload. It checks structure only; signatures are checked
// when the entry is decoded for the state (decodeItem).
func DecodeMetaPayload(b []byte) (*MetaPayload, error) {
	r := wireReader{b: b, what: "metadata payload"}
	p := &MetaPayload{}
	p.Type = MetaType(r.byte1("type"))
	r.fixed("epoch", p.Epoch[:])
	if r.err == nil {
		switch p.Type {
		case MetaGroupCreated:
			p.Kind = Kind(r.byte1("kind"))
			n := r.count("accounts", maxAccounts)
			for i := 0; i < n && r.err == nil; i++ {
				var a crypto.PublicKey
				r.fixed("account", a[:])
				p.Accounts = append(p.Accounts, a)
			}
			p.GroupSig = make([]byte, crypto.SignatureSize)
			r.fixed("group signature", p.GroupSig)
			if r.err == nil && !p.Kind.valid() {
				r.fail("kind", "unknown group kind %d", p.Kind)
			}
			if r.err == nil && n == 0 {
				r.fail("accounts", "no account")
			}
		case MetaDeviceAdded:
			cb := make([]byte, crypto.DeviceCertificateSize)
			r.fixed("certificate", cb)
			if r.err == nil {
				c, err := crypto.ParseDeviceCertificate(cb)
				if err != nil {
					r.fail("certificate", "%v", err)
				}
				p.Cert = c
			}
			p.AuthType = r.byte1("auth type")
			if r.err == nil {
				switch p.AuthType {
				case AuthGroupKey:
				case AuthInvitation:
					r.fixed("invite key", p.InviteKey[:])
				default:
					r.fail("auth type", "unknown authorization type %d", p.AuthType)
				}
			}
			p.AuthSig = make([]byte, crypto.SignatureSize)
			r.fixed("auth signature", p.AuthSig)
		case MetaInvitationCreated:
			r.fixed("invite key", p.InviteKey[:])
		case MetaChainKeys:
			readShares(&r, p, chainBoxSize)
			if r.err == nil && len(p.Shares) == 0 {
				r.fail("shares", "no share")
			}
		case MetaRekey, MetaDeviceRemoved:
			r.fixed("new epoch", p.NewEpoch[:])
			n := r.count("removed", maxRemoved)
			for i := 0; i < n && r.err == nil; i++ {
				var a crypto.PublicKey
				r.fixed("removed account", a[:])
				p.Removed = append(p.Removed, a)
			}
			p.Cutoffs = readCutoffs(&r)
			readShares(&r, p, secretBoxSize)
			if r.err == nil && p.NewEpoch == GenesisEpoch {
				r.fail("new epoch", "the genesis epoch id")
			}
			if r.err == nil && p.Type == MetaDeviceRemoved && len(p.Removed) == 0 {
				r.fail("removed", "no device")
			}
		case MetaMemberLeft:
			p.Cutoffs = readCutoffs(&r)
		case MetaAppMetadata:
			p.Sealed = r.bytes("sealed", maxSealed)
		default:
			r.fail("type", "unknown metadata type %d", p.Type)
		}
	}
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPayload, r.err)
	}
	return p, nil
}

func readShares(r *wireReader, p *MetaPayload, boxSize int) {
	n := r.count("shares", maxShares)
	if n == 0 || r.err != nil {
		return
	}
	r.fixed("ephemeral key", p.Ephemeral[:])
	if r.err == nil && len(r.b)-r.off < n*(RecipientIDSize+boxSize) {
		// Checked before allocating: the count costs the sender its bytes.
		r.fail("shares", "truncated: %d shares need %d bytes, %d left", n, n*(RecipientIDSize+boxSize), len(r.b)-r.off)
		return
	}
	p.Shares = make([]Share, n)
	for i := range p.Shares {
		r.fixed("share recipient", p.Shares[i].Recipient[:])
		p.Shares[i].Box = make([]byte, boxSize)
		r.fixed("share box", p.Shares[i].Box)
	}
}

func readCutoffs(r *wireReader) []Cutoff {
	n := r.count("cutoffs", maxCutoffs)
	var out []Cutoff
	for i := 0; i < n && r.err == nil; i++ {
		var c Cutoff
		r.fixed("cutoff device", c.Device[:])
		c.MetaTime = r.uvarint("cutoff meta time")
		c.MsgTime = r.uvarint("cutoff message time")
		m := r.count("cutoff epochs", maxEpochCut)
		for j := 0; j < m && r.err == nil; j++ {
			var l EpochLimit
			r.fixed("cutoff epoch", l.Epoch[:])
			l.Limit = r.uvarint("cutoff limit")
			c.Limits = append(c.Limits, l)
		}
		out = append(out, c)
	}
	return out
}

// Envelope is the payload of a message log entry: the epoch, sealed under
// the group's envelope key (derived from the replication key: a member or
// a replication node opens it to find the epoch's members; whoever holds
// only the block learns nothing of it), the sealed header and the sealed
// body.
type Envelope struct {
	// Version is envelopeVersion (4), or 3 for an envelope written before
	// it; 0 encodes as envelopeVersion.
	Version     byte
	SealedEpoch [sealedEpochSize]byte // sealEpoch's output
	// Header is sealed once under headerOnceKey (version 4), or with a
	// nonce under the epoch's header key (version 3).
	Header []byte
	Body   []byte // sealed under the sender's ratchet message key
}

// version returns the envelope's version, envelopeVersion when unset.
func (e *Envelope) version() byte {
	if e.Version == 0 {
		return envelopeVersion
	}
	return e.Version
}

// MarshalBinary encodes the envelope:
// version(1) || sealedEpoch(56) || uvarint len || header || uvarint len || body.
func (e *Envelope) MarshalBinary() ([]byte, error) {
	if v := e.version(); v != envelopeVersion && v != envelopeVersion3 {
		return nil, fmt.Errorf("%w: envelope version %d", ErrMalformedPayload, v)
	}
	w := wireWriter{b: make([]byte, 0, 1+sealedEpochSize+4+len(e.Header)+len(e.Body))}
	w.byte1(e.version())
	w.raw(e.SealedEpoch[:])
	w.bytes(e.Header)
	w.bytes(e.Body)
	return w.b, nil
}

// DecodeEnvelope decodes an envelope strictly (errors wrap
// ErrMalformedPayload). Opening the epoch is openEpoch's.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	r := wireReader{b: b, what: "envelope"}
	e := &Envelope{}
	e.Version = r.byte1("version")
	if r.err == nil && e.Version != envelopeVersion && e.Version != envelopeVersion3 {
		r.fail("version", "unsupported version %d", e.Version)
	}
	r.fixed("sealed epoch", e.SealedEpoch[:])
	e.Header = r.bytes("header", 1024)
	e.Body = r.bytes("body", maxSealed)
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPayload, r.err)
	}
	return e, nil
}

// Header is the plaintext of an envelope's sealed header.
type Header struct {
	// Sender is the sending device: the entry's writer. It is not encoded
	// (the header's associated data binds the writer).
	Sender crypto.PublicKey
	Index  uint64 // ratchet index of the body's message key
	SentAt int64  // sender's clock, Unix milliseconds (informative)
}

// marshal encodes the header of an envelope of version v: version(1) ||
// uvarint(index) || int64be(sentAt).
func (h *Header) marshal(v byte) []byte {
	w := wireWriter{}
	w.byte1(v)
	w.uvarint(h.Index)
	w.uint64be(uint64(h.SentAt))
	return w.b
}

// decodeHeader decodes a header of an envelope of version v opened under
// the associated data of writer's entries; writer is its sender.
func decodeHeader(b []byte, v byte, writer crypto.PublicKey) (*Header, error) {
	r := wireReader{b: b, what: "header"}
	h := &Header{Sender: writer}
	if got := r.byte1("version"); r.err == nil && got != v {
		r.fail("version", "version %d in an envelope of version %d", got, v)
	}
	h.Index = r.uvarint("index")
	h.SentAt = int64(r.uint64be("sent at"))
	r.end()
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPayload, r.err)
	}
	return h, nil
}
