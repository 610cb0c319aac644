package storage

// Unique is a unique secondary index kept in its own collection: an
// indexed value (a host name, a reserved address) maps to the primary
// key of the record that holds it. The domain claims and releases
// entries in the same transaction as the record, so record and index
// never disagree after a commit.
type Unique Collection

// Owner returns the primary key holding value, or "".
func (u Unique) Owner(tx Tx, value string) string {
	return string(tx.Get(Collection(u), value))
}

// Taken reports the key other than key that holds value, or "".
func (u Unique) Taken(tx Tx, value, key string) string {
	if o := u.Owner(tx, value); o != "" && o != key {
		return o
	}
	return ""
}

// Claim makes key the holder of value.
func (u Unique) Claim(tx Tx, value, key string) {
	tx.Put(Collection(u), value, []byte(key))
}

// Release removes value from the index if key holds it: an entry another
// record has taken over in the same transaction (a swap) is left alone.
func (u Unique) Release(tx Tx, value, key string) {
	if u.Owner(tx, value) == key {
		tx.Delete(Collection(u), value)
	}
}

// Move releases the values key no longer holds (in old, not in new) and
// claims the ones in new.
func (u Unique) Move(tx Tx, key string, old, new []string) {
	for _, v := range old {
		if v != "" && !contains(new, v) {
			u.Release(tx, v, key)
		}
	}
	for _, v := range new {
		if v != "" {
			u.Claim(tx, v, key)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
