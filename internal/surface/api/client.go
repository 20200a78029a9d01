package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
)

// Client talks to the daemon's socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client of the daemon listening on socket.
func NewClient(socket string) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	return &Client{socket: socket, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}}
}

// SetContid asks to set a contid; an *Error carries the daemon's refusal.
func (c *Client) SetContid(ctx context.Context, r SetRequest) (Task, error) {
	var t Task
	return t, c.call(ctx, "POST", "/v1/contid", r, &t)
}

// SetCapcontid asks to grant or revoke capcontid.
func (c *Client) SetCapcontid(ctx context.Context, r CapRequest) (Task, error) {
	var t Task
	return t, c.call(ctx, "POST", "/v1/capcontid", r, &t)
}

// Task returns one task.
func (c *Client) Task(ctx context.Context, pid int32) (Task, error) {
	var t Task
	return t, c.call(ctx, "GET", "/v1/tasks/"+strconv.Itoa(int(pid)), nil, &t)
}

// Tasks returns every task the caller may see.
func (c *Client) Tasks(ctx context.Context) ([]Task, error) {
	var t []Task
	return t, c.call(ctx, "GET", "/v1/tasks", nil, &t)
}

// Containers returns every live container the caller may see.
func (c *Client) Containers(ctx context.Context) ([]Container, error) {
	var out []Container
	return out, c.call(ctx, "GET", "/v1/containers", nil, &out)
}

// Status returns the daemon's counters.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.call(ctx, "GET", "/v1/status", nil, &s)
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("api: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://contid"+path, body)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("api: daemon at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("api: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(b, &e) != nil || e.Errno == "" {
			return fmt.Errorf("api: daemon answered %s", resp.Status)
		}
		return &e
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("api: bad answer: %w", err)
	}
	return nil
}
