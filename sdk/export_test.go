package sdk

// HandedOver returns how many accepted messages rp's host side took with
// their verdict instead of from the Subscribe stream.
func HandedOver(rp *RemotePlugin) int64 { return rp.validators.handedOver.Load() }
