package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/pluginhost"
	"github.com/skein-p2p/skein/sdk"
)

// checkNetwork is a built-in network for CheckPlugins: it takes the
// transport protocols listed in its config key "takes".
type checkNetwork struct{ takes []string }

func (*checkNetwork) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: "network.check", Kinds: []sdk.Kind{sdk.KindNetwork}}, nil
}

func (n *checkNetwork) Configure(_ context.Context, raw map[string]any) ([]sdk.Diagnostic, error) {
	l, _ := raw["takes"].([]any)
	for _, v := range l {
		n.takes = append(n.takes, fmt.Sprint(v))
	}
	return nil, nil
}
func (*checkNetwork) Start(context.Context) error { return nil }
func (*checkNetwork) Stop(context.Context) error  { return nil }

func (n *checkNetwork) CheckAttach(protocol string) error {
	for _, p := range n.takes {
		if p == protocol {
			return nil
		}
	}
	return errors.New("not taken: add it to takes")
}

// checkTransport is a built-in transport of protocol x-check.
type checkTransport struct{}

func (checkTransport) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{ID: "transport.check", Kinds: []sdk.Kind{sdk.KindTransport}}, nil
}
func (checkTransport) Configure(context.Context, map[string]any) ([]sdk.Diagnostic, error) {
	return nil, nil
}
func (checkTransport) Start(context.Context) error { return nil }
func (checkTransport) Stop(context.Context) error  { return nil }
func (checkTransport) Protocol() string            { return "x-check" }
func (checkTransport) Listen(context.Context, string) (sdk.Listener, error) {
	return nil, errors.New("not for running")
}
func (checkTransport) Dial(context.Context, string) (net.Conn, error) {
	return nil, errors.New("not for running")
}

var _ sdk.TransportAttachChecker = (*checkNetwork)(nil)

func init() {
	pluginhost.Register("network.check", func() sdk.Plugin { return &checkNetwork{} })
	pluginhost.Register("transport.check", func() sdk.Plugin { return checkTransport{} })
}

// TestCheckPluginsAttachment: config check refuses a built-in transport
// that a built-in network would not attach, as the node's start would.
func TestCheckPluginsAttachment(t *testing.T) {
	tests := []struct {
		name  string
		takes string
		want  string
	}{
		{"not taken", "[]", "plugins.net.config.transports: transport plugin tr (protocol x-check) would not be attached: not taken"},
		{"taken", "[x-check]", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := loadConfig(t, `
node:
  data_dir: data
plugins:
  store:
    enabled: false
  net:
    id: network.check
    mode: linked
    config:
      takes: `+tc.takes+`
  tr:
    id: transport.check
    mode: linked
`)
			_, err := CheckPlugins(context.Background(), cfg)
			var inv *config.InvalidError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckPlugins: %v", err)
			case tc.want != "" && (!errors.As(err, &inv) || len(inv.Problems) != 1 || !strings.Contains(inv.Problems[0].String(), tc.want)):
				t.Fatalf("CheckPlugins = %v, want one problem %q", err, tc.want)
			}
		})
	}
}
