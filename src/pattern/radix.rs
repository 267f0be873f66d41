//! A radix tree (path-compressed byte trie) whose nodes hold buckets.
//!
//! The index keeps one tree per anchor (literal prefixes, literal
//! suffixes, at small offsets). A lookup walks the channel down the tree
//! once and visits the bucket of every node whose key is a prefix of the
//! walked bytes: O(walked bytes) however many keys the tree holds.
//! Insertion and pruning touch only the key's path: O(key length), with at
//! most one node split on insert and one merge on prune.
//!
//! Node ids are stable while a node's bucket is non-empty: splits create
//! the new node above the existing one, and only empty nodes are freed or
//! merged away. The index relies on this to store a node id per pattern.

/// Index of a node in the arena.
pub(crate) type NodeId = u32;

/// The root's id; the root has the empty key.
const ROOT: NodeId = 0;

/// A radix tree over byte strings with a bucket `B` at every node.
#[derive(Debug, Clone)]
pub(crate) struct RadixTree<B> {
    /// Node arena; slots on the free list hold an empty, detached node.
    nodes: Vec<Node<B>>,
    /// Ids of freed nodes, reused before the arena grows.
    free: Vec<NodeId>,
}

/// One node of the tree.
#[derive(Debug, Clone)]
struct Node<B> {
    /// Bytes on the edge from the parent (empty for the root); never empty
    /// otherwise.
    label: Box<[u8]>,
    /// The parent node (the root is its own parent).
    parent: NodeId,
    /// Children keyed by the first byte of their label, sorted.
    children: Vec<(u8, NodeId)>,
    /// What the index stores at this key.
    bucket: B,
}

impl<B: Default> RadixTree<B> {
    /// A tree holding only the root.
    pub(crate) fn new() -> Self {
        Self {
            nodes: vec![Node {
                label: Box::default(),
                parent: ROOT,
                children: Vec::new(),
                bucket: B::default(),
            }],
            free: Vec::new(),
        }
    }

    /// Whether only the root exists and `is_empty` holds for its bucket.
    pub(crate) fn is_empty(&self, is_empty: impl Fn(&B) -> bool) -> bool {
        self.nodes[ROOT as usize].children.is_empty() && is_empty(&self.nodes[ROOT as usize].bucket)
    }

    /// The bucket of node `id`.
    pub(crate) fn bucket(&self, id: NodeId) -> &B {
        &self.nodes[id as usize].bucket
    }

    /// The bucket of node `id`, mutably.
    pub(crate) fn bucket_mut(&mut self, id: NodeId) -> &mut B {
        &mut self.nodes[id as usize].bucket
    }

    /// The child of `node` whose label starts with `byte`.
    #[inline]
    fn child(&self, node: NodeId, byte: u8) -> Option<NodeId> {
        let children = &self.nodes[node as usize].children;
        children
            .binary_search_by_key(&byte, |&(b, _)| b)
            .ok()
            .map(|i| children[i].1)
    }

    /// The node whose key is exactly `key`, if there is one.
    pub(crate) fn find(&self, key: &[u8]) -> Option<NodeId> {
        let mut node = ROOT;
        let mut rest = key;
        while let Some(&first) = rest.first() {
            let child = self.child(node, first)?;
            let label = &self.nodes[child as usize].label;
            rest = rest.strip_prefix(&**label)?;
            node = child;
        }
        Some(node)
    }

    /// The node for `key`, created (splitting an edge if needed) when
    /// missing.
    pub(crate) fn insert(&mut self, key: &[u8]) -> NodeId {
        let mut node = ROOT;
        let mut rest = key;
        while let Some(&first) = rest.first() {
            let Some(child) = self.child(node, first) else {
                let leaf = self.alloc(rest.into(), node);
                self.attach(node, first, leaf);
                return leaf;
            };
            let label = &self.nodes[child as usize].label;
            let common = label.iter().zip(rest).take_while(|(a, b)| a == b).count();
            if common < label.len() {
                // Split the edge: a new node for the common part goes
                // between `node` and `child`, so `child` keeps its id.
                let (upper, lower) = label.split_at(common);
                let (upper, lower): (Box<[u8]>, Box<[u8]>) = (upper.into(), lower.into());
                let middle = self.alloc(upper, node);
                self.nodes[middle as usize].children.push((lower[0], child));
                let moved = &mut self.nodes[child as usize];
                moved.label = lower;
                moved.parent = middle;
                self.replace_child(node, first, middle);
                node = middle;
            } else {
                node = child;
            }
            rest = &rest[common..];
        }
        node
    }

    /// Frees `id` and the ancestors that become useless, once `id`'s
    /// bucket is empty by `is_empty`: a node with an empty bucket and no
    /// children is removed, one with a single child is merged into it.
    pub(crate) fn prune(&mut self, mut id: NodeId, is_empty: impl Fn(&B) -> bool) {
        while id != ROOT && is_empty(&self.nodes[id as usize].bucket) {
            let node = &self.nodes[id as usize];
            let (parent, first) = (node.parent, node.label[0]);
            match node.children.len() {
                0 => {
                    let siblings = &mut self.nodes[parent as usize].children;
                    if let Ok(i) = siblings.binary_search_by_key(&first, |&(b, _)| b) {
                        siblings.remove(i);
                    }
                    self.release(id);
                    id = parent;
                }
                1 => {
                    let child = node.children[0].1;
                    let label = [&*node.label, &*self.nodes[child as usize].label].concat();
                    let merged = &mut self.nodes[child as usize];
                    merged.label = label.into();
                    merged.parent = parent;
                    self.replace_child(parent, first, child);
                    self.release(id);
                    return;
                }
                _ => return,
            }
        }
    }

    /// Visits, root first, the bucket of every node whose key is a prefix
    /// of `hay`.
    #[inline]
    pub(crate) fn walk_prefixes<'a>(&'a self, hay: &[u8], mut visit: impl FnMut(&'a B)) {
        let mut node = ROOT;
        let mut rest = hay;
        loop {
            visit(&self.nodes[node as usize].bucket);
            let Some(&first) = rest.first() else { return };
            let Some(child) = self.child(node, first) else {
                return;
            };
            match rest.strip_prefix(&*self.nodes[child as usize].label) {
                Some(after) => rest = after,
                None => return,
            }
            node = child;
        }
    }

    /// Visits, root first, the bucket of every node whose key, read
    /// backwards, is a suffix of `hay` (keys of a suffix tree are stored
    /// reversed).
    #[inline]
    pub(crate) fn walk_suffixes<'a>(&'a self, hay: &[u8], mut visit: impl FnMut(&'a B)) {
        let mut node = ROOT;
        let mut end = hay.len();
        loop {
            visit(&self.nodes[node as usize].bucket);
            let Some(last) = end.checked_sub(1) else {
                return;
            };
            let Some(child) = self.child(node, hay[last]) else {
                return;
            };
            let label = &self.nodes[child as usize].label;
            if label.len() > end
                || !label
                    .iter()
                    .zip(hay[..end].iter().rev())
                    .all(|(a, b)| a == b)
            {
                return;
            }
            end -= label.len();
            node = child;
        }
    }

    /// Number of live nodes, the root included.
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// A fresh node with `label` under `parent` (not yet attached).
    fn alloc(&mut self, label: Box<[u8]>, parent: NodeId) -> NodeId {
        let node = Node {
            label,
            parent,
            children: Vec::new(),
            bucket: B::default(),
        };
        match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                // Ids are u32: more than 4 billion live nodes would need
                // more memory than any pattern set this crate serves.
                let id = NodeId::try_from(self.nodes.len()).expect("radix tree node ids exhausted");
                self.nodes.push(node);
                id
            }
        }
    }

    /// Adds `child` under `parent` keyed by `first`.
    fn attach(&mut self, parent: NodeId, first: u8, child: NodeId) {
        let children = &mut self.nodes[parent as usize].children;
        let at = children.partition_point(|&(b, _)| b < first);
        children.insert(at, (first, child));
    }

    /// Points `parent`'s child entry for `first` at `child`.
    fn replace_child(&mut self, parent: NodeId, first: u8, child: NodeId) {
        let children = &mut self.nodes[parent as usize].children;
        if let Ok(i) = children.binary_search_by_key(&first, |&(b, _)| b) {
            children[i].1 = child;
        }
    }

    /// Puts `id` on the free list, dropping what it held.
    fn release(&mut self, id: NodeId) {
        let node = &mut self.nodes[id as usize];
        node.label = Box::default();
        node.children = Vec::new();
        node.bucket = B::default();
        self.free.push(id);
    }
}

#[cfg(test)]
mod tests {
    use super::RadixTree;

    /// Collects the buckets visited by a prefix walk.
    fn prefixes(tree: &RadixTree<Vec<&'static str>>, hay: &[u8]) -> Vec<&'static str> {
        let mut seen = Vec::new();
        tree.walk_prefixes(hay, |b| seen.extend(b.iter().copied()));
        seen
    }

    /// Collects the buckets visited by a suffix walk.
    fn suffixes(tree: &RadixTree<Vec<&'static str>>, hay: &[u8]) -> Vec<&'static str> {
        let mut seen = Vec::new();
        tree.walk_suffixes(hay, |b| seen.extend(b.iter().copied()));
        seen
    }

    fn with_keys(keys: &[&'static str]) -> RadixTree<Vec<&'static str>> {
        let mut tree: RadixTree<Vec<&str>> = RadixTree::new();
        for key in keys {
            let id = tree.insert(key.as_bytes());
            tree.bucket_mut(id).push(*key);
        }
        tree
    }

    /// A prefix walk visits exactly the keys that prefix the input.
    #[test]
    fn walk_visits_every_prefix_key() {
        let tree = with_keys(&["", "a", "ab", "abc", "abd", "b", "abcdef"]);
        assert_eq!(prefixes(&tree, b"abcde"), ["", "a", "ab", "abc"]);
        assert_eq!(prefixes(&tree, b"abdx"), ["", "a", "ab", "abd"]);
        assert_eq!(prefixes(&tree, b"x"), [""]);
        assert_eq!(prefixes(&tree, b""), [""]);
        assert_eq!(prefixes(&tree, b"abcdef"), ["", "a", "ab", "abc", "abcdef"]);
    }

    /// Splitting an edge keeps existing node ids, so stored ids stay valid.
    #[test]
    fn split_keeps_ids() {
        let mut tree: RadixTree<Vec<&str>> = RadixTree::new();
        let long = tree.insert(b"abcdef");
        let short = tree.insert(b"abc");
        assert_ne!(long, short);
        assert_eq!(tree.find(b"abcdef"), Some(long));
        assert_eq!(tree.find(b"abc"), Some(short));
        assert_eq!(tree.find(b"abcd"), None);
        assert_eq!(tree.insert(b"abcdef"), long);
    }

    /// The tree's shape, independent of node ids: every live node reached
    /// from the root, in key order, as (full key, edge label, bucket).
    fn shape(tree: &RadixTree<Vec<&'static str>>) -> Vec<(Vec<u8>, Vec<u8>, Vec<&'static str>)> {
        let mut out = Vec::new();
        let mut stack = vec![(super::ROOT, Vec::new())];
        while let Some((id, key)) = stack.pop() {
            let node = &tree.nodes[id as usize];
            let mut bucket = node.bucket.clone();
            bucket.sort_unstable();
            out.push((key.clone(), node.label.to_vec(), bucket));
            for &(_, child) in node.children.iter().rev() {
                let child_key = [&key[..], &tree.nodes[child as usize].label].concat();
                stack.push((child, child_key));
            }
        }
        out
    }

    /// Removes `key` from its bucket and prunes, as the index does.
    fn remove(tree: &mut RadixTree<Vec<&'static str>>, key: &'static str) {
        let id = tree.find(key.as_bytes()).unwrap();
        tree.bucket_mut(id).retain(|k| *k != key);
        tree.prune(id, Vec::is_empty);
    }

    /// Pruning frees emptied leaves and merges single-child chains: after
    /// every removal the tree has exactly the nodes, labels and buckets of
    /// a tree built fresh from the keys that remain, down to the bare root.
    #[test]
    fn prune_restores_compact_tree() {
        let keys = ["abc", "abd", "ab", "x"];
        let mut tree = with_keys(&keys);
        let mut left: Vec<&'static str> = keys.to_vec();
        for key in ["ab", "abd", "x", "abc"] {
            remove(&mut tree, key);
            left.retain(|k| *k != key);
            let fresh = with_keys(&left);
            assert_eq!(shape(&tree), shape(&fresh), "after removing {key:?}");
            assert_eq!(
                tree.node_count(),
                fresh.node_count(),
                "after removing {key:?}"
            );
        }
        assert!(tree.is_empty(Vec::is_empty));
        assert_eq!(tree.node_count(), 1);
    }

    proptest::proptest! {
        /// The same for random key sets removed in random order.
        #[test]
        fn prop_prune_matches_fresh_build(
            keys in proptest::collection::btree_set("[ab]{0,5}", 1..12),
            order in proptest::collection::vec(proptest::prelude::any::<usize>(), 12),
        ) {
            // Leaked so the tree can hold `&'static str` like the other tests.
            let keys: Vec<&'static str> = keys.into_iter().map(|k| &*k.leak()).collect();
            let mut tree = with_keys(&keys);
            let mut left = keys.clone();
            for pick in order {
                if left.is_empty() {
                    break;
                }
                let key = left.remove(pick % left.len());
                remove(&mut tree, key);
                let fresh = with_keys(&left);
                proptest::prop_assert_eq!(shape(&tree), shape(&fresh));
                proptest::prop_assert_eq!(tree.node_count(), fresh.node_count());
            }
        }
    }

    /// After removing a middle key its children are merged and still
    /// found.
    #[test]
    fn prune_merges() {
        let mut tree = with_keys(&["ab", "abcd"]);
        let id = tree.find(b"ab").unwrap();
        tree.bucket_mut(id).clear();
        tree.prune(id, Vec::is_empty);
        assert_eq!(tree.node_count(), 2);
        assert_eq!(prefixes(&tree, b"abcde"), ["abcd"]);
    }

    /// A suffix walk reads the input backwards against reversed keys.
    #[test]
    fn suffix_walk() {
        let tree = with_keys(&["s", "sutats:", "stneve:"]);
        assert_eq!(suffixes(&tree, b"ai:x:status"), ["s", "sutats:"]);
        assert_eq!(suffixes(&tree, b":events"), ["s", "stneve:"]);
        assert_eq!(suffixes(&tree, b"events"), ["s"]);
        assert!(suffixes(&tree, b"x").is_empty());
    }
}
