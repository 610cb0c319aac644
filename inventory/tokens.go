package inventory

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// Install tokens. The rule: an attempt keeps its token for as long as it
// is live. A repeated stage-2 script (iPXE retried, the VM reset) or a
// second NoCloud seed of the same attempt hands out the same token, so
// the installer holding the first one still gets its user-data and its
// callback is still heard. The token ends when the attempt does
// (installed, failed: the callbacks still answer idempotently) or when an
// operator reprovisions the host (410 Gone from then on); the next
// attempt gets a new one.
//
// Only the token's SHA-256 is stored, never the token: the token is
// derived as HMAC-SHA256(secret, mac|attempt|nonce), with a random
// secret per inventory (colMeta) and a random nonce per attempt
// (Host.TokenNonce), so the same live attempt derives the same token
// again while a deleted and re-created host, or another inventory,
// never repeats one. Neither the secret nor the nonce leaves the store.

// tokenBytes of the HMAC per install token: 192 bits, URL-safe.
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

// metaTokenSecret is the key of the token secret in colMeta.
const metaTokenSecret = "tokenSecret"

// tokenRecord is the value under a token's hash in colTokens. Stores
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

// randomHex is n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails on Linux (Go 1.24+ crashes rather than return an error)
	return hex.EncodeToString(b)
}

// deriveToken is the token of h's current attempt under its nonce.
func (s *Store) deriveToken(h *Host) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(h.MAC + "|" + strconv.Itoa(h.Attempt) + "|" + h.TokenNonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:tokenBytes])
}

// issueToken gives h's current attempt a token under nonce and returns
// it. The caller has retired the previous one and saves h.
func (s *Store) issueToken(tx storage.Tx, h *Host, nonce string) (string, error) {
	h.TokenNonce = nonce
	token := s.deriveToken(h)
	h.TokenHash = hashToken(token)
	return token, put(tx, colTokens, h.TokenHash, tokenRecord{MAC: h.MAC, Attempt: h.Attempt})
}

// liveToken returns the token of h's live attempt when it can be derived
// again: an attempt begun before tokens were derived has no nonce, and
// is given a new token instead.
func (s *Store) liveToken(h *Host) (string, bool) {
	if !h.State.Live() || h.TokenHash == "" || h.TokenNonce == "" {
		return "", false
	}
	t := s.deriveToken(h)
	return t, hashToken(t) == h.TokenHash
}

// retireToken marks h's live token dead (it keeps answering 410) and
// forgets the host's oldest retired tokens beyond MaxRetiredTokens. It
// clears h's token; the caller saves h.
func retireToken(tx storage.Tx, h *Host) error {
	if h.TokenHash == "" {
		return nil
	}
	hash := h.TokenHash
	h.TokenHash, h.TokenNonce = "", ""
	if err := put(tx, colTokens, hash, tokenRecord{MAC: h.MAC, Attempt: h.Attempt, Dead: true}); err != nil {
		return err
	}
	appendSeq(tx, colRetired, h.MAC, []byte(hash), 0)
	forgetRetired(tx, h.MAC, MaxRetiredTokens)
	return nil
}

// forgetRetired keeps the newest keep retired tokens of mac (keep 0: none).
func forgetRetired(tx storage.Tx, mac string, keep int) {
	for _, hash := range deleteSeq(tx, colRetired, mac, keep) {
		// Only a dead record of this host: never a live token, whatever
		// an index entry says.
		if rec, err := decodeTokenRecord(tx.Get(colTokens, string(hash))); err == nil && rec.Dead && rec.MAC == mac {
			tx.Delete(colTokens, string(hash))
		}
	}
}

// deleteTokens removes every token of h, live and retired: a deleted
// host's tokens answer 404, as if never issued.
func deleteTokens(tx storage.Tx, h *Host) {
	if h.TokenHash != "" {
		tx.Delete(colTokens, h.TokenHash)
	}
	forgetRetired(tx, h.MAC, 0)
}

// byToken finds the host whose live attempt holds token. A token never
// issued, forgotten, or of a deleted host is ErrNotFound; a superseded
// one (killed by reprovision) is ErrGone, returned with its host so that
// the caller can put the refusal on the host's record. The token of an attempt that
// ended (installed, failed) is still its host's live token: the callers
// decide what it may still do.
func byToken(tx storage.Tx, token string) (Host, error) {
	if token == "" || len(token) > maxTokenLen {
		return Host{}, fmt.Errorf("%w: token", ErrNotFound)
	}
	hash := hashToken(token)
	raw := tx.Get(colTokens, hash)
	if raw == nil {
		return Host{}, fmt.Errorf("%w: token", ErrNotFound)
	}
	rec, err := decodeTokenRecord(raw)
	if err != nil {
		return Host{}, err
	}
	h, err := get[Host](tx, colHosts, rec.MAC, "host")
	if isErr(err, ErrNotFound) {
		return Host{}, fmt.Errorf("%w: token", ErrNotFound)
	}
	if err != nil {
		return Host{}, err
	}
	if rec.Dead || h.TokenHash != hash {
		return h, fmt.Errorf("%w: attempt %d of %s is over", ErrGone, rec.Attempt, h.Ident())
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
