package fleet

// HostPermissions are the subjects a host's NATS user needs, and all it
// should have: publish its own events and ask its own stream where it
// stands; put its own containers' entries in the registry (the KV
// bucket RegistryBucket); receive the replies under its own inbox prefix.
// Nothing else: no other host's subjects or entries, no reading of any
// stream's events, no change to any stream. docs/fleet.md shows them in a
// server configuration.
func HostPermissions(prefix, host string) (publish, subscribe []string) {
	stream := StreamName(prefix, host)
	bucket := RegistryBucket(prefix)
	return []string{
			HostSubjects(host),
			"$JS.API.STREAM.INFO." + stream,
			"$JS.API.STREAM.MSG.GET." + stream,
			"$JS.API.DIRECT.GET." + stream,
			"$KV." + bucket + "." + host + ".>",
			"$JS.API.STREAM.INFO.KV_" + bucket,
		}, []string{
			InboxPrefix(host) + ".>",
		}
}
