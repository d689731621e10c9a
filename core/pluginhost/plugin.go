package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/skein-p2p/skein/sdk"
)

// State is where a supervised plugin is in its life.
type State int

// Plugin states.
const (
	StateStarting   State = iota // first launch in progress
	StateRunning                 // an instance is up
	StateRestarting              // crashed; waiting out the backoff or relaunching
	StateStopping                // Stop in progress
	StateStopped                 // stopped (or crashed with restarts disabled)
)

// String names the state for logs and `skein plugins list`.
func (s State) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateRunning:
		return "running"
	case StateRestarting:
		return "restarting"
	case StateStopping:
		return "stopping"
	case StateStopped:
		return "stopped"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Plugin is one supervised plugin. Its kind accessors (Store, Transport,
// Discovery) return proxies that stay valid across restarts.
type Plugin struct {
	spec   Spec
	logger *slog.Logger

	mu       sync.Mutex
	state    State
	cur      *instance     // nil unless running
	changed  chan struct{} // closed and replaced on every change of cur or state
	gen      uint64        // gen of the latest instance
	restarts int
	desc     sdk.Description
	diags    []sdk.Diagnostic
	lastErr  error

	stopCh    chan struct{} // closed when Stop begins
	superDone chan struct{} // closed when the supervisor has returned
	stopDone  chan struct{} // closed when Stop has finished
	stopErr   error

	storeProxy *storeProxy

	// directMu serialises changes of direct, closedTopics and validators
	// with their registration on the running instance, and a restart's
	// re-registration with install.
	directMu     sync.Mutex
	direct       map[string]sdk.RequestHandler   // network handlers by protocol
	closedTopics map[string]bool                 // network topics closed (TopicGate)
	validators   map[string]sdk.MessageValidator // network validators by topic
}

func newPlugin(spec Spec, logger *slog.Logger) *Plugin {
	return &Plugin{
		spec:      spec,
		logger:    logger,
		changed:   make(chan struct{}),
		stopCh:    make(chan struct{}),
		superDone: make(chan struct{}),
	}
}

// Name is the plugin's name from its Spec.
func (p *Plugin) Name() string { return p.spec.Name }

// Mode is how the plugin runs.
func (p *Plugin) Mode() Mode { return p.spec.Mode }

// Description is what the plugin said in answer to Describe at its last start.
func (p *Plugin) Description() sdk.Description {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.desc
}

// Diagnostics are the (warning) diagnostics of the last Configure.
func (p *Plugin) Diagnostics() []sdk.Diagnostic {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.diags)
}

// State is the plugin's state now.
func (p *Plugin) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// PID is the process ID of the running instance; 0 when linked in or not
// running.
func (p *Plugin) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return 0
	}
	return p.cur.pid
}

// Restarts counts the restarts after crashes so far.
func (p *Plugin) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// LastError is the error of the last crash or failed restart (nil if none).
func (p *Plugin) LastError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// notifyLocked wakes everyone waiting for a change. Hold p.mu.
func (p *Plugin) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// WaitRunning blocks until an instance is running or ctx ends, and fails at
// once if the plugin is stopped.
func (p *Plugin) WaitRunning(ctx context.Context) error {
	_, err := p.instance(ctx, 0)
	return err
}

// launch makes and initialises one instance.
func (p *Plugin) launch(ctx context.Context) (*instance, []sdk.Diagnostic, error) {
	var (
		in  *instance
		err error
	)
	switch p.spec.Mode {
	case ModeLinked:
		in, err = newLinkedInstance(p.spec)
	case ModeReattach:
		in, err = reattachProcess(p.spec, p.logger)
	default:
		in, err = launchProcess(p.spec, p.logger)
	}
	if err != nil {
		return nil, nil, err
	}
	in.started = time.Now()
	diags, err := initialise(ctx, p.spec, in)
	if err != nil {
		// Stop is safe after a partial start; then make sure of the process.
		_ = p.stopInstance(context.Background(), in)
		return nil, diags, err
	}
	return in, diags, nil
}

// start runs the first launch and, for a process, starts supervision.
func (p *Plugin) start(ctx context.Context) error {
	in, diags, err := p.launch(ctx)
	p.mu.Lock()
	p.diags = diags
	if err != nil {
		p.state = StateStopped
		p.lastErr = err
		p.notifyLocked()
		p.mu.Unlock()
		close(p.superDone)
		return err
	}
	p.install(in)
	p.mu.Unlock()
	for _, d := range diags {
		p.logger.Warn("plugin config diagnostic", "key", d.Key, "message", d.Message)
	}
	p.logger.Info("plugin started", "mode", p.spec.Mode.String(), "id", in.desc.ID, "version", in.desc.Version, "pid", in.pid)
	if in.exited == nil {
		close(p.superDone) // linked in: nothing to supervise
		return nil
	}
	go p.supervise(in)
	return nil
}

// install makes in the current instance. Hold p.mu.
func (p *Plugin) install(in *instance) {
	p.gen++
	in.gen = p.gen
	p.cur = in
	p.desc = in.desc
	if p.state != StateStopping { // else Stop, waiting for the supervisor, stops in
		p.state = StateRunning
	}
	p.notifyLocked()
}

// backoff is the delay before restart attempt n (0-based).
func (p *Plugin) backoff(n int) time.Duration {
	d := p.spec.Restart.Base
	for i := 0; i < n && d < p.spec.Restart.Max; i++ {
		d *= 2
	}
	return min(d, p.spec.Restart.Max)
}

// supervise waits for the instance to exit and restarts it with backoff
// until Stop.
func (p *Plugin) supervise(in *instance) {
	defer close(p.superDone)
	failures := 0
	for {
		select {
		case <-p.stopCh:
			return
		case <-in.exited:
		}
		ranFor := time.Since(in.started)
		crash := fmt.Errorf("plugin %s: %w: pid %d %s after %s", p.spec.Name, ErrPluginCrashed, in.pid, in.exitStatus(), ranFor.Round(time.Millisecond))
		p.mu.Lock()
		if p.cur == in {
			p.cur = nil
		}
		stopping := p.state == StateStopping
		if !stopping {
			p.state = StateRestarting
			p.lastErr = crash
		}
		p.notifyLocked()
		p.mu.Unlock()
		in.release()
		if stopping {
			return
		}
		if p.spec.Restart.Disabled || p.spec.Mode == ModeReattach {
			p.logger.Error("plugin exited; not restarting", "error", crash, "restart", "disabled")
			p.mu.Lock()
			p.state = StateStopped
			p.notifyLocked()
			p.mu.Unlock()
			return
		}
		if ranFor >= p.spec.Restart.StableAfter {
			failures = 0
		}
		p.logger.Error("plugin crashed", "pid", in.pid, "exit", in.exitStatus(), "ran_for", ranFor.Round(time.Millisecond))
		for {
			delay := p.backoff(failures)
			failures++
			p.logger.Info("restarting plugin", "in", delay, "attempt", failures)
			t := time.NewTimer(delay)
			select {
			case <-p.stopCh:
				t.Stop()
				return
			case <-t.C:
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-p.stopCh:
					cancel()
				case <-ctx.Done():
				}
			}()
			nin, _, err := p.launch(ctx)
			cancel()
			select {
			case <-p.stopCh:
				if nin != nil {
					p.mu.Lock()
					p.install(nin) // Stop stops it
					p.mu.Unlock()
				}
				return
			default:
			}
			if err != nil {
				p.logger.Error("plugin restart failed", "attempt", failures, "error", err)
				p.mu.Lock()
				p.lastErr = err
				p.mu.Unlock()
				continue
			}
			// The handlers go onto the new instance before it is installed,
			// so no call reaches it without them.
			p.directMu.Lock()
			p.reregister(nin)
			p.mu.Lock()
			p.restarts++
			p.install(nin)
			p.mu.Unlock()
			p.directMu.Unlock()
			p.logger.Info("plugin restarted", "pid", nin.pid, "attempt", failures)
			in = nin
			break
		}
	}
}

// instance returns a running instance newer than gen after, waiting for a
// restart within ctx (or DefaultCallTimeout when ctx has no deadline).
func (p *Plugin) instance(ctx context.Context, after uint64) (*instance, error) {
	var timeout <-chan time.Time
	for {
		p.mu.Lock()
		in, ch, st, lastErr := p.cur, p.changed, p.state, p.lastErr
		p.mu.Unlock()
		if in != nil && in.gen > after {
			return in, nil
		}
		if st == StateStopping || st == StateStopped {
			if lastErr != nil && st == StateStopped {
				return nil, fmt.Errorf("plugin %s: %w (last error: %v)", p.spec.Name, ErrPluginStopped, lastErr)
			}
			return nil, fmt.Errorf("plugin %s: %w", p.spec.Name, ErrPluginStopped)
		}
		if timeout == nil {
			if _, ok := ctx.Deadline(); !ok {
				t := time.NewTimer(DefaultCallTimeout)
				defer t.Stop()
				timeout = t.C
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("plugin %s: %w: %w", p.spec.Name, ErrPluginRestarting, ctx.Err())
		case <-timeout:
			return nil, fmt.Errorf("plugin %s: %w: not back within %s", p.spec.Name, ErrPluginRestarting, DefaultCallTimeout)
		}
	}
}

// crashedDuring tells whether err came from the instance dying under the
// call rather than from the plugin's own answer.
func crashedDuring(ctx context.Context, in *instance, err error) bool {
	if in.exited == nil {
		return false
	}
	if in.dead() {
		return true
	}
	if ctx.Err() != nil {
		return false // the caller's own deadline or cancellation
	}
	return errors.Is(err, sdk.ErrPluginUnavailable)
}

// Retry policies for call.
func idempotent() bool    { return true }
func notIdempotent() bool { return false }

// call runs fn against the current instance. An error from a crash of the
// instance becomes ErrPluginCrashed; when retry says so (idempotent calls)
// fn runs again on the restarted instance within ctx.
func (p *Plugin) call(ctx context.Context, op string, retry func() bool, fn func(*instance) error) error {
	var (
		after    uint64
		crashErr error
	)
	for {
		in, err := p.instance(ctx, after)
		if err != nil {
			if crashErr != nil {
				return fmt.Errorf("%w; %w", crashErr, err)
			}
			return err
		}
		err = fn(in)
		if err == nil || !crashedDuring(ctx, in, err) {
			return err
		}
		crashErr = fmt.Errorf("plugin %s: %s: %w (pid %d): %v", p.spec.Name, op, ErrPluginCrashed, in.pid, err)
		if !retry() {
			return crashErr
		}
		p.logger.Debug("retrying call after plugin crash", "op", op, "pid", in.pid)
		after = in.gen
	}
}

// Status asks the plugin for its health (sdk.StatusReporter); a plugin
// without the capability reports healthy while it runs.
func (p *Plugin) Status(ctx context.Context) (sdk.Status, error) {
	var st sdk.Status
	err := p.call(ctx, "status", idempotent, func(in *instance) error {
		if in.status == nil {
			st = sdk.Status{Healthy: true, Message: "running"}
			return nil
		}
		var err error
		st, err = in.status.Status(ctx)
		return err
	})
	return st, err
}

// Stop stops the plugin: supervision ends, the Stop RPC runs with
// StopTimeout (bounded by ctx too), and a process that has not stopped by
// then is killed (ErrStopTimeout). Stop is idempotent and safe at any time;
// calls made after it fail with ErrPluginStopped.
func (p *Plugin) Stop(ctx context.Context) error {
	p.mu.Lock()
	if p.stopDone != nil {
		done := p.stopDone
		p.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("plugin %s: stop: %w", p.spec.Name, ctx.Err())
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.stopErr
	}
	p.stopDone = make(chan struct{})
	p.state = StateStopping
	close(p.stopCh)
	p.notifyLocked()
	p.mu.Unlock()

	<-p.superDone // bounded: a relaunch in progress sees stopCh
	p.mu.Lock()
	in := p.cur
	p.cur = nil
	p.mu.Unlock()
	var err error
	if in != nil {
		err = p.stopInstance(ctx, in)
	}
	p.mu.Lock()
	p.state = StateStopped
	p.stopErr = err
	close(p.stopDone)
	p.notifyLocked()
	p.mu.Unlock()
	if err != nil {
		p.logger.Warn("plugin stop", "error", err)
	} else {
		p.logger.Info("plugin stopped")
	}
	return err
}

// stopInstance runs the Stop RPC with a deadline, then ends the process:
// gracefully if Stop succeeded, with SIGKILL if not.
func (p *Plugin) stopInstance(ctx context.Context, in *instance) error {
	sctx, cancel := context.WithTimeout(ctx, p.spec.StopTimeout)
	defer cancel()
	var err error
	if !in.dead() {
		done := make(chan error, 1)
		// In a goroutine: a linked-in plugin may ignore its context.
		go func() { done <- in.life.Stop(sctx) }()
		select {
		case err = <-done:
		case <-sctx.Done():
			err = sctx.Err()
		}
	}
	if in.kill != nil {
		if err != nil {
			in.kill()
		}
		in.release()
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded) && in.kill != nil:
		return fmt.Errorf("plugin %s: %w (stop timeout %s)", p.spec.Name, ErrStopTimeout, p.spec.StopTimeout)
	case in.kill != nil:
		return fmt.Errorf("plugin %s: stop: %w; killed", p.spec.Name, err)
	default:
		return fmt.Errorf("plugin %s: stop: %w", p.spec.Name, err)
	}
}
