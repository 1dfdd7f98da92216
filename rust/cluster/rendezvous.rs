//! Rendezvous (highest-random-weight) assignment of shards to live nodes: every node computes
//! the same owner for each shard from the same member list, and a node joining or leaving
//! moves only the shards it wins or held (docs/cluster.md#ownership).

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The weight of `node` for `shard`: the node with the highest weight owns the shard.
fn weight(node: &str, shard: u32) -> u64 {
    xxh3_64_with_seed(node.as_bytes(), u64::from(shard))
}

/// The node that should own `shard` among `nodes` (ids), or None when there is none. Ties
/// (practically impossible) go to the smaller id, so every node agrees.
pub fn owner<'a>(shard: u32, nodes: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    nodes
        .into_iter()
        .max_by(|a, b| weight(a, shard).cmp(&weight(b, shard)).then(b.cmp(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assign(nodes: &[&str], shards: u32) -> Vec<String> {
        (0..shards)
            .map(|s| owner(s, nodes.iter().copied()).unwrap().to_string())
            .collect()
    }

    #[test]
    fn every_shard_has_one_owner_and_order_does_not_matter() {
        let a = assign(&["n1", "n2", "n3"], 12);
        let b = assign(&["n3", "n1", "n2"], 12);
        assert_eq!(a, b);
        assert!(owner(0, std::iter::empty()).is_none());
    }

    #[test]
    fn spread_is_even_enough() {
        let nodes = ["n1", "n2", "n3"];
        let a = assign(&nodes, 1200);
        for n in nodes {
            let held = a.iter().filter(|o| *o == n).count();
            assert!((300..500).contains(&held), "{n} holds {held} of 1200");
        }
    }

    #[test]
    fn a_joining_node_takes_only_shards_it_wins_and_leaving_gives_them_back() {
        let before = assign(&["n1", "n2", "n3"], 240);
        let after = assign(&["n1", "n2", "n3", "n4"], 240);
        for (b, a) in before.iter().zip(&after) {
            assert!(
                a == b || a == "n4",
                "a shard moved between old nodes: {b} -> {a}"
            );
        }
        assert!(after.iter().any(|o| o == "n4"));
        // n4 leaves: the assignment is the old one again.
        assert_eq!(assign(&["n1", "n2", "n3"], 240), before);
    }

    #[test]
    fn a_dead_nodes_shards_spread_over_the_others() {
        let before = assign(&["n1", "n2", "n3"], 240);
        let after = assign(&["n1", "n3"], 240);
        for (b, a) in before.iter().zip(&after) {
            if b != "n2" {
                assert_eq!(a, b, "a live node's shard moved");
            }
        }
    }
}
