package discovery

import (
	"cmp"
	"encoding/json"
	"slices"
)

// Snapshot is an immutable view of the pool: members sorted by name, and a
// version that grows by one with each snapshot a Source publishes. Versions
// are per Source and mean nothing across sources or processes. The zero
// Snapshot is the empty pool at version 0, "nothing known yet".
//
// A Snapshot is a small value; copy it freely. The slices its methods
// return are shared with every holder and must not be modified.
type Snapshot struct {
	version  uint64
	members  []Member // sorted by Name, unique names
	gateways []Member // the members with RoleGateway, sorted by Name
}

// NewSnapshot builds a snapshot from members in any order. Weights of zero
// become DefaultWeight and module lists are sorted; if two members share a
// name, the later one in the slice wins. members is not kept.
func NewSnapshot(version uint64, members []Member) Snapshot {
	ms := make([]Member, 0, len(members))
	for _, m := range members {
		ms = append(ms, m.normalized())
	}
	// Stable, so that among equal names the later one stays last.
	slices.SortStableFunc(ms, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	out := ms[:0]
	for i, m := range ms {
		if i+1 < len(ms) && ms[i+1].Name == m.Name {
			continue
		}
		out = append(out, m)
	}
	s := Snapshot{version: version, members: slices.Clip(out)}
	for _, m := range s.members {
		if m.Role == RoleGateway {
			s.gateways = append(s.gateways, m)
		}
	}
	return s
}

// Version is the snapshot's sequence number in its Source, from 1.
func (s Snapshot) Version() uint64 { return s.version }

// Len is the number of members.
func (s Snapshot) Len() int { return len(s.members) }

// Members returns every member, sorted by name. The slice must not be modified.
func (s Snapshot) Members() []Member { return s.members }

// Gateways returns the members with RoleGateway, sorted by name, whatever
// their State. The slice must not be modified.
func (s Snapshot) Gateways() []Member { return s.gateways }

// Lookup returns the member called name.
func (s Snapshot) Lookup(name string) (Member, bool) {
	i, ok := slices.BinarySearchFunc(s.members, name, func(m Member, n string) int { return cmp.Compare(m.Name, n) })
	if !ok {
		return Member{}, false
	}
	return s.members[i], true
}

// SameMembers reports whether s and o hold equal members, whatever their
// versions.
func (s Snapshot) SameMembers(o Snapshot) bool {
	return slices.EqualFunc(s.members, o.members, Member.Equal)
}

// MarshalJSON encodes {"version": N, "members": [...]} for the admin API.
func (s Snapshot) MarshalJSON() ([]byte, error) {
	members := s.members
	if members == nil {
		members = []Member{}
	}
	return json.Marshal(struct {
		Version uint64   `json:"version"`
		Members []Member `json:"members"`
	}{s.version, members})
}
