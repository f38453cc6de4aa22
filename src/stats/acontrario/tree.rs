//! The tree of connected components of the upper level sets of one scale's map (thesis 5.3.4),
//! built as a max-tree with union-find in O(N log N), and the PFA prune/merge that keeps, in each
//! branch, the most significant component.

/// Max-tree of a 2-D map with 4-connectivity. Pixels at the same level in one connected component
/// share a node; a node's region is its pixels plus those of all its descendants.
pub struct MaxTree {
    /// Node of each pixel.
    pub node_of: Vec<u32>,
    /// Parent of each node (the root is its own parent).
    pub parent: Vec<u32>,
    /// Level (map value) of each node.
    pub level: Vec<f32>,
    /// Number of pixels in each node's region.
    pub area: Vec<u32>,
    /// Nodes ordered from the root to the leaves (each parent before its children).
    pub order: Vec<u32>,
}

fn find(zpar: &mut [u32], mut x: u32) -> u32 {
    let mut root = x;
    while zpar[root as usize] != root {
        root = zpar[root as usize];
    }
    while zpar[x as usize] != root {
        let next = zpar[x as usize];
        zpar[x as usize] = root;
        x = next;
    }
    root
}

impl MaxTree {
    /// Build the tree of `map` (`h` rows of `w` values, row-major).
    pub fn build(map: &[f32], h: usize, w: usize) -> Self {
        let n = map.len();
        assert_eq!(n, h * w, "map size does not match its shape");
        // Pixels by decreasing level, ties in raster order (deterministic): one integer sort of
        // (order-preserving bits of -level, index) keys, several times faster than comparing floats.
        let mut keys: Vec<u64> = map
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let b = (-v).to_bits();
                let ordered = if b >> 31 == 1 { !b } else { b | 0x8000_0000 };
                ((ordered as u64) << 32) | i as u64
            })
            .collect();
        keys.sort_unstable();
        let sorted: Vec<u32> = keys.iter().map(|k| *k as u32).collect();
        const UNSEEN: u32 = u32::MAX;
        let mut par = vec![UNSEEN; n];
        let mut zpar = vec![UNSEEN; n];
        for &p in &sorted {
            par[p as usize] = p;
            zpar[p as usize] = p;
            let (y, x) = (p as usize / w, p as usize % w);
            let mut visit = |q: usize| {
                if zpar[q] != UNSEEN {
                    let r = find(&mut zpar, q as u32);
                    if r != p {
                        par[r as usize] = p;
                        zpar[r as usize] = p;
                    }
                }
            };
            if x > 0 {
                visit(p as usize - 1);
            }
            if x + 1 < w {
                visit(p as usize + 1);
            }
            if y > 0 {
                visit(p as usize - w);
            }
            if y + 1 < h {
                visit(p as usize + w);
            }
        }
        // Canonicalise, root first: a pixel's parent at the same level is replaced by that
        // pixel's canonical representative, so one node = one (level, component).
        for &p in sorted.iter().rev() {
            let q = par[p as usize];
            if map[par[q as usize] as usize] == map[q as usize] {
                par[p as usize] = par[q as usize];
            }
        }
        // Number the canonical pixels as nodes, root first.
        let mut node_of = vec![0u32; n];
        let mut canon_id = vec![UNSEEN; n];
        let mut parent = Vec::new();
        let mut level = Vec::new();
        let mut order = Vec::new();
        for &p in sorted.iter().rev() {
            let q = par[p as usize];
            let canonical = q == p || map[q as usize] != map[p as usize];
            if canonical {
                let id = level.len() as u32;
                canon_id[p as usize] = id;
                level.push(map[p as usize]);
                parent.push(if q == p { id } else { canon_id[q as usize] });
                order.push(id);
                node_of[p as usize] = id;
            } else {
                node_of[p as usize] = canon_id[q as usize];
            }
        }
        let mut area = vec![0u32; level.len()];
        for &node in &node_of {
            area[node as usize] += 1;
        }
        for &node in order.iter().rev() {
            let pa = parent[node as usize];
            if pa != node {
                area[pa as usize] += area[node as usize];
            }
        }
        Self {
            node_of,
            parent,
            level,
            area,
            order,
        }
    }

    pub fn len(&self) -> usize {
        self.level.len()
    }

    pub fn is_empty(&self) -> bool {
        self.level.is_empty()
    }
}

/// Run the PFA prune/merge iterations on `tree` whose nodes have significance `log_pfa` (lower is
/// more significant) and return the surviving leaves: disjoint components, each the most
/// significant of its branch.
///
/// - Prune: from each leaf, its branch is the leaf and its successive parents while each parent has
///   exactly one child; only the branch's node of lowest log PFA is kept (ties: the leaf side).
/// - Merge: a node all of whose (two or more) children are leaves and whose log PFA is at most
///   theirs replaces them.
///
/// Repeated until no merge happens, then pruned once more, as in the thesis.
pub fn significant_leaves(tree: &MaxTree, log_pfa: &[f64]) -> Vec<u32> {
    let mut p = Pruner::new(tree, log_pfa);
    p.prune();
    while p.merge() {
        p.prune();
    }
    p.prune();
    p.count_children();
    let Pruner {
        nodes, children, ..
    } = p;
    nodes
        .into_iter()
        .filter(|&v| children[v as usize] == 0)
        .collect()
}

/// Working state of the prune/merge iterations; buffers are allocated once per tree.
struct Pruner<'a> {
    log_pfa: &'a [f64],
    parent: Vec<u32>,
    alive: Vec<bool>,
    children: Vec<u32>,
    /// Alive nodes, root first: ancestors always precede descendants.
    nodes: Vec<u32>,
    has_inner_child: Vec<bool>,
    min_child: Vec<f64>,
    absorbed: Vec<bool>,
    branch: Vec<u32>,
}

impl<'a> Pruner<'a> {
    fn new(tree: &MaxTree, log_pfa: &'a [f64]) -> Self {
        let n = tree.len();
        Self {
            log_pfa,
            parent: tree.parent.clone(),
            alive: vec![true; n],
            children: vec![0; n],
            nodes: tree.order.clone(),
            has_inner_child: vec![false; n],
            min_child: vec![f64::INFINITY; n],
            absorbed: vec![false; n],
            branch: Vec::new(),
        }
    }

    fn count_children(&mut self) {
        for &v in &self.nodes {
            self.children[v as usize] = 0;
        }
        for &v in &self.nodes {
            let p = self.parent[v as usize];
            if p != v {
                self.children[p as usize] += 1;
            }
        }
    }

    fn prune(&mut self) {
        self.count_children();
        let lp = self.log_pfa;
        for i in (0..self.nodes.len()).rev() {
            let leaf = self.nodes[i];
            if !self.alive[leaf as usize] || self.children[leaf as usize] != 0 {
                continue;
            }
            self.branch.clear();
            self.branch.push(leaf);
            let mut v = leaf;
            loop {
                let p = self.parent[v as usize];
                if p == v || self.children[p as usize] != 1 {
                    break;
                }
                self.branch.push(p);
                v = p;
            }
            if self.branch.len() == 1 {
                continue;
            }
            // Lowest log PFA of the branch; ties go to the leaf side (first found).
            let mut best = 0;
            for (k, &b) in self.branch.iter().enumerate() {
                if lp[b as usize] < lp[self.branch[best] as usize] {
                    best = k;
                }
            }
            let top = *self.branch.last().unwrap();
            let keep = self.branch[best];
            let top_parent = self.parent[top as usize];
            self.parent[keep as usize] = if top_parent == top { keep } else { top_parent };
            self.children[keep as usize] = 0;
            for &b in &self.branch {
                if b != keep {
                    self.alive[b as usize] = false;
                }
            }
        }
        let alive = &self.alive;
        self.nodes.retain(|&v| alive[v as usize]);
    }

    fn merge(&mut self) -> bool {
        self.count_children();
        let lp = self.log_pfa;
        for &v in &self.nodes {
            self.has_inner_child[v as usize] = false;
            self.min_child[v as usize] = f64::INFINITY;
        }
        for &v in &self.nodes {
            let p = self.parent[v as usize];
            if p != v {
                if self.children[v as usize] > 0 {
                    self.has_inner_child[p as usize] = true;
                }
                let m = &mut self.min_child[p as usize];
                *m = m.min(lp[v as usize]);
            }
        }
        // Merges only turn a node into a leaf, which matters to its ancestors only; those were
        // already visited (root first), as in the reference, so one pass decides from the state
        // at its start.
        let mut merged = false;
        for &v in &self.nodes {
            let vi = v as usize;
            let absorb =
                self.children[vi] > 1 && !self.has_inner_child[vi] && lp[vi] <= self.min_child[vi];
            self.absorbed[vi] = absorb;
            merged |= absorb;
        }
        if merged {
            for &v in &self.nodes {
                let p = self.parent[v as usize];
                if p != v && self.absorbed[p as usize] {
                    self.alive[v as usize] = false;
                }
            }
            let alive = &self.alive;
            self.nodes.retain(|&v| alive[v as usize]);
        }
        merged
    }
}

/// For each original node, the surviving leaf whose region contains it (if any).
pub fn leaf_of_nodes(tree: &MaxTree, leaves: &[u32]) -> Vec<Option<u32>> {
    let mut owner: Vec<Option<u32>> = vec![None; tree.len()];
    for &l in leaves {
        owner[l as usize] = Some(l);
    }
    // Root first: a node inherits its parent's owner, so each leaf's region covers its subtree.
    for &v in &tree.order {
        let p = tree.parent[v as usize];
        if p != v && owner[v as usize].is_none() {
            owner[v as usize] = owner[p as usize];
        }
    }
    owner
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Region of node `v` computed by brute force: pixels >= level connected to v's pixels.
    fn brute_region(map: &[f32], h: usize, w: usize, seed: usize) -> Vec<usize> {
        let lvl = map[seed];
        let mut seen = vec![false; map.len()];
        let mut stack = vec![seed];
        seen[seed] = true;
        let mut out = vec![];
        while let Some(p) = stack.pop() {
            out.push(p);
            let (y, x) = (p / w, p % w);
            let mut nb = vec![];
            if x > 0 {
                nb.push(p - 1)
            }
            if x + 1 < w {
                nb.push(p + 1)
            }
            if y > 0 {
                nb.push(p - w)
            }
            if y + 1 < h {
                nb.push(p + w)
            }
            for q in nb {
                if !seen[q] && map[q] >= lvl {
                    seen[q] = true;
                    stack.push(q);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn areas_match_brute_force_components_with_ties() {
        let (h, w) = (7, 9);
        let map: Vec<f32> = (0..h * w)
            .map(|i| ((i * 37 + 11) % 13 / 3) as f32)
            .collect();
        let t = MaxTree::build(&map, h, w);
        for p in 0..h * w {
            let node = t.node_of[p] as usize;
            assert_eq!(t.level[node], map[p]);
            assert_eq!(
                t.area[node] as usize,
                brute_region(&map, h, w, p).len(),
                "pixel {p}"
            );
        }
        // One root, and parents strictly lower.
        let roots = (0..t.len()).filter(|&v| t.parent[v] as usize == v).count();
        assert_eq!(roots, 1);
        for v in 0..t.len() {
            let p = t.parent[v] as usize;
            if p != v {
                assert!(t.level[p] < t.level[v]);
            }
        }
    }

    #[test]
    fn two_peaks_become_two_leaves_when_each_is_most_significant() {
        // Two bumps on a flat floor: significance favours the bumps over the floor.
        let (h, w) = (5, 11);
        let mut map = vec![0.0f32; h * w];
        map[2 * w + 2] = 5.0;
        map[2 * w + 8] = 4.0;
        let t = MaxTree::build(&map, h, w);
        let lp: Vec<f64> = (0..t.len()).map(|v| -(t.level[v] as f64) * 10.0).collect();
        let leaves = significant_leaves(&t, &lp);
        let mut lv: Vec<f32> = leaves.iter().map(|&l| t.level[l as usize]).collect();
        lv.sort_by(f32::total_cmp);
        assert_eq!(lv, vec![4.0, 5.0]);
        // If the floor is more significant than both bumps, they merge into it.
        let lp2: Vec<f64> = (0..t.len())
            .map(|v| if t.level[v] == 0.0 { -100.0 } else { -1.0 })
            .collect();
        let leaves2 = significant_leaves(&t, &lp2);
        assert_eq!(leaves2.len(), 1);
        assert_eq!(t.area[leaves2[0] as usize] as usize, h * w);
    }
}
