//! Weighted rendezvous hashing: which live node should own each lease.

/// The node that should own `key` among `nodes` (`(id, weight)` pairs): the pinned node when
/// `pin` names one of `nodes`, else the node with the highest weighted rendezvous score
/// (`-weight / ln(u)`, `u` in (0, 1) from a stable 64-bit hash of node and key; ties go to the
/// smaller id). Nodes of weight 0 own nothing unless pinned. `None` when no node can own it.
///
/// Pure and stable across processes, versions and platforms: every node computes the same
/// owner from the same list. Each node gets keys in proportion to its weight; when a node
/// joins, only keys that now go to it move (about `weight / total weight` of them), and when
/// one leaves, only its keys move.
pub fn owner<'a>(key: &str, nodes: &'a [(String, u32)], pin: Option<&str>) -> Option<&'a str> {
    if let Some(pin) = pin
        && let Some((id, _)) = nodes.iter().find(|(id, _)| id == pin)
    {
        return Some(id);
    }
    nodes
        .iter()
        .filter(|(_, weight)| *weight > 0)
        .map(|(id, weight)| (score(id, key, *weight), id))
        .max_by(|(sa, ia), (sb, ib)| sa.total_cmp(sb).then_with(|| ib.cmp(ia)))
        .map(|(_, id)| id.as_str())
}

/// `-weight / ln(u)`: with `u` uniform in (0, 1), the node with the largest score wins with
/// probability proportional to its weight.
fn score(node: &str, key: &str, weight: u32) -> f64 {
    let h = hash(node, key);
    // The top 53 bits, centred in their interval, so that u is never 0 or 1.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(weight) / u.ln()
}

/// FNV-1a over node, a separator and key, then MurmurHash3's 64-bit finalizer (FNV alone
/// mixes the last bytes poorly). Fixed here rather than `std::hash` so that every node, of
/// any build, computes the same value.
fn hash(node: &str, key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    // 0xff never occurs in UTF-8, so ("ab", "c") and ("a", "bc") hash apart.
    for &b in node.as_bytes().iter().chain(&[0xff]).chain(key.as_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn nodes(list: &[(&str, u32)]) -> Vec<(String, u32)> {
        list.iter().map(|(id, w)| (id.to_string(), *w)).collect()
    }

    fn keys() -> Vec<String> {
        (0..10_000).map(|i| format!("camera.cam-{i}")).collect()
    }

    fn assign(keys: &[String], nodes: &[(String, u32)]) -> BTreeMap<String, String> {
        keys.iter()
            .map(|k| (k.clone(), owner(k, nodes, None).unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn spreads_keys_in_proportion_to_weight() {
        let nodes = nodes(&[("a", 100), ("b", 100), ("c", 200)]);
        let keys = keys();
        let owners = assign(&keys, &nodes);
        let total: u32 = nodes.iter().map(|(_, w)| w).sum();
        for (id, weight) in &nodes {
            let got = owners.values().filter(|o| *o == id).count() as f64;
            let want = keys.len() as f64 * f64::from(*weight) / f64::from(total);
            assert!(
                (got - want).abs() <= 0.05 * want,
                "node {id}: {got} keys, proportional share {want}"
            );
        }
    }

    #[test]
    fn a_joining_node_takes_only_its_share() {
        let before = nodes(&[("a", 100), ("b", 100), ("c", 200)]);
        let mut after = before.clone();
        after.push(("d".into(), 100));
        let keys = keys();
        let (old, new) = (assign(&keys, &before), assign(&keys, &after));
        let moved: Vec<&String> = keys.iter().filter(|k| old[*k] != new[*k]).collect();
        for k in &moved {
            assert_eq!(new[*k], "d", "{k} moved from {} to {}", old[*k], new[*k]);
        }
        // d's share: 100 of 500.
        let want = keys.len() as f64 * 100.0 / 500.0;
        let got = moved.len() as f64;
        assert!(
            (got - want).abs() <= 0.05 * want,
            "{got} keys moved, expected about {want}"
        );
    }

    #[test]
    fn a_leaving_node_gives_up_only_its_keys() {
        let before = nodes(&[("a", 100), ("b", 100), ("c", 200), ("d", 100)]);
        let after = nodes(&[("a", 100), ("b", 100), ("d", 100)]);
        let keys = keys();
        let (old, new) = (assign(&keys, &before), assign(&keys, &after));
        let mut moved = 0;
        for k in &keys {
            if old[k] != new[k] {
                assert_eq!(old[k], "c", "{k} moved from {} though c left", old[k]);
                moved += 1;
            }
        }
        assert_eq!(moved, old.values().filter(|o| *o == "c").count());
        assert!(moved > 0);
    }

    #[test]
    fn pin_wins_while_the_pinned_node_is_present() {
        let present = nodes(&[("a", 100), ("b", 100), ("c", 200)]);
        for k in keys().iter().take(200) {
            assert_eq!(owner(k, &present, Some("b")), Some("b"));
        }
        // Gone: the key goes where it would without the pin.
        let without_b = nodes(&[("a", 100), ("c", 200)]);
        for k in keys().iter().take(200) {
            assert_eq!(
                owner(k, &without_b, Some("b")),
                owner(k, &without_b, None),
                "{k}"
            );
        }
    }

    #[test]
    fn no_nodes_no_owner_and_weight_zero_owns_nothing() {
        assert_eq!(owner("camera.x", &[], None), None);
        let only_zero = nodes(&[("a", 0)]);
        assert_eq!(owner("camera.x", &only_zero, None), None);
        assert_eq!(owner("camera.x", &only_zero, Some("a")), Some("a"));
        let mixed = nodes(&[("a", 0), ("b", 1)]);
        for k in keys().iter().take(100) {
            assert_eq!(owner(k, &mixed, None), Some("b"));
        }
    }

    #[test]
    fn order_of_the_node_list_does_not_matter() {
        let one = nodes(&[("a", 100), ("b", 150), ("c", 200)]);
        let other = nodes(&[("c", 200), ("a", 100), ("b", 150)]);
        for k in keys().iter().take(1000) {
            assert_eq!(owner(k, &one, None), owner(k, &other, None));
        }
    }

    /// The hash is part of the protocol between nodes: nodes of different builds must agree.
    #[test]
    fn hash_is_stable() {
        assert_ne!(hash("ab", "c"), hash("a", "bc"));
        // Computed independently (FNV-1a, then fmix64) in Python.
        assert_eq!(hash("node-1", "camera.front-door"), 0xef32_6ac5_7875_c3ee);
    }
}
