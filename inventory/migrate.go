package inventory

import (
	"crypto/rand"
	"fmt"
	"slices"

	"github.com/stagehand-dev/stagehand/inventory/storage"
)

// Markers in colMeta of the migrations a store has had.
const (
	metaSiteIPIndex = "siteIPIndex" // idxSiteIP built
	metaOneName     = "oneName"     // site names folded into Host.Name
)

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
	if err := s.migrateOneName(); err != nil {
		return err
	}
	return s.eng.View(func(tx storage.Tx) error {
		s.secret = slices.Clone(tx.Get(colMeta, metaTokenSecret))
		return nil
	})
}

// migrateOneName folds the site names of hosts stored before Host.Name
// became the one name into it: a site name fills an empty Name when no
// other host holds it, and is dropped otherwise, so the host renders as
// the name `host list` shows. Every host whose rendered name changes is
// logged.
func (s *Store) migrateOneName() error {
	var changed []string
	err := s.eng.Update(func(tx storage.Tx) error {
		changed = nil
		if tx.Get(colMeta, metaOneName) != nil {
			return nil
		}
		var hosts []Host
		if err := scan(tx, colHosts, "", "host", func(h Host) {
			if h.Site.Name != "" {
				hosts = append(hosts, h)
			}
		}); err != nil {
			return err
		}
		for _, h := range hosts {
			sn := h.Site.Name
			h.Site.Name = ""
			switch {
			case h.Name == "" && idxNames.Owner(tx, sn) == "":
				h.Name = sn
				idxNames.Claim(tx, sn, h.MAC)
			case h.Name != sn:
				changed = append(changed, fmt.Sprintf("%s: site name %q dropped, renders as %q", h.MAC, sn, h.Name))
			}
			if err := put(tx, colHosts, h.MAC, h); err != nil {
				return err
			}
		}
		tx.Put(colMeta, metaOneName, []byte("1"))
		return nil
	})
	if len(changed) > 0 {
		s.log.Warn().Strs("hosts", changed).Msg("hosts had a site name other than their name; their name is the one they render as now")
	}
	return err
}
