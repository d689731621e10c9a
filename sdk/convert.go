package sdk

import (
	"time"

	wirev1 "github.com/skein-p2p/skein/sdk/internal/wire/v1"
)

// Conversions between the public structs and the v1 wire types. Nothing
// outside this package sees a wire type.

func descriptionToWire(d Description) *wirev1.Description {
	w := &wirev1.Description{Id: d.ID, Version: d.Version, Capabilities: d.Capabilities}
	for _, k := range d.Kinds {
		w.Kinds = append(w.Kinds, string(k))
	}
	for _, c := range d.ConfigSchema {
		w.ConfigSchema = append(w.ConfigSchema, &wirev1.ConfigKey{
			Key: c.Key, Type: c.Type, DefaultValue: c.Default, Description: c.Description, Required: c.Required,
		})
	}
	return w
}

func descriptionFromWire(w *wirev1.Description) Description {
	d := Description{ID: w.GetId(), Version: w.GetVersion(), Capabilities: w.GetCapabilities()}
	for _, k := range w.GetKinds() {
		d.Kinds = append(d.Kinds, Kind(k))
	}
	for _, c := range w.GetConfigSchema() {
		d.ConfigSchema = append(d.ConfigSchema, ConfigKey{
			Key: c.GetKey(), Type: c.GetType(), Default: c.GetDefaultValue(), Description: c.GetDescription(), Required: c.GetRequired(),
		})
	}
	return d
}

func diagnosticsToWire(ds []Diagnostic) []*wirev1.Diagnostic {
	out := make([]*wirev1.Diagnostic, 0, len(ds))
	for _, d := range ds {
		out = append(out, &wirev1.Diagnostic{Severity: int32(d.Severity), Key: d.Key, Message: d.Message})
	}
	return out
}

func diagnosticsFromWire(ws []*wirev1.Diagnostic) []Diagnostic {
	out := make([]Diagnostic, 0, len(ws))
	for _, w := range ws {
		sev := Severity(w.GetSeverity())
		if sev != SeverityWarning && sev != SeverityError {
			// An unknown severity from a foreign plugin fails closed.
			sev = SeverityError
		}
		out = append(out, Diagnostic{Severity: sev, Key: w.GetKey(), Message: w.GetMessage()})
	}
	return out
}

func statusToWire(s Status) *wirev1.StatusReport {
	return &wirev1.StatusReport{Healthy: s.Healthy, Message: s.Message, Details: s.Details}
}

func statusFromWire(w *wirev1.StatusReport) Status {
	return Status{Healthy: w.GetHealthy(), Message: w.GetMessage(), Details: w.GetDetails()}
}

func packetProfileToWire(p PacketProfile) *wirev1.PacketProfile {
	return &wirev1.PacketProfile{Mtu: int64(p.MTU), Bandwidth: p.Bandwidth, LatencyNanos: int64(p.Latency)}
}

func packetProfileFromWire(w *wirev1.PacketProfile) PacketProfile {
	return PacketProfile{MTU: int(w.GetMtu()), Bandwidth: w.GetBandwidth(), Latency: time.Duration(w.GetLatencyNanos())}
}

func peerInfoToWire(p PeerInfo) *wirev1.PeerInfo {
	return &wirev1.PeerInfo{Id: p.ID, Addrs: p.Addrs}
}

func peerInfoFromWire(w *wirev1.PeerInfo) PeerInfo {
	return PeerInfo{ID: w.GetId(), Addrs: w.GetAddrs()}
}
