module github.com/contid/contid

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/alecthomas/kong v1.17.0
	github.com/cilium/ebpf v0.22.0
	golang.org/x/sys v0.50.0
)

require golang.org/x/time v0.16.0
