// Package affinity maps affinity keys (session ids, or connection keys in
// pass-through mode) to gateways so that every graftlb proxy, without sharing
// any state, picks the same gateway for the same key; see DESIGN.md §4.
//
// # Maglev hashing
//
// A Table is a Maglev lookup table (Eisenbud et al., "Maglev: A Fast and
// Reliable Software Network Load Balancer", NSDI 2016, §3.4). Members are
// sorted by name, so the input order does not matter. Each member derives a
// permutation of the M slots from two XXH64 hashes of its name:
// offset = h1 mod M, skip = h2 mod (M−1) + 1, permutation j ↦ (offset + j·skip)
// mod M, which visits every slot because M is prime. Then, round after round,
// each member claims the next slot of its permutation that is still free,
// until all M slots are taken. With weights, a member of weight w takes w
// turns per round. A key's owner is the member in slot ⌊key·M / 2⁶⁴⌋
// (multiply-shift, Lemire 2019, instead of a division).
//
// The paper's example, M = 7, three members with (offset, skip) B0 = (3, 4),
// B1 = (0, 2), B2 = (3, 1), so permutations B0: 3 0 4 1 5 2 6, B1: 0 2 4 6 1 3 5,
// B2: 3 4 5 6 0 1 2:
//
//	round 1: B0 takes 3; B1 takes 0; B2 finds 3 taken, takes 4
//	round 2: B0 finds 0 and 4 taken, takes 1; B1 takes 2; B2 takes 5
//	round 3: B0 finds 5 and 2 taken, takes 6; the table is full
//	slots 0…6: B1 B0 B1 B0 B2 B2 B0
//
// Rebuilt without B1 the table is B0 B0 B0 B0 B2 B2 B2: B1's slots 0 and 2
// went to B0, as they should, but slot 6 also moved, from B0 to B2. Maglev
// buys its near-perfect balance (member shares differ by at most one slot)
// and O(1) lookups with a little such disruption: with the sizes used here
// (MinTableSize) about 0.2–0.3% of keys move between members that stayed
// when one of 10 members leaves (TestRemoveRebuildDisruption). A ring with
// virtual nodes would move none of them, but needs hundreds of points per
// member to come within a few percent of even, and a binary search per lookup. DESIGN.md §4 makes
// the moves harmless: proxies bind sessions to their holders and resolve
// NOT_OWNER by walking the preference list.
//
// # Preference lists
//
// Owner and Preference extend the single Maglev owner to a full, deterministic
// order of all members for a key: the Maglev owner, then the Maglev owners of
// the key rehashed with seeds 1…FallbackSeeds (skipping repeats), then the
// remaining members in rendezvous order (Thaler and Ravishankar, "Using
// Name-Based Mappings to Increase Hit Rates", IEEE/ACM ToN 1998), ascending
// by H(name hash ‖ key). The seeded part follows the weights; the rendezvous
// tail does not, because weighted rendezvous needs floating-point logarithms
// whose last bit may differ between CPU architectures, and the list must be
// identical on every proxy. A gateway that refuses new sessions (down,
// draining, full, not serving the module) is skipped by the ok callback of
// Owner: its keys go to their next choice and no other key moves
// (TestRemovePreferenceDisruption).
//
// For example, with members gw-a…gw-d and the key of session id
// "graftlb-session!", the list is gw-a gw-b gw-d gw-c (TestGolden): a new
// session goes to gw-a; if gw-a is draining, to gw-b.
//
// # Bounded loads
//
// BoundedOwner walks the same list but skips members whose load has reached
// ceil((1+ε) × mean load after placement), which bounds every member's load
// (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads",
// SODA 2018, arXiv:1608.01350). Loads are each proxy's own counts, so proxies
// no longer agree on owners; see BoundedOwner for the trade-off.
//
// # Keys
//
// HashSession turns a 128-bit session id into the uint64 key the tables take
// (XXH64); HashKey does the same for the bytes that KeySource.Extract takes
// from a pass-through connection: a query parameter, header or cookie of the
// WebSocket upgrade request, or the client's IP address.
//
// Everything here is a pure function of immutable values: Tables are built
// once per membership change and shared by any number of goroutines, and the
// per-key functions take no lock and do not allocate (TestHotPathAllocs).
package affinity
