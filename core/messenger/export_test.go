package messenger

// UnheldWalks counts the reckonings of unheld entries not answered from
// the cache.
func (m *Messenger) UnheldWalks() int64 { return m.unheldCache.walks.Load() }
