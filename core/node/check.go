package node

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/skein-p2p/skein/core/config"
	"github.com/skein-p2p/skein/core/pluginhost"
	"github.com/skein-p2p/skein/sdk"
)

// CheckPlugins checks what can be checked of the enabled plugins without
// starting any: a built-in plugin's config subtree goes through the
// Configure of a fresh linked-in instance (never started), and an external
// binary is hashed against its sha256. A built-in transport that a
// built-in network would refuse to attach (sdk.TransportAttachChecker) is
// a problem too, as `skein run` would fail on it. Error diagnostics and
// mismatches come back as a *config.InvalidError keyed plugins.<name>...;
// warnings are returned either way.
//
// An external plugin's own config, and whether the network takes an
// external transport, are only checked when it is launched (`skein
// plugins verify`).
func CheckPlugins(ctx context.Context, cfg *config.Config) (warnings []config.Problem, err error) {
	var problems []config.Problem
	var configured []checkedInstance
	defer func() {
		// Configure has no side effects worth undoing, but Stop is safe
		// after a partial start, so release whatever it may hold.
		for _, c := range configured {
			_ = c.instance.Stop(ctx)
		}
	}()
	for _, name := range cfg.PluginNames() {
		p := cfg.Plugins[name]
		if p.Path != "" {
			if p.SHA256 == "" {
				continue // config.Load already reported it
			}
			got, err := pluginhost.FileSHA256(p.Path)
			key := "plugins." + name + ".sha256"
			switch {
			case err != nil:
				problems = append(problems, config.Problem{Source: cfg.Source(key), Key: key, Message: fmt.Sprintf("hash %s: %v", p.Path, err)})
			case !strings.EqualFold(got, p.SHA256):
				problems = append(problems, config.Problem{Source: cfg.Source(key), Key: key,
					Message: fmt.Sprintf("%v: the binary %s has sha256 %s, config says %s", pluginhost.ErrChecksumMismatch, p.Path, got, p.SHA256)})
			}
			continue
		}
		if p.Mode == config.ModeReattach {
			continue
		}
		factory, ok := pluginhost.Lookup(p.ID)
		if !ok {
			key := "plugins." + name + ".id"
			problems = append(problems, config.Problem{Source: cfg.Source(key), Key: key,
				Message: fmt.Sprintf("%s is not built into this binary (built in: %s)", p.ID, strings.Join(pluginhost.Registered(), ", "))})
			continue
		}
		instance := factory()
		diags, err := instance.Configure(ctx, p.Config)
		if err != nil {
			_ = instance.Stop(ctx)
			key := "plugins." + name + ".config"
			problems = append(problems, config.Problem{Source: cfg.Source(key), Key: key, Message: "configure: " + err.Error()})
			continue
		}
		errs, warns := cfg.PluginProblems(name, configDiagnostics(diags))
		problems = append(problems, errs...)
		warnings = append(warnings, warns...)
		if len(errs) > 0 {
			_ = instance.Stop(ctx)
			continue
		}
		configured = append(configured, checkedInstance{name: name, instance: instance})
	}
	problems = append(problems, checkAttachments(cfg, configured)...)
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b config.Problem) int { return strings.Compare(a.Key, b.Key) })
		return warnings, &config.InvalidError{Problems: problems}
	}
	return warnings, nil
}

// checkedInstance is a built-in plugin configured by CheckPlugins.
type checkedInstance struct {
	name     string
	instance sdk.Plugin
}

// checkAttachments reports every configured built-in transport that a
// configured built-in network says it would not attach: the start of the
// node attaches every transport to every network and fails on a refusal.
func checkAttachments(cfg *config.Config, configured []checkedInstance) []config.Problem {
	var problems []config.Problem
	for _, nw := range configured {
		checker, ok := nw.instance.(sdk.TransportAttachChecker)
		if !ok {
			continue
		}
		for _, tp := range configured {
			tr, ok := tp.instance.(sdk.Transport)
			if !ok || tp.name == nw.name {
				continue
			}
			if err := checker.CheckAttach(tr.Protocol()); err != nil {
				key := "plugins." + nw.name + ".config.transports"
				problems = append(problems, config.Problem{Source: cfg.Source(key), Key: key,
					Message: fmt.Sprintf("transport plugin %s (protocol %s) would not be attached: %v", tp.name, tr.Protocol(), err)})
			}
		}
	}
	return problems
}

// configDiagnostics converts sdk diagnostics for config.PluginProblems.
// Unknown severities count as errors: fail closed.
func configDiagnostics(diags []sdk.Diagnostic) []config.Diagnostic {
	out := make([]config.Diagnostic, len(diags))
	for i, d := range diags {
		out[i] = config.Diagnostic{Warning: d.Severity == sdk.SeverityWarning, Key: d.Key, Message: d.Message}
	}
	return out
}
