package cli

import (
	"fmt"
	"strconv"

	"github.com/contid/contid/internal/surface/api"
	"github.com/contid/contid/internal/surface/oci"
)

// ociHookCmd is an OCI runtime hook (createRuntime, or prestart for older
// runtimes): it registers the container's process with the daemon, acting
// for the runtime that ran the hook, before the container's process runs.
type ociHookCmd struct {
	clientFlags
	AllowUnregistered bool     `help:"Let the container start when the daemon refuses or is down (default: the hook fails, and so does the start)." env:"CONTID_HOOK_ALLOW_UNREGISTERED"`
	CapcontidAllow    []string `name:"capcontid-allow" placeholder:"GLOB" help:"Containers (by id or name, shell glob; repeat or comma-separate) whose org.contid.capcontid=1 annotation is granted. Default: none; a container asking for it is registered, then its start fails (or it starts without capcontid with --allow-unregistered)."`
	PrintConfig       string   `help:"Print the hook stanza instead: 'runc' for a config.json, 'hooks.d' for podman/CRI-O; it carries --socket (when not the default), --allow-unregistered and --capcontid-allow as given." enum:",runc,hooks.d" default:""`
	Path              string   `help:"With --print-config: the contid binary's path." default:"/usr/local/bin/contid"`
}

func (c *ociHookCmd) Run(stdio Stdio) error {
	if c.PrintConfig != "" {
		return printJSON(stdio.Out, hookConfig(c.PrintConfig, c.Path, c.hookArgs()))
	}
	if err := oci.CheckPatterns(c.CapcontidAllow); err != nil {
		return c.fail(stdio, err)
	}
	s, err := oci.ReadState(stdio.In)
	if err != nil {
		return c.fail(stdio, err)
	}
	plan := oci.Plan(s)
	cx, cancel := ctx()
	defer cancel()
	t, err := c.client().SetContid(cx, api.SetRequest{PID: int32(plan.PID), Contid: plan.Contid, ForParent: true, Name: plan.Name})
	if err != nil {
		return c.fail(stdio, fmt.Errorf("container %s (pid %d): contid %s: %w", s.ID, plan.PID, plan.Contid, err))
	}
	fmt.Fprintf(stdio.Err, "contid: container %s registered as %s\n", plan.Name, chainText(t.Chain))
	if plan.Capcontid != "" {
		// Revoking ("0") is always allowed; anything else is a request
		// for a privilege, checked here before the daemon (which would
		// grant it: the hook runs as the runtime, usually root).
		if plan.Capcontid != "0" && !oci.CapAllowed(c.CapcontidAllow, s) {
			return c.fail(stdio, fmt.Errorf("container %s asks for capcontid (%s=%s), which this hook grants only to "+
				"the containers --capcontid-allow names", plan.Name, oci.CapAnnotation, strconv.Quote(plan.Capcontid)))
		}
		if _, err := c.client().SetCapcontid(cx, api.CapRequest{PID: int32(plan.PID), Value: plan.Capcontid, ForParent: true}); err != nil {
			return c.fail(stdio, fmt.Errorf("container %s: capcontid %s: %w", s.ID, plan.Capcontid, err))
		}
	}
	return nil
}

// fail stops the container start unless unregistered starts are allowed.
func (c *ociHookCmd) fail(stdio Stdio, err error) error {
	if c.AllowUnregistered {
		fmt.Fprintf(stdio.Err, "contid: oci-hook: %v (starting unregistered: --allow-unregistered)\n", err)
		return nil
	}
	return fmt.Errorf("oci-hook: %w; the container must not start unregistered "+
		"(use --allow-unregistered to permit it)", err)
}

// hookArgs is the hook's command line with the flags given to
// --print-config that the hook needs when the runtime runs it: runtimes
// run hooks with the hook's own environment only, so CONTID_SOCKET would
// not reach it.
func (c *ociHookCmd) hookArgs() []string {
	args := []string{"contid", "oci-hook"}
	if c.Socket != defaultSocket {
		args = append(args, "--socket", c.Socket)
	}
	if c.AllowUnregistered {
		args = append(args, "--allow-unregistered")
	}
	for _, g := range c.CapcontidAllow {
		args = append(args, "--capcontid-allow", g)
	}
	return args
}

// hookConfig returns the stanza a runtime needs.
func hookConfig(kind, path string, args []string) any {
	hook := map[string]any{"path": path, "args": args}
	if kind == "hooks.d" {
		return map[string]any{
			"version": "1.0.0",
			"hook":    hook,
			"when":    map[string]any{"always": true},
			"stages":  []string{"createRuntime"},
		}
	}
	return map[string]any{"hooks": map[string]any{"createRuntime": []any{hook}}}
}
