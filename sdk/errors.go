package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrPluginUnavailable wraps errors of calls that failed because the plugin
// process could not be reached (it crashed, exited or is restarting). A
// host may retry idempotent calls that fail with it.
var ErrPluginUnavailable = errors.New("plugin unavailable")

// ErrInvalidArgument wraps errors a plugin returns for a caller mistake
// (an empty key, an unknown listener, a malformed address).
var ErrInvalidArgument = errors.New("invalid argument")

// ErrLifecycle wraps errors of calls made out of lifecycle order (a kind
// method before Start, Start twice).
var ErrLifecycle = errors.New("call out of lifecycle order")

// toStatus converts an implementation's error into a gRPC status error so
// that its meaning survives the process boundary.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, ErrInvalidArgument):
		code = codes.InvalidArgument
	case errors.Is(err, ErrLifecycle):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrKindNotServed), errors.Is(err, ErrCapabilityNotServed):
		code = codes.Unimplemented
	}
	return status.Error(code, err.Error())
}

// remoteError is an error that came back from a plugin: it keeps the
// plugin's message and unwraps to the sentinel its code maps to.
type remoteError struct {
	op   string
	msg  string
	kind error
}

func (e *remoteError) Error() string {
	// The plugin's server names the call too ("start: ..."): once is enough.
	if strings.HasPrefix(e.msg, e.op+": ") {
		return e.msg
	}
	return e.op + ": " + e.msg
}

func (e *remoteError) Unwrap() error { return e.kind }

// fromStatus converts a gRPC error from a plugin call back into an error
// matching the sdk sentinels and context errors; op names the call.
func fromStatus(op string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	var kind error
	switch st.Code() {
	case codes.NotFound:
		kind = ErrNotFound
	case codes.Canceled:
		kind = context.Canceled
	case codes.DeadlineExceeded:
		kind = context.DeadlineExceeded
	case codes.InvalidArgument:
		kind = ErrInvalidArgument
	case codes.FailedPrecondition:
		kind = ErrLifecycle
	case codes.Unimplemented:
		kind = ErrKindNotServed
	case codes.Unavailable:
		kind = ErrPluginUnavailable
	}
	return &remoteError{op: op, msg: st.Message(), kind: kind}
}
