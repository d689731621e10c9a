package apiv1

// MaxMessageBytes is the largest message body Messages.Send accepts:
// 960 KiB. A message travels as one log entry of at most 1 MiB (an IPFS
// block any node serves), and sealing, signing and the entry's own fields
// take the rest. A larger body is refused with INVALID_ARGUMENT naming the
// group; clients read at most MaxMessageBytes+1 bytes to let the node say so.
const MaxMessageBytes = 1<<20 - 64<<10

// Limits of Messages.SendStream, per stream: the node keeps at most
// MaxSendsInFlight sends begun and not yet acknowledged, holding at most
// MaxSendBytesInFlight bytes of message bodies, and reads no further
// request while it has that many. A client gains nothing by keeping more
// requests in flight than this.
const (
	MaxSendsInFlight     = 256
	MaxSendBytesInFlight = 8 << 20
)
