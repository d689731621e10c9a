package pluginhost

import (
	"fmt"
	"slices"
	"sync"

	"github.com/skein-p2p/skein/sdk"
)

// Factory makes a new, unconfigured plugin. It must have no side effects:
// the host calls Configure and Start on what it returns.
type Factory func() sdk.Plugin

var registry struct {
	sync.RWMutex
	factories map[string]Factory
}

// Register makes a plugin available to run linked in (ModeLinked) under its
// namespaced ID, e.g. "store.pebble". It is meant to be called from init or
// main before any host starts. Register panics on an empty ID, a nil factory
// or an ID registered twice: each is a programming error.
func Register(id string, factory Factory) {
	if id == "" {
		panic("pluginhost: Register with an empty plugin id")
	}
	if factory == nil {
		panic(fmt.Sprintf("pluginhost: Register %s with a nil factory", id))
	}
	registry.Lock()
	defer registry.Unlock()
	if registry.factories == nil {
		registry.factories = make(map[string]Factory)
	}
	if _, dup := registry.factories[id]; dup {
		panic(fmt.Sprintf("pluginhost: plugin %s registered twice", id))
	}
	registry.factories[id] = factory
}

// Lookup returns the factory registered under id.
func Lookup(id string) (Factory, bool) {
	registry.RLock()
	defer registry.RUnlock()
	f, ok := registry.factories[id]
	return f, ok
}

// Registered lists the registered plugin IDs in order.
func Registered() []string {
	registry.RLock()
	defer registry.RUnlock()
	ids := make([]string, 0, len(registry.factories))
	for id := range registry.factories {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
