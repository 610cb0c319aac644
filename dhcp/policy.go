package dhcp

// Policy decides whether a client gets an answer at all. It gates the
// whole reply: a refused client gets nothing, not even an address in full
// mode (the inventory's "ignore" for unknown hosts on a shared network).
// Admit is called once per packet from several goroutines at once, so it
// must be safe for concurrent use and cheap (no I/O); it must not keep or
// modify c.
type Policy interface {
	Admit(c *Client) bool
}

// PolicyFunc adapts a function to Policy.
type PolicyFunc func(*Client) bool

// Admit calls f(c).
func (f PolicyFunc) Admit(c *Client) bool { return f(c) }
