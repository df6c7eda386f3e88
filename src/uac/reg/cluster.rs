//! Active-active registration (`reg_cluster`): which DMQ node owns which account.
//!
//! Every account (l_uuid) is owned by exactly one active node, chosen by rendezvous
//! (highest random weight) hashing: each node scores the l_uuid and the highest score
//! wins. All nodes that see the same set of active nodes agree on every owner without
//! talking, and when a node leaves only its own accounts move (each to the node that
//! scored second); when one joins, it takes only the accounts it now scores highest on
//! (Thaler and Ravishankar, "Using name-based mappings to increase hit rates", 1998).
//!
//! Views that differ only by nodes a viewer has not yet seen leave never gives two
//! owners: a node that dropped a dead peer and one that did not yet both rank the
//! survivors the same way, so the account is at worst unowned for a moment. A node
//! that joins is the one case where two views can both claim an account (see the
//! README and issue 12's design notes).
//!
//! The weight is a fixed function (FNV-1a 64 followed by the SplitMix64 finaliser),
//! not `std`'s hasher, whose output may change between Rust releases: nodes built
//! with different compilers must agree.

/// The nodes this node sees as active, and which of them it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// Node keys (`host:port` of the DMQ server address), sorted, no duplicates.
    nodes: Vec<Vec<u8>>,
    /// Index of the local node in `nodes`.
    local: usize,
}

impl Membership {
    /// The view with `local` and the other active nodes `others` (the local key in
    /// `others`, or duplicates, are ignored).
    pub fn new(local: &[u8], others: impl IntoIterator<Item = Vec<u8>>) -> Membership {
        let mut nodes: Vec<Vec<u8>> = others.into_iter().collect();
        nodes.push(local.to_vec());
        nodes.sort();
        nodes.dedup();
        let local = nodes.iter().position(|n| n == local).unwrap_or(0);
        Membership { nodes, local }
    }

    /// The active nodes, sorted.
    pub fn nodes(&self) -> &[Vec<u8>] {
        &self.nodes
    }

    /// The key of this node.
    pub fn local(&self) -> &[u8] {
        &self.nodes[self.local]
    }

    /// The node that owns `l_uuid`.
    pub fn owner(&self, l_uuid: &[u8]) -> &[u8] {
        &self.nodes[owner_index(l_uuid, &self.nodes).unwrap_or(self.local)]
    }

    /// Whether this node owns `l_uuid`.
    pub fn owns(&self, l_uuid: &[u8]) -> bool {
        owner_index(l_uuid, &self.nodes) == Some(self.local)
    }
}

/// The least seconds between two shares of all own bindings to nodes that joined; a
/// view that flaps (a one-way network fault) would otherwise send the whole table
/// every few seconds.
pub const RESHARE_GAP: i64 = 30;

/// When to share all own bindings with nodes that joined: at once for a join after a
/// quiet [`RESHARE_GAP`], else when the gap ends (a join is never dropped).
#[derive(Debug, Default)]
pub struct ReshareGate {
    last: std::cell::Cell<Option<i64>>,
    pending: std::cell::Cell<bool>,
}

impl ReshareGate {
    /// Whether to share now; `joined`: a node joined at this tick.
    pub fn due(&self, joined: bool, now: i64) -> bool {
        if joined {
            self.pending.set(true);
        }
        let free = self.last.get().is_none_or(|t| now - t >= RESHARE_GAP);
        if self.pending.get() && free {
            self.pending.set(false);
            self.last.set(Some(now));
            return true;
        }
        false
    }
}

/// FNV-1a 64 over `bytes`, continuing from `h`.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's finaliser: spreads FNV's weak low bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rendezvous weight of `node` for `l_uuid`. The length prefix keeps
/// ("ab","c") and ("a","bc") apart.
pub fn weight(node: &[u8], l_uuid: &[u8]) -> u64 {
    let h = fnv1a(0xcbf2_9ce4_8422_2325, &(node.len() as u64).to_le_bytes());
    let h = fnv1a(h, node);
    mix(fnv1a(h, l_uuid))
}

/// Index in `nodes` of the owner of `l_uuid`: the highest weight, ties (never seen
/// in practice) to the smaller key. `None` for no nodes.
pub fn owner_index(l_uuid: &[u8], nodes: &[Vec<u8>]) -> Option<usize> {
    nodes
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| {
            weight(a, l_uuid)
                .cmp(&weight(b, l_uuid))
                .then_with(|| b.cmp(a))
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: &[&str]) -> Vec<Vec<u8>> {
        n.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn owner<'a>(u: &str, nodes: &'a [Vec<u8>]) -> &'a [u8] {
        &nodes[owner_index(u.as_bytes(), nodes).unwrap()]
    }

    const ABC: [&str; 3] = ["127.0.0.1:5091", "127.0.0.1:5092", "127.0.0.1:5093"];

    #[test]
    fn weight_is_a_fixed_function() {
        // Pinned values: a change here splits a cluster of mixed builds.
        assert_eq!(
            weight(b"127.0.0.1:5091", b"trunk1"),
            weight(b"127.0.0.1:5091", b"trunk1")
        );
        assert_ne!(weight(b"ab", b"c"), weight(b"a", b"bc"));
        assert_eq!(fnv1a(0xcbf2_9ce4_8422_2325, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(mix(0), 0);
        assert_eq!(mix(1), 0x5692_161d_100b_05e5);
    }

    #[test]
    fn every_account_has_exactly_one_owner_in_any_order() {
        let n = keys(&ABC);
        let mut rev = n.clone();
        rev.reverse();
        for i in 0..1000 {
            let u = format!("acc{i}");
            let views: Vec<Membership> = n
                .iter()
                .map(|l| Membership::new(l, rev.iter().cloned()))
                .collect();
            let owners = views.iter().filter(|v| v.owns(u.as_bytes())).count();
            assert_eq!(owners, 1, "{u}");
            assert_eq!(owner(&u, &n), owner(&u, &rev), "order must not matter");
        }
    }

    #[test]
    fn shares_are_balanced() {
        let n = keys(&ABC);
        let mut count = [0usize; 3];
        for i in 0..30_000 {
            count[owner_index(format!("acc{i}").as_bytes(), &n).unwrap()] += 1;
        }
        for c in count {
            assert!((9_000..11_000).contains(&c), "{count:?}");
        }
    }

    #[test]
    fn only_the_leaving_nodes_share_moves() {
        let all = keys(&ABC);
        let without_c = keys(&ABC[..2]);
        let mut moved = 0;
        for i in 0..10_000 {
            let u = format!("acc{i}");
            let before = owner(&u, &all);
            let after = owner(&u, &without_c);
            if before == ABC[2].as_bytes() {
                moved += 1;
            } else {
                assert_eq!(before, after, "{u} moved though its owner stayed");
            }
        }
        assert!(moved > 2_500, "{moved}");
    }

    #[test]
    fn a_joining_node_takes_only_from_others_what_it_now_wins() {
        let before = keys(&ABC[..2]);
        let after = keys(&ABC);
        for i in 0..10_000 {
            let u = format!("acc{i}");
            let o = owner(&u, &after);
            if o != ABC[2].as_bytes() {
                assert_eq!(o, owner(&u, &before), "{u}");
            }
        }
    }

    #[test]
    fn stale_views_after_a_loss_never_both_claim() {
        // A saw C die, B not yet: no account is claimed by both A and B.
        let a = Membership::new(ABC[0].as_bytes(), keys(&ABC[1..2]));
        let b = Membership::new(ABC[1].as_bytes(), keys(&ABC));
        for i in 0..10_000 {
            let u = format!("acc{i}");
            assert!(!(a.owns(u.as_bytes()) && b.owns(u.as_bytes())), "{u}");
        }
    }

    #[test]
    fn alone_owns_everything_and_local_is_kept() {
        let m = Membership::new(b"n1:5060", Vec::new());
        assert!(m.owns(b"x"));
        assert_eq!(m.local(), b"n1:5060");
        let m = Membership::new(b"b:1", keys(&["a:1", "b:1", "c:1", "a:1"]));
        assert_eq!(m.nodes().len(), 3);
        assert_eq!(m.local(), b"b:1");
    }

    #[test]
    fn reshare_at_most_once_per_gap_and_never_dropped() {
        let g = ReshareGate::default();
        assert!(!g.due(false, 100), "nothing joined");
        assert!(g.due(true, 100), "the first join: at once");
        assert!(!g.due(true, 105), "a flap inside the gap waits");
        assert!(!g.due(false, 129));
        assert!(g.due(false, 130), "served when the gap ends");
        assert!(!g.due(false, 200), "once");
        assert!(g.due(true, 200), "a join after a quiet gap: at once");
    }
}
