package inventory

import (
	"crypto/rand"
	"fmt"
	"slices"

	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// metaSiteIPIndex marks a store whose idxSiteIP has been built.
const metaSiteIPIndex = "siteIPIndex"

// init readies an opened store: the token secret, created on first use,
// and the indexes a store written by an older version lacks.
func (s *Store) init() error {
	var dups []string
	err := s.eng.Update(func(tx storage.Tx) error {
		dups = nil
		if tx.Get(colMeta, metaTokenSecret) == nil {
			b := make([]byte, 32)
			rand.Read(b)
			tx.Put(colMeta, metaTokenSecret, b)
		}
		if tx.Get(colMeta, metaSiteIPIndex) != nil {
			return nil
		}
		// Before static site addresses were unique, two hosts could share
		// one: the first (by MAC) keeps it in the index, and the operator
		// hears of the others when they are next edited.
		err := scan(tx, colHosts, "", "host", func(h Host) {
			ip := siteIP(&h)
			if ip == "" {
				return
			}
			if o := idxSiteIP.Owner(tx, ip); o != "" && o != h.MAC {
				dups = append(dups, fmt.Sprintf("%s of %s (kept by %s)", ip, h.MAC, o))
				return
			}
			idxSiteIP.Claim(tx, ip, h.MAC)
		})
		if err != nil {
			return err
		}
		tx.Put(colMeta, metaSiteIPIndex, []byte("1"))
		return nil
	})
	if err != nil {
		return err
	}
	if len(dups) > 0 {
		s.log.Warn().Strs("addresses", dups).Msg("hosts share a static site address; edit them so each has its own")
	}
	return s.eng.View(func(tx storage.Tx) error {
		s.secret = slices.Clone(tx.Get(colMeta, metaTokenSecret))
		return nil
	})
}
