package inventory

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"unicode"

	bolt "go.etcd.io/bbolt"
)

// tokenBytes of randomness per install token: 192 bits, URL-safe.
const tokenBytes = 24

// maxTokenLen bounds what a client may present before we hash it; real
// tokens are 32 characters.
const maxTokenLen = 128

// MaxFailMessage bounds what an installer may tell us on failure.
const MaxFailMessage = 1024

// MaxRetiredTokens is how many superseded tokens per host are remembered,
// so that an installer still holding one hears 410 Gone ("attempt N of
// HOST is over") rather than 404. Older ones are forgotten, oldest first,
// and then answer 404: a host reset in a loop must not grow the file.
const MaxRetiredTokens = 8

// tokenRecord is the value under a token's hash in bucketTokens. Stores
// written before retired tokens were kept hold the bare MAC instead;
// decodeTokenRecord reads both.
type tokenRecord struct {
	MAC     string `json:"mac"`
	Attempt int    `json:"attempt"`
	Dead    bool   `json:"dead,omitempty"`
}

func decodeTokenRecord(v []byte) (tokenRecord, error) {
	if len(v) > 0 && v[0] != '{' {
		return tokenRecord{MAC: string(v)}, nil
	}
	var r tokenRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("decode token record: %w", err)
	}
	return r, nil
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func newToken() string {
	b := make([]byte, tokenBytes)
	rand.Read(b) // never fails on Linux (Go 1.24+ crashes rather than return an error)
	return base64.RawURLEncoding.EncodeToString(b)
}

// issueToken makes token the live one of h's current attempt. The caller
// has retired the previous one.
func issueToken(tx *bolt.Tx, h *Host, token string) error {
	h.TokenHash = hashToken(token)
	return put(tx.Bucket(bucketTokens), h.TokenHash, tokenRecord{MAC: h.MAC, Attempt: h.Attempt})
}

func retiredPrefix(mac string) []byte { return append([]byte(mac), 0) }

// retireToken marks h's live token dead (it keeps answering 410) and
// forgets the host's oldest retired tokens beyond MaxRetiredTokens. It
// clears h.TokenHash; the caller saves h.
func retireToken(tx *bolt.Tx, h *Host) error {
	if h.TokenHash == "" {
		return nil
	}
	hash := h.TokenHash
	h.TokenHash = ""
	if err := put(tx.Bucket(bucketTokens), hash, tokenRecord{MAC: h.MAC, Attempt: h.Attempt, Dead: true}); err != nil {
		return err
	}
	idx := tx.Bucket(bucketRetired)
	seq, err := idx.NextSequence()
	if err != nil {
		return err
	}
	if err := idx.Put(binary.BigEndian.AppendUint64(retiredPrefix(h.MAC), seq), []byte(hash)); err != nil {
		return err
	}
	return forgetRetired(tx, h.MAC, MaxRetiredTokens)
}

// forgetRetired keeps the newest keep retired tokens of mac (keep 0: none).
func forgetRetired(tx *bolt.Tx, mac string, keep int) error {
	idx := tx.Bucket(bucketRetired)
	tokens := tx.Bucket(bucketTokens)
	prefix := retiredPrefix(mac)
	c := idx.Cursor()
	n := 0
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	for k, v := c.Seek(prefix); n > keep && k != nil && bytes.HasPrefix(k, prefix); k, v = c.Seek(prefix) {
		// Only a dead record of this host: never a live token, whatever
		// an index entry says.
		if rec, err := decodeTokenRecord(tokens.Get(v)); err == nil && rec.Dead && rec.MAC == mac {
			if err := tokens.Delete(v); err != nil {
				return err
			}
		}
		if err := c.Delete(); err != nil {
			return err
		}
		n--
	}
	return nil
}

// deleteTokens removes every token of h, live and retired: a deleted
// host's tokens answer 404, as if never issued.
func deleteTokens(tx *bolt.Tx, h *Host) error {
	if h.TokenHash != "" {
		if err := tx.Bucket(bucketTokens).Delete([]byte(h.TokenHash)); err != nil {
			return err
		}
	}
	return forgetRetired(tx, h.MAC, 0)
}

// byToken finds the host whose live attempt holds token. A token never
// issued, forgotten, or of a deleted host is ErrNotFound; a superseded
// one (rotated by a repeated install script, or killed by reprovision)
// is ErrGone. The token of an attempt that ended (installed, failed) is
// still its host's live token: the callers decide what it may still do.
func byToken(tx *bolt.Tx, token string) (Host, error) {
	if token == "" || len(token) > maxTokenLen {
		return Host{}, fmt.Errorf("%w: token", ErrNotFound)
	}
	hash := hashToken(token)
	raw := tx.Bucket(bucketTokens).Get([]byte(hash))
	if raw == nil {
		return Host{}, fmt.Errorf("%w: token", ErrNotFound)
	}
	rec, err := decodeTokenRecord(raw)
	if err != nil {
		return Host{}, err
	}
	h, err := get[Host](tx.Bucket(bucketHosts), rec.MAC, "host")
	if isErr(err, ErrNotFound) {
		return Host{}, fmt.Errorf("%w: token", ErrNotFound)
	}
	if err != nil {
		return Host{}, err
	}
	if rec.Dead || h.TokenHash != hash {
		return Host{}, fmt.Errorf("%w: attempt %d of %s is over", ErrGone, rec.Attempt, h.Ident())
	}
	return h, nil
}

// Binding says who may fetch an attempt's user-data besides the token
// holder's knowledge of the token.
type Binding bool

const (
	// AnyIP serves user-data to whoever presents the live token.
	AnyIP Binding = false
	// BindToScriptIP serves it only to the address that fetched the
	// attempt's install script. In proxy and full DHCP mode the
	// installer's kernel is given the same address iPXE had, so a token
	// leaked off the wire is useless from anywhere else.
	BindToScriptIP Binding = true
)

// sameIP compares two textual addresses, treating an IPv4-mapped IPv6
// address as its IPv4 form (a dual-stack listener reports it that way).
func sameIP(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	if err1 != nil || err2 != nil {
		return false
	}
	return x.Unmap() == y.Unmap()
}

// cleanFailMessage bounds an installer's failure report and makes it safe
// to print: valid UTF-8, no control characters other than newline and
// tab (an ANSI escape sent to the callback must not reach an operator's
// terminal through `stagehand host events`).
func cleanFailMessage(msg string) string {
	if len(msg) > MaxFailMessage {
		msg = msg[:MaxFailMessage]
	}
	msg = strings.ToValidUTF8(msg, "?")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return '?'
		}
		return r
	}, msg)
}
