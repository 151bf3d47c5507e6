//! `cargo xtask modules`: draws each crate's module import graph and fails
//! when modules of a crate import each other in a cycle, judged on two
//! levels that follow how Rust modules are owned (see *What counts as a
//! cycle* below).
//!
//! This is a deliberately small source scan (no parser dependency), so it is
//! approximate, but cheap enough to run on every `cargo xtask test`.
//!
//! * **Crates** are the `[workspace] members` of the root `Cargo.toml` whose
//!   directory has `src/lib.rs` or `src/main.rs` (a member written as
//!   `dir/*` stands for every directory in `dir`). The crate name comes from
//!   the member's `[package] name`.
//! * **Modules** are the `.rs` files under `src/`, one node per file:
//!   `foo.rs` and `foo/mod.rs` are `foo`, `foo/bar.rs` is `foo::bar`.
//!   `lib.rs` and `main.rs` are the crate root, which only declares modules
//!   and re-exports, so it is neither the source nor the target of an edge.
//!   Files under `src/bin/` are separate binaries and are skipped, and so is
//!   every module declared `#[cfg(test)]` (e.g. `#[cfg(test)] mod tests;`),
//!   with its children: test-only code is not part of the layering.
//! * **Edges**: file `A` imports module `B` when `A`'s code names a path
//!   starting with `crate::`, `super::`, `self::` or one of `A`'s child
//!   modules (`pub use child::X` in a parent), in `use` items (grouped
//!   `use crate::{a::X, b::{Y, Z}}` included) or inline (`crate::a::f()`).
//!   The path resolves to the longest prefix that is a module:
//!   `crate::store::wire::Frame` is `store::wire` if that file exists, else
//!   `store`; `super` is relative to `A` (and to any inline `mod x { .. }`
//!   around the path). Comments (doc comments included) and string literals
//!   are ignored, and so are items gated by `#[cfg(test)]` (e.g. a
//!   `#[cfg(test)] mod tests { .. }` block). `mod child;` itself is not an
//!   edge, and self-edges are dropped.
//!
//! # What counts as a cycle
//!
//! A folder `store/` together with its parent file `store.rs` (or
//! `store/mod.rs`) is one module, `store`; the files and folders inside are
//! its children, which implement it. The parent file is the folder's face:
//! it declares the children and re-exports what they provide, and the
//! children may use items the parent defines (`use super::Error`). An edge
//! between the parent file and its children, either way, is how the module
//! is put together, not a cycle. What must have no cycle:
//!
//! 1. **Layers** (the main check). Collapse every module to its top-level
//!    module (`store`, `store::read` and `store::read::x` are all `store`;
//!    `operation::server` is `operation`) and keep the edges between
//!    distinct top-level modules. The top-level modules are the crate's
//!    layers: each may import only layers below it, so that each can be
//!    read, tested and moved with what it stands on and nothing above. So
//!    `operation/server.rs -> transfer/inbound.rs` and
//!    `transfer/inbound.rs -> operation/client.rs` are the cycle
//!    `operation <-> transfer`, though no single file imports itself back.
//! 2. **Siblings**. For each folder module `m`, at any depth, keep only the
//!    edges between its direct children (`m::a -> m::b`, a deeper
//!    `m::a::x` counting as `m::a`), leaving out edges to or from the
//!    parent file `m` (the face) and edges leaving the folder (those are
//!    judged in the folder holding both ends, or as layers). These must
//!    have no cycle either: two parts of
//!    one module that need each other are not separate parts; what both
//!    need belongs in the parent or in a new child both import.
//!
//! (The layer rule is the sibling rule for the crate root, whose
//! `lib.rs`/`main.rs` is the face of the whole crate.)
//!
//! # Report
//!
//! The report lists, per crate, every module (file) with its sorted
//! outgoing edges; then the layers bottom-up, each top-level module with the
//! top-level modules it imports, ordered by rank (0 for a module importing
//! no other, else one more than the highest it imports), which is a
//! topological order when there is no cycle (members of a cycle share a
//! rank and are marked `(CYCLE n)`); then `no cycles` or every cycle (a
//! strongly connected component of more than one module, at either level:
//! `top-level modules` or `children of m`), with each edge inside it and
//! the file edges and `file:line`s that create it. `--dot` prints Graphviz
//! `dot` of the file graph instead, with the edges that create a cycle (of
//! either level) in red. Either way the task fails, naming the crates, when
//! any crate has a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// How [`check`] reports the graphs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Every module with its outgoing edges, the layers, then the cycles.
    Graph,
    /// Graphviz `dot` source.
    Dot,
    /// One line per crate, plus the cycles (for `cargo xtask test`).
    Summary,
}

/// Scans every workspace crate under `root`, prints its graph as `output`
/// asks, and fails when any crate has a cycle between its top-level
/// modules or between the children of one folder module.
pub fn check(root: &Path, output: Output) -> Result<()> {
    let mut graphs = Vec::new();
    for dir in workspace_members(root)? {
        let src = root.join(&dir).join("src");
        if !src.join("lib.rs").is_file() && !src.join("main.rs").is_file() {
            continue;
        }
        let name = package_name(&root.join(&dir).join("Cargo.toml")).unwrap_or_else(|| dir.clone());
        let mut files = Vec::new();
        source_files(&src, "", &mut files)?;
        graphs.push(CrateGraph::build(&name, &format!("{dir}/src"), &files));
    }
    let report = match output {
        Output::Dot => dot(&graphs),
        Output::Graph | Output::Summary => text(&graphs, output == Output::Graph),
    };
    print!("{report}");
    let cyclic: Vec<&str> = graphs
        .iter()
        .filter(|g| !g.cycles.is_empty())
        .map(|g| g.name.as_str())
        .collect();
    if !cyclic.is_empty() {
        bail!(
            "import cycles between top-level modules or sibling modules in {}; \
             see the report above",
            cyclic.join(", ")
        );
    }
    Ok(())
}

/// The `[workspace] members` of `root/Cargo.toml`, read line by line.
fn workspace_members(root: &Path) -> Result<Vec<String>> {
    let path = root.join("Cargo.toml");
    let manifest =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut section = "";
    let mut array: Option<String> = None;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if let Some(text) = array.as_mut() {
            text.push_str(line);
            if line.contains(']') {
                break;
            }
        } else if line.starts_with('[') {
            section = line;
        } else if section == "[workspace]"
            && let Some(value) = line.strip_prefix("members")
            && let Some(value) = value.trim_start().strip_prefix('=')
        {
            let value = value.trim_start();
            array = Some(value.to_owned());
            if value.contains(']') {
                break;
            }
        }
    }
    let Some(array) = array else {
        bail!("no `[workspace] members` in {}", path.display());
    };
    let mut members = Vec::new();
    for member in array.split('"').skip(1).step_by(2) {
        match member.strip_suffix("/*") {
            Some(parent) => {
                let mut dirs: Vec<String> = fs::read_dir(root.join(parent))
                    .with_context(|| format!("cannot read directory {parent}"))?
                    .filter_map(|entry| entry.ok())
                    .filter(|entry| entry.path().is_dir())
                    .map(|entry| format!("{parent}/{}", entry.file_name().to_string_lossy()))
                    .collect();
                dirs.sort();
                members.extend(dirs);
            }
            None => members.push(member.to_owned()),
        }
    }
    Ok(members)
}

/// The `[package] name` of a crate manifest, read line by line.
fn package_name(manifest: &Path) -> Option<String> {
    let text = fs::read_to_string(manifest).ok()?;
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some(value) = line.strip_prefix("name")
            && let Some(value) = value.trim_start().strip_prefix('=')
        {
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}

/// Collects `(path relative to src, source)` of the `.rs` files under
/// `dir`, sorted by path.
fn source_files(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let rel = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if path.is_dir() {
            source_files(&path, &format!("{rel}/"), out)?;
        } else if rel.ends_with(".rs") {
            let source = fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            out.push((rel, source));
        }
    }
    Ok(())
}

/// The module path of a file (relative to `src/`, `/`-separated): empty for
/// the crate root, `None` for files that are not modules of the crate
/// (`src/bin/*`, non-Rust files).
fn module_path(rel: &str) -> Option<Vec<String>> {
    let stem = rel.strip_suffix(".rs")?;
    let mut parts: Vec<String> = stem.split('/').map(str::to_owned).collect();
    if parts.len() > 1 && parts[0] == "bin" {
        return None;
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        return Some(Vec::new());
    }
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    Some(parts)
}

/// One crate's module import graph.
#[derive(Debug)]
struct CrateGraph {
    /// The crate (package) name.
    name: String,
    /// Module path (`a::b`) -> file shown in reports (`crate-dir/src/a/b.rs`).
    files: BTreeMap<String, String>,
    /// Module -> imported module -> lines of the importing file naming it.
    edges: BTreeMap<String, BTreeMap<String, BTreeSet<usize>>>,
    /// Top-level module -> the other top-level modules it imports.
    layers: BTreeMap<String, BTreeSet<String>>,
    /// The cycles: between top-level modules first, then between the
    /// children of each folder module (by folder); each sorted by members.
    cycles: Vec<Cycle>,
}

/// Modules of one level (the top-level modules, or the direct children of
/// one folder module) that import each other in a cycle.
#[derive(Debug)]
struct Cycle {
    /// The folder module whose direct children form the cycle (`store`),
    /// or empty for a cycle between top-level modules (the layers).
    folder: String,
    /// The members (a strongly connected component of the level), sorted.
    members: Vec<String>,
    /// Each edge between members -> the file-level edges that create it.
    links: BTreeMap<(String, String), Vec<(String, String)>>,
}

impl Cycle {
    /// How the report names the level of the cycle.
    fn level(&self) -> String {
        if self.folder.is_empty() {
            "top-level modules".to_owned()
        } else {
            format!("children of {}", self.folder)
        }
    }
}

/// The file graph seen from one folder module: its direct children, with
/// deeper descendants collapsed into them, and the edges between them.
#[derive(Debug, Default)]
struct Level {
    /// Child -> the other children it imports.
    imports: BTreeMap<String, BTreeSet<String>>,
    /// Edge between children -> the file-level edges that create it.
    links: BTreeMap<(String, String), Vec<(String, String)>>,
}

impl Level {
    /// Collapses the file `edges` to the direct children of `folder` (empty:
    /// the crate root, whose children are the top-level modules). Edges to
    /// or from `folder` itself (its parent file), or outside it, are left
    /// out, and so are edges within one child.
    fn new(edges: &BTreeMap<String, BTreeMap<String, BTreeSet<usize>>>, folder: &str) -> Self {
        let mut level = Self::default();
        for (from, targets) in edges {
            let Some(a) = child_of(folder, from) else {
                continue;
            };
            level.imports.entry(a.clone()).or_default();
            for to in targets.keys() {
                if let Some(b) = child_of(folder, to)
                    && a != b
                {
                    level
                        .imports
                        .entry(a.clone())
                        .or_default()
                        .insert(b.clone());
                    level
                        .links
                        .entry((a.clone(), b))
                        .or_default()
                        .push((from.clone(), to.clone()));
                }
            }
        }
        level
    }

    /// The cycles of this level (of `folder`), sorted.
    fn cycles(&self, folder: &str) -> Vec<Cycle> {
        let mut cycles: Vec<Cycle> = strongly_connected(&self.imports)
            .into_iter()
            .filter(|members| members.len() > 1)
            .map(|members| Cycle {
                folder: folder.to_owned(),
                links: self
                    .links
                    .iter()
                    .filter(|((a, b), _)| members.contains(a) && members.contains(b))
                    .map(|(link, files)| (link.clone(), files.clone()))
                    .collect(),
                members,
            })
            .collect();
        cycles.sort_by(|x, y| x.members.cmp(&y.members));
        cycles
    }
}

/// The direct child of `folder` (empty: the crate root) that `module` is or
/// is inside of: `child_of("store", "store::read::x")` is `store::read`.
/// `None` for `folder` itself and for modules outside it.
fn child_of(folder: &str, module: &str) -> Option<String> {
    let rest = if folder.is_empty() {
        module
    } else {
        module.strip_prefix(folder)?.strip_prefix("::")?
    };
    let child = rest.split("::").next().filter(|child| !child.is_empty())?;
    Some(if folder.is_empty() {
        child.to_owned()
    } else {
        format!("{folder}::{child}")
    })
}

impl CrateGraph {
    /// Builds the graph from the crate's `(path relative to src, source)`
    /// files; `src` is how the `src` directory is shown in reports.
    fn build(name: &str, src: &str, files: &[(String, String)]) -> Self {
        let mut scans = Vec::new();
        let mut test_modules = Vec::new();
        for (rel, source) in files {
            if let Some(module) = module_path(rel) {
                let scan = scan(source, &module);
                test_modules.extend(scan.test_modules.iter().cloned());
                scans.push((rel, module, scan));
            }
        }
        let modules: BTreeSet<Vec<String>> = scans
            .iter()
            .map(|(_, module, _)| module.clone())
            .filter(|m| !m.is_empty() && !test_modules.iter().any(|t| m.starts_with(t)))
            .collect();
        let mut graph = Self {
            name: name.to_owned(),
            files: BTreeMap::new(),
            edges: BTreeMap::new(),
            layers: BTreeMap::new(),
            cycles: Vec::new(),
        };
        for (rel, module, scan) in &scans {
            if !modules.contains(module) {
                continue;
            }
            let key = module.join("::");
            graph.files.insert(key.clone(), format!("{src}/{rel}"));
            let out = graph.edges.entry(key).or_default();
            for path in &scan.refs {
                if let Some(target) = resolve(path, module, &modules)
                    && target != *module
                {
                    out.entry(target.join("::")).or_default().insert(path.line);
                }
            }
        }
        // Every proper prefix of a module is a folder module.
        let folders: BTreeSet<String> = modules
            .iter()
            .flat_map(|m| (1..m.len()).map(|n| m[..n].join("::")))
            .collect();
        let layers = Level::new(&graph.edges, "");
        graph.cycles = layers.cycles("");
        for folder in &folders {
            graph
                .cycles
                .extend(Level::new(&graph.edges, folder).cycles(folder));
        }
        graph.layers = layers.imports;
        graph
    }

    /// The top-level modules bottom-up: by rank (0 for a module that imports
    /// no other, else one more than the highest rank it imports outside its
    /// own cycle), then by name, so a topological order when acyclic. Each
    /// comes with the number of the cycle it is in (as in the report).
    fn layer_order(&self) -> Vec<(&String, Option<usize>)> {
        // Tarjan completes a component only after every component it
        // reaches, so each import outside a component is ranked before it.
        let components = strongly_connected(&self.layers);
        let mut rank: BTreeMap<&String, usize> = BTreeMap::new();
        for component in &components {
            let r = component
                .iter()
                .flat_map(|m| &self.layers[m])
                .filter(|target| !component.contains(target))
                .map(|target| rank[target] + 1)
                .max()
                .unwrap_or(0);
            for m in component {
                rank.insert(m, r);
            }
        }
        let cycle = |m: &String| {
            self.cycles
                .iter()
                .position(|c| c.folder.is_empty() && c.members.contains(m))
                .map(|i| i + 1)
        };
        let mut order: Vec<(&String, Option<usize>)> =
            self.layers.keys().map(|m| (m, cycle(m))).collect();
        order.sort_by_key(|&(m, c)| (rank[m], c, m));
        order
    }
}

/// Tarjan's algorithm: the strongly connected components of `edges` (node
/// -> targets; targets that are not nodes are ignored), each sorted, in the
/// order Tarjan completes them: a component after every one it reaches.
fn strongly_connected(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    /// Tarjan's bookkeeping.
    struct Tarjan<'a> {
        /// Adjacency lists by node index.
        adjacent: Vec<Vec<usize>>,
        /// Node names by index.
        names: Vec<&'a String>,
        /// Discovery index per node (`None` until visited).
        index: Vec<Option<usize>>,
        /// Lowest discovery index reachable per node.
        low: Vec<usize>,
        /// Whether a node is on the stack.
        on_stack: Vec<bool>,
        /// Nodes of components not yet complete.
        stack: Vec<usize>,
        /// Next discovery index.
        next: usize,
        /// Completed components.
        components: Vec<Vec<String>>,
    }

    impl Tarjan<'_> {
        /// Visits `v` and everything reachable from it.
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for i in 0..self.adjacent[v].len() {
                let w = self.adjacent[v][i];
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(index) if self.on_stack[w] => self.low[v] = self.low[v].min(index),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(self.names[w].clone());
                    if w == v {
                        break;
                    }
                }
                component.sort();
                self.components.push(component);
            }
        }
    }

    let names: Vec<&String> = edges.keys().collect();
    let position = |name: &String| names.binary_search(&name).ok();
    let adjacent = edges
        .values()
        .map(|targets| targets.iter().filter_map(position).collect())
        .collect();
    let count = names.len();
    let mut tarjan = Tarjan {
        adjacent,
        names,
        index: vec![None; count],
        low: vec![0; count],
        on_stack: vec![false; count],
        stack: Vec::new(),
        next: 0,
        components: Vec::new(),
    };
    for v in 0..count {
        if tarjan.index[v].is_none() {
            tarjan.visit(v);
        }
    }
    tarjan.components
}

/// The text report: per crate, the modules and their edges and the layers
/// (when `graph`), and the cycles.
fn text(graphs: &[CrateGraph], graph: bool) -> String {
    let mut out = String::new();
    for (n, g) in graphs.iter().enumerate() {
        let modules = match g.files.len() {
            1 => "1 module".to_owned(),
            count => format!("{count} modules"),
        };
        let cycles = match g.cycles.len() {
            0 => "no cycles".to_owned(),
            1 => "1 cycle".to_owned(),
            count => format!("{count} cycles"),
        };
        if graph {
            if n > 0 {
                out.push('\n');
            }
            let _ = writeln!(out, "{} ({modules})", g.name);
            for (module, targets) in &g.edges {
                let targets: Vec<&str> = targets.keys().map(String::as_str).collect();
                if targets.is_empty() {
                    let _ = writeln!(out, "  {module}");
                } else {
                    let _ = writeln!(out, "  {module} -> {}", targets.join(", "));
                }
            }
            if !g.layers.is_empty() {
                let _ = writeln!(out, "  layers, bottom-up:");
            }
            for (module, cycle) in g.layer_order() {
                let mut line = format!("    {module}");
                let targets = &g.layers[module];
                if !targets.is_empty() {
                    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
                    let _ = write!(line, " -> {}", targets.join(", "));
                }
                if let Some(cycle) = cycle {
                    let _ = write!(line, "  (CYCLE {cycle})");
                }
                let _ = writeln!(out, "{line}");
            }
            if g.cycles.is_empty() {
                let _ = writeln!(out, "  no cycles");
            }
        } else {
            let _ = writeln!(out, "{}: {modules}, {cycles}", g.name);
        }
        for (i, cycle) in g.cycles.iter().enumerate() {
            let _ = writeln!(
                out,
                "  CYCLE {} of {} ({}): {}",
                i + 1,
                g.cycles.len(),
                cycle.level(),
                cycle.members.join(", ")
            );
            let evidence = |from: &str, to: &str| {
                let lines: Vec<String> = g.edges[from][to].iter().map(usize::to_string).collect();
                format!("{from} -> {to}  at {}:{}", g.files[from], lines.join(","))
            };
            for ((a, b), files) in &cycle.links {
                if let [(from, to)] = files.as_slice()
                    && from == a
                    && to == b
                {
                    let _ = writeln!(out, "    {}", evidence(from, to));
                } else {
                    let _ = writeln!(out, "    {a} -> {b}");
                    for (from, to) in files {
                        let _ = writeln!(out, "      {}", evidence(from, to));
                    }
                }
            }
        }
    }
    out
}

/// The Graphviz `dot` report: one cluster per crate, the file graph, with
/// the edges that create a cycle (of either level) in red.
fn dot(graphs: &[CrateGraph]) -> String {
    let mut out = String::from(
        "digraph modules {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for (n, g) in graphs.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{n} {{\n    label=\"{}\";", g.name);
        let id = |module: &str| format!("\"{}::{module}\"", g.name);
        for module in g.files.keys() {
            let _ = writeln!(out, "    {} [label=\"{module}\"];", id(module));
        }
        let red: BTreeSet<&(String, String)> = g
            .cycles
            .iter()
            .flat_map(|c| c.links.values().flatten())
            .collect();
        for (module, targets) in &g.edges {
            for target in targets.keys() {
                let cyclic = red.contains(&(module.clone(), target.clone()));
                let style = if cyclic { " [color=red]" } else { "" };
                let _ = writeln!(out, "    {} -> {}{style};", id(module), id(target));
            }
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

/// A path named in a file, before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PathRef {
    /// Its segments, e.g. `["super", "wire", "Frame"]`.
    segments: Vec<String>,
    /// The module the path appears in: the file's module plus any inline
    /// `mod x { .. }` around it.
    scope: Vec<String>,
    /// 1-based line of (the last segment of) the path.
    line: usize,
}

/// What [`scan`] finds in one file.
#[derive(Debug, Default)]
struct Scan {
    /// Module paths declared `#[cfg(test)] mod name;`.
    test_modules: Vec<Vec<String>>,
    /// Paths that may name a module of the crate.
    refs: Vec<PathRef>,
}

/// Resolves `path` (found in the file of `module`) to the module it
/// imports: the longest prefix of its absolute form that is in `modules`.
/// `None` for paths outside the crate and for the crate root.
fn resolve(
    path: &PathRef,
    module: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let mut segments = path.segments.as_slice();
    let mut full = match segments.first()?.as_str() {
        "crate" => {
            segments = &segments[1..];
            Vec::new()
        }
        first @ ("self" | "super") => {
            if first == "self" {
                segments = &segments[1..];
            }
            let mut base = path.scope.clone();
            while segments.first().is_some_and(|s| s == "super") {
                base.pop()?;
                segments = &segments[1..];
            }
            base
        }
        child => {
            let mut child_path = module.to_vec();
            child_path.push(child.to_owned());
            if !modules.contains(&child_path) {
                return None;
            }
            module.to_vec()
        }
    };
    full.extend(segments.iter().cloned());
    (1..=full.len())
        .rev()
        .map(|n| &full[..n])
        .find(|prefix| modules.contains(*prefix))
        .map(<[String]>::to_vec)
}

/// A token of Rust source (after [`strip`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An identifier, keyword or number.
    Ident(String),
    /// `::`.
    PathSep,
    /// Any other punctuation character.
    Punct(char),
}

/// Replaces comments and string/char literals with spaces, keeping newlines
/// so that line numbers stay right.
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let before = |i: usize, back: usize| i.checked_sub(back).map_or(' ', |j| chars[j]);
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(source.len());
    // Pushes a newline for every newline in chars[from..to].
    let blank = |out: &mut String, from: usize, to: usize| {
        let lines = chars[from..to.min(chars.len())]
            .iter()
            .filter(|&&c| c == '\n')
            .count();
        out.push(' ');
        out.extend(std::iter::repeat_n('\n', lines));
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            out.push(' ');
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            blank(&mut out, start, i);
        } else if c == 'r'
            && (!is_ident(before(i, 1)) || (before(i, 1) == 'b' && !is_ident(before(i, 2))))
            && {
                let mut j = i + 1;
                while at(j) == '#' {
                    j += 1;
                }
                at(j) == '"'
            }
        {
            // Raw string r"..." / r#"..."# (also br"...").
            let mut j = i + 1;
            while at(j) == '#' {
                j += 1;
            }
            let hashes = j - i - 1;
            i = j + 1;
            while i < chars.len() {
                if chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    i += hashes + 1;
                    break;
                }
                i += 1;
            }
            blank(&mut out, start, i);
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            blank(&mut out, start, i);
        } else if c == '\'' && at(i + 1) == '\\' {
            // Escaped char literal: '\n', '\'', '\u{..}'.
            i += 3;
            while i < chars.len() && chars[i] != '\'' && chars[i] != '\n' {
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else if c == '\'' && at(i + 2) == '\'' {
            // Plain char literal: 'x', '"'.
            i += 3;
            out.push(' ');
        } else {
            // Anything else, lifetimes ('a) included.
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Splits stripped source into tokens with their 1-based lines.
fn tokenize(source: &str) -> Vec<(Tok, usize)> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let mut ident = String::from(c);
            while let Some(&next) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
                ident.push(next);
                chars.next();
            }
            tokens.push((Tok::Ident(ident), line));
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            tokens.push((Tok::PathSep, line));
        } else if !c.is_whitespace() {
            tokens.push((Tok::Punct(c), line));
        }
    }
    tokens
}

/// Keywords that start an item or statement which `#[cfg(test)]` removes
/// as a whole.
const ITEM_KEYWORDS: &[&str] = &[
    "async",
    "const",
    "enum",
    "extern",
    "fn",
    "impl",
    "let",
    "macro_rules",
    "mod",
    "static",
    "struct",
    "trait",
    "type",
    "union",
    "unsafe",
    "use",
];

/// Finds the paths (and `#[cfg(test)]` module declarations) in the source
/// of the file whose module path is `module`.
fn scan(source: &str, module: &[String]) -> Scan {
    let mut scanner = Scanner {
        tokens: tokenize(&strip(source)),
        module,
        inline: Vec::new(),
        depth: 0,
        found: Scan::default(),
    };
    scanner.run();
    scanner.found
}

/// State of [`scan`] over one file's tokens.
struct Scanner<'a> {
    /// The file's tokens.
    tokens: Vec<(Tok, usize)>,
    /// The file's module path.
    module: &'a [String],
    /// Enclosing inline modules: name and the brace depth outside them.
    inline: Vec<(String, usize)>,
    /// Current brace depth.
    depth: usize,
    /// What was found so far.
    found: Scan,
}

impl Scanner<'_> {
    /// The token at `i`, if any.
    fn tok(&self, i: usize) -> Option<&Tok> {
        self.tokens.get(i).map(|(tok, _)| tok)
    }

    /// The identifier at `i`, if the token there is one.
    fn ident(&self, i: usize) -> Option<&str> {
        match self.tok(i) {
            Some(Tok::Ident(ident)) => Some(ident),
            _ => None,
        }
    }

    /// Whether the token at `i` is the punctuation `c`.
    fn is(&self, i: usize, c: char) -> bool {
        self.tok(i) == Some(&Tok::Punct(c))
    }

    /// The line of the token at `i`.
    fn line(&self, i: usize) -> usize {
        self.tokens.get(i).map_or(0, |(_, line)| *line)
    }

    /// The module the current position is in (file module + inline mods).
    fn scope(&self) -> Vec<String> {
        let mut scope = self.module.to_vec();
        scope.extend(self.inline.iter().map(|(name, _)| name.clone()));
        scope
    }

    /// Records a path found at `line`.
    fn push(&mut self, segments: Vec<String>, line: usize) {
        let scope = self.scope();
        self.found.refs.push(PathRef {
            segments,
            scope,
            line,
        });
    }

    /// Walks all tokens.
    fn run(&mut self) {
        let mut i = 0;
        while i < self.tokens.len() {
            i = match self.tok(i) {
                Some(Tok::Punct('#')) if self.is_cfg_test(i) => self.skip_cfg_test(i),
                Some(Tok::Punct('{')) => {
                    self.depth += 1;
                    i + 1
                }
                Some(Tok::Punct('}')) => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.inline.last().is_some_and(|(_, d)| *d == self.depth) {
                        self.inline.pop();
                    }
                    i + 1
                }
                Some(Tok::Ident(word)) if word == "use" => {
                    let mut leaves = Vec::new();
                    let end = self.use_tree(i + 1, Vec::new(), &mut leaves);
                    for (segments, line) in leaves {
                        self.push(segments, line);
                    }
                    end.max(i + 1)
                }
                Some(Tok::Ident(word)) if word == "mod" && self.is(i + 2, '{') => {
                    if let Some(name) = self.ident(i + 1) {
                        self.inline.push((name.to_owned(), self.depth));
                    }
                    i + 2
                }
                Some(Tok::Ident(_))
                    if self.tok(i + 1) == Some(&Tok::PathSep)
                        && !(i > 0 && self.tok(i - 1) == Some(&Tok::PathSep))
                        && !self.is_pub_in(i) =>
                {
                    self.inline_path(i)
                }
                _ => i + 1,
            };
        }
    }

    /// Whether `#[cfg(test)]` starts at `i`.
    fn is_cfg_test(&self, i: usize) -> bool {
        self.is(i + 1, '[')
            && self.ident(i + 2) == Some("cfg")
            && self.is(i + 3, '(')
            && self.ident(i + 4) == Some("test")
            && self.is(i + 5, ')')
            && self.is(i + 6, ']')
    }

    /// Whether the path at `i` is the `crate::x` of `pub(in crate::x)`.
    fn is_pub_in(&self, i: usize) -> bool {
        i >= 3
            && self.ident(i - 1) == Some("in")
            && self.is(i - 2, '(')
            && self.ident(i - 3) == Some("pub")
    }

    /// Skips the item after the `#[cfg(test)]` at `i` (recording a
    /// `mod name;` as a test module) and returns where to continue.
    fn skip_cfg_test(&mut self, i: usize) -> usize {
        let mut j = i + 7;
        // Further attributes.
        while self.is(j, '#') && self.is(j + 1, '[') {
            j = self.skip_group(j + 1);
        }
        // Visibility.
        if self.ident(j) == Some("pub") {
            j += 1;
            if self.is(j, '(') {
                j = self.skip_group(j);
            }
        }
        if self.ident(j) == Some("mod")
            && let Some(name) = self.ident(j + 1)
            && self.is(j + 2, ';')
        {
            let mut path = self.scope();
            path.push(name.to_owned());
            self.found.test_modules.push(path);
            return j + 3;
        }
        if !self
            .ident(j)
            .is_some_and(|word| ITEM_KEYWORDS.contains(&word))
        {
            // A field, match arm or expression: leave it alone.
            return i + 7;
        }
        let mut nesting = 0usize;
        while let Some(tok) = self.tok(j) {
            match tok {
                Tok::Punct('(' | '[') => nesting += 1,
                Tok::Punct(')' | ']') => nesting = nesting.saturating_sub(1),
                Tok::Punct(';') if nesting == 0 => return j + 1,
                Tok::Punct('{') if nesting == 0 => return self.skip_group(j),
                Tok::Punct('}') if nesting == 0 => return j,
                _ => {}
            }
            j += 1;
        }
        j
    }

    /// Skips the bracketed group opening at `i` (`(`, `[` or `{`) and
    /// returns the position after its closing bracket.
    fn skip_group(&self, i: usize) -> usize {
        let mut nesting = 0usize;
        let mut j = i;
        while let Some(tok) = self.tok(j) {
            match tok {
                Tok::Punct('(' | '[' | '{') => nesting += 1,
                Tok::Punct(')' | ']' | '}') => {
                    nesting = nesting.saturating_sub(1);
                    if nesting == 0 {
                        return j + 1;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        j
    }

    /// Records the inline path `a::b::c` starting at `i`; returns the
    /// position after it.
    fn inline_path(&mut self, i: usize) -> usize {
        let mut segments = Vec::new();
        let mut j = i;
        let mut line = self.line(i);
        while let Some(ident) = self.ident(j) {
            segments.push(ident.to_owned());
            line = self.line(j);
            if self.tok(j + 1) == Some(&Tok::PathSep) && self.ident(j + 2).is_some() {
                j += 2;
            } else {
                j += 1;
                break;
            }
        }
        self.push(segments, line);
        j
    }

    /// Parses the use tree starting at `i` under `prefix`, adding every
    /// leaf path (and its line) to `leaves`; returns the position after
    /// the tree.
    fn use_tree(
        &self,
        mut i: usize,
        mut path: Vec<String>,
        leaves: &mut Vec<(Vec<String>, usize)>,
    ) -> usize {
        let start = i;
        let mut line = self.line(i);
        loop {
            match self.tok(i) {
                Some(Tok::PathSep) => i += 1,
                Some(Tok::Ident(ident)) if ident != "as" => {
                    path.push(ident.clone());
                    line = self.line(i);
                    i += 1;
                    if self.tok(i) == Some(&Tok::PathSep) {
                        i += 1;
                    } else {
                        break;
                    }
                }
                Some(Tok::Punct('*')) => {
                    line = self.line(i);
                    i += 1;
                    break;
                }
                Some(Tok::Punct('{')) => {
                    i += 1;
                    while i < self.tokens.len() && !self.is(i, '}') {
                        let next = self.use_tree(i, path.clone(), leaves);
                        i = next.max(i + 1);
                        if self.is(i, ',') {
                            i += 1;
                        }
                    }
                    return i + 1;
                }
                _ => break,
            }
        }
        if self.ident(i) == Some("as") {
            i += 2;
        }
        if path.last().is_some_and(|last| last == "self") {
            path.pop();
        }
        if i > start && !path.is_empty() {
            leaves.push((path, line));
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a crate graph from `(path under src, source)` pairs.
    fn graph(files: &[(&str, &str)]) -> CrateGraph {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(path, source)| ((*path).to_owned(), (*source).to_owned()))
            .collect();
        CrateGraph::build("demo", "demo/src", &files)
    }

    /// The edges of `g` as `a -> b` strings.
    fn edges(g: &CrateGraph) -> Vec<String> {
        g.edges
            .iter()
            .flat_map(|(from, targets)| targets.keys().map(move |to| format!("{from} -> {to}")))
            .collect()
    }

    /// The lines creating `from -> to`.
    fn lines(g: &CrateGraph, from: &str, to: &str) -> Vec<usize> {
        g.edges[from][to].iter().copied().collect()
    }

    #[test]
    fn module_paths() {
        let path = |rel| module_path(rel).map(|p| p.join("::"));
        assert_eq!(path("lib.rs").as_deref(), Some(""));
        assert_eq!(path("main.rs").as_deref(), Some(""));
        assert_eq!(path("foo.rs").as_deref(), Some("foo"));
        assert_eq!(path("foo/mod.rs").as_deref(), Some("foo"));
        assert_eq!(path("foo/bar.rs").as_deref(), Some("foo::bar"));
        assert_eq!(path("bin/tool.rs"), None);
        assert_eq!(path("notes.md"), None);
    }

    #[test]
    fn grouped_use() {
        let g = graph(&[
            ("lib.rs", "mod a; mod b; mod c; mod d;"),
            (
                "a.rs",
                "use std::fmt;\nuse crate::{\n    b::X,\n    c::{Y, Z as W},\n};\nuse crate::d::{self};\n",
            ),
            ("b.rs", ""),
            ("c.rs", ""),
            ("d.rs", ""),
        ]);
        assert_eq!(edges(&g), ["a -> b", "a -> c", "a -> d"]);
        assert_eq!(lines(&g, "a", "b"), [3]);
        assert_eq!(lines(&g, "a", "c"), [4]);
        assert_eq!(lines(&g, "a", "d"), [6]);
    }

    #[test]
    fn inline_paths_and_roots() {
        let g = graph(&[
            (
                "lib.rs",
                "mod a; mod b; pub use a::Thing; fn f() { b::g() }",
            ),
            ("a.rs", "fn f() { let x = crate::b::g(); crate::helper(); }"),
            ("b.rs", "pub fn g() -> Self::Out { Vec::<u8>::new() }"),
        ]);
        // The crate root is neither source nor target.
        assert_eq!(edges(&g), ["a -> b"]);
        assert_eq!(g.files.len(), 2);
    }

    #[test]
    fn super_self_and_child_resolution() {
        let g = graph(&[
            ("lib.rs", "mod foo; mod baz;"),
            (
                "foo/mod.rs",
                "mod bar; mod baz; mod qux;\npub use bar::Bar;\nuse self::qux::Q;",
            ),
            (
                "foo/bar.rs",
                "use super::baz::B;\nuse super::Parent;\nuse super::super::baz::Top;",
            ),
            ("foo/baz.rs", ""),
            ("foo/qux.rs", "use super::super::foo::bar;"),
            ("baz.rs", "use super::foo::Foo;"),
        ]);
        assert_eq!(
            edges(&g),
            [
                "baz -> foo",
                "foo -> foo::bar",
                "foo -> foo::qux",
                "foo::bar -> baz",
                "foo::bar -> foo",
                "foo::bar -> foo::baz",
                "foo::qux -> foo::bar",
            ]
        );
    }

    #[test]
    fn super_inside_inline_module() {
        let g = graph(&[
            ("lib.rs", "mod a; mod b;"),
            (
                "a.rs",
                "mod inner {\n    use super::X;\n}\nuse super::b::Y;",
            ),
            ("b.rs", ""),
        ]);
        // `super` in `a::inner` is `a` itself (a self-edge), not the root.
        assert_eq!(edges(&g), ["a -> b"]);
    }

    #[test]
    fn longest_prefix_resolution() {
        let g = graph(&[
            ("lib.rs", "mod store;"),
            ("store.rs", "mod wire; mod body;"),
            ("store/wire.rs", ""),
            (
                "store/body.rs",
                "use crate::store::wire::Frame;\nuse crate::store::Error;\nfn f() { crate::store::missing::g() }",
            ),
        ]);
        assert_eq!(
            edges(&g),
            ["store::body -> store", "store::body -> store::wire"]
        );
        assert_eq!(lines(&g, "store::body", "store"), [2, 3]);
    }

    #[test]
    fn comments_and_strings_ignored() {
        let g = graph(&[
            ("lib.rs", "mod a; mod b; mod c;"),
            (
                "a.rs",
                "//! use crate::b::X;\n/// crate::b::f()\n// use crate::b;\n/* crate::b /* nested */ crate::b */\n\
                 const S: &str = \"crate::b::f\";\nconst R: &str = r#\"use crate::b; \"quoted\"\"#;\n\
                 const C: char = '\"';\nfn f<'a>(x: &'a str) { crate::c::g() }\n",
            ),
            ("b.rs", ""),
            ("c.rs", ""),
        ]);
        assert_eq!(edges(&g), ["a -> c"]);
        assert_eq!(lines(&g, "a", "c"), [8]);
    }

    #[test]
    fn cfg_test_ignored() {
        let g = graph(&[
            ("lib.rs", "mod a; mod b; mod c;"),
            (
                "a.rs",
                "#[cfg(test)]\nmod tests;\nfn f() {}\n#[cfg(test)]\n#[allow(unused)]\nmod more {\n    use crate::b::X;\n    fn g() { if x { crate::b::h() } }\n}\n\
                 #[cfg(test)]\npub(crate) fn helper() -> [u8; 2] { crate::b::h() }\nuse crate::c::Y;\n",
            ),
            ("a/tests.rs", "use crate::b::X;"),
            ("b.rs", ""),
            ("c.rs", ""),
        ]);
        assert_eq!(edges(&g), ["a -> c"]);
        assert!(!g.files.contains_key("a::tests"));
        assert_eq!(lines(&g, "a", "c"), [12]);
    }

    /// The cycles of `g` as `level: members` strings.
    fn cycles(g: &CrateGraph) -> Vec<String> {
        g.cycles
            .iter()
            .map(|c| format!("{}: {}", c.level(), c.members.join(", ")))
            .collect()
    }

    #[test]
    fn top_level_cycle_fails() {
        // (a) `a -> b -> a` between top-level modules.
        let g = graph(&[
            ("lib.rs", "mod a; mod b; mod c;"),
            ("a.rs", "use crate::b::X;\nfn f() { crate::b::g() }"),
            ("b.rs", "\nuse crate::a::Y;\nuse crate::c::Z;"),
            ("c.rs", ""),
        ]);
        assert_eq!(cycles(&g), ["top-level modules: a, b"]);
        let report = text(std::slice::from_ref(&g), true);
        assert!(report.contains("  a -> b\n"), "{report}");
        assert!(report.contains("  b -> a, c\n"), "{report}");
        assert!(
            report.contains("  CYCLE 1 of 1 (top-level modules): a, b\n"),
            "{report}"
        );
        assert!(
            report.contains("    a -> b  at demo/src/a.rs:1,2\n"),
            "{report}"
        );
        assert!(
            report.contains("    b -> a  at demo/src/b.rs:2\n"),
            "{report}"
        );
        assert!(!report.contains("b -> c  at"), "{report}");
        assert!(!report.contains("no cycles"), "{report}");
        // The cycle's members share a rank, above `c`, and are marked.
        assert!(
            report.contains(
                "  layers, bottom-up:\n    c\n    a -> b  (CYCLE 1)\n    b -> a, c  (CYCLE 1)\n"
            ),
            "{report}"
        );
        let summary = text(&[g], false);
        assert!(
            summary.starts_with("demo: 3 modules, 1 cycle\n  CYCLE 1 of 1 (top-level modules)"),
            "{summary}"
        );
        assert!(!summary.contains("layers"), "{summary}");
    }

    #[test]
    fn parent_and_child_are_no_cycle() {
        // (b) The parent file declares and re-exports its children, and the
        // children use what it defines: `store` <-> `store::read` is fine.
        let g = graph(&[
            ("lib.rs", "mod store; mod wire;"),
            (
                "store.rs",
                "mod read;\npub use read::Reader;\npub struct Error;\nfn f() { read::g() }",
            ),
            (
                "store/read.rs",
                "use super::Error;\nuse crate::wire::Frame;",
            ),
            ("wire.rs", ""),
        ]);
        assert_eq!(
            edges(&g),
            [
                "store -> store::read",
                "store::read -> store",
                "store::read -> wire"
            ]
        );
        assert!(g.cycles.is_empty(), "{:?}", g.cycles);
        let report = text(std::slice::from_ref(&g), true);
        assert!(
            report.contains("  layers, bottom-up:\n    wire\n    store -> wire\n  no cycles\n"),
            "{report}"
        );
        assert_eq!(text(&[g], false), "demo: 3 modules, no cycles\n");
    }

    #[test]
    fn sibling_cycle_fails() {
        // (c) Two children of one folder importing each other.
        let g = graph(&[
            ("lib.rs", "mod store;"),
            ("store/mod.rs", "mod read; mod write; pub use read::R;"),
            ("store/read.rs", "use super::write::W;\nuse super::Error;"),
            ("store/write.rs", "use crate::store::read::R;"),
        ]);
        assert_eq!(cycles(&g), ["children of store: store::read, store::write"]);
        let report = text(std::slice::from_ref(&g), true);
        assert!(
            report.contains(
                "  CYCLE 1 of 1 (children of store): store::read, store::write\n\
                 \x20   store::read -> store::write  at demo/src/store/read.rs:1\n\
                 \x20   store::write -> store::read  at demo/src/store/write.rs:1\n"
            ),
            "{report}"
        );
        assert!(report.contains("    store\n"), "{report}");
        assert!(!report.contains("-> store  at"), "{report}");
    }

    #[test]
    fn deeper_descendants_collapse_into_the_child() {
        // In `a`, `a::b::x` counts as `a::b`; in `a::b`, the parent file
        // `a::b` is left out, so only the level of `a` has a cycle.
        let g = graph(&[
            ("lib.rs", "mod a;"),
            ("a.rs", "mod b; mod c;"),
            ("a/b.rs", "mod x; mod y; use x::X;"),
            ("a/b/x.rs", "use crate::a::c::C;\nuse super::y::Y;"),
            ("a/b/y.rs", "use super::B;"),
            ("a/c.rs", "use super::b::B;"),
        ]);
        assert_eq!(cycles(&g), ["children of a: a::b, a::c"]);
        let report = text(&[g], true);
        assert!(
            report.contains(
                "    a::b -> a::c\n      a::b::x -> a::c  at demo/src/a/b/x.rs:1\n\
                 \x20   a::c -> a::b  at demo/src/a/c.rs:1\n"
            ),
            "{report}"
        );
    }

    #[test]
    fn cycle_across_folders_collapses_to_layers() {
        // (d) No file imports itself back, but `operation` and `transfer`
        // import each other.
        let g = graph(&[
            ("lib.rs", "mod operation; mod transfer;"),
            ("operation/mod.rs", "mod client; mod server;"),
            ("operation/client.rs", ""),
            (
                "operation/server.rs",
                "use crate::transfer::inbound::Inbound;",
            ),
            ("transfer/mod.rs", "mod inbound;"),
            (
                "transfer/inbound.rs",
                "\nuse crate::operation::client::Client;",
            ),
        ]);
        assert_eq!(cycles(&g), ["top-level modules: operation, transfer"]);
        let report = text(std::slice::from_ref(&g), true);
        assert!(
            report.contains(
                "  CYCLE 1 of 1 (top-level modules): operation, transfer\n\
                 \x20   operation -> transfer\n\
                 \x20     operation::server -> transfer::inbound  at demo/src/operation/server.rs:1\n\
                 \x20   transfer -> operation\n\
                 \x20     transfer::inbound -> operation::client  at demo/src/transfer/inbound.rs:2\n"
            ),
            "{report}"
        );
        assert!(
            report.contains(
                "    operation -> transfer  (CYCLE 1)\n    transfer -> operation  (CYCLE 1)\n"
            ),
            "{report}"
        );
    }

    #[test]
    fn layers_bottom_up() {
        let g = graph(&[
            ("lib.rs", "mod runtime; mod protocol; mod wire; mod util;"),
            ("runtime.rs", "mod inner; use crate::protocol::P;"),
            (
                "runtime/inner.rs",
                "use crate::util::U;\nuse crate::wire::W;",
            ),
            ("protocol.rs", "use crate::wire::W;"),
            ("wire.rs", ""),
            ("util.rs", ""),
        ]);
        assert!(g.cycles.is_empty());
        let report = text(&[g], true);
        assert!(
            report.contains(
                "  layers, bottom-up:\n    util\n    wire\n    protocol -> wire\n    \
                 runtime -> protocol, util, wire\n  no cycles\n"
            ),
            "{report}"
        );
    }

    #[test]
    fn dot_output() {
        let g = graph(&[
            ("lib.rs", "mod a; mod b; mod s;"),
            ("a.rs", "use crate::b::X;"),
            ("b.rs", "use super::a::Y;"),
            ("s.rs", "mod x; mod y; use x::X;"),
            ("s/x.rs", "use super::y::Y;"),
            ("s/y.rs", "use super::x::X;"),
        ]);
        let dot = dot(&[g]);
        assert!(dot.starts_with("digraph modules {"), "{dot}");
        for edge in [
            "\"demo::a\" -> \"demo::b\" [color=red];",
            "\"demo::b\" -> \"demo::a\" [color=red];",
            "\"demo::s::x\" -> \"demo::s::y\" [color=red];",
            "\"demo::s::y\" -> \"demo::s::x\" [color=red];",
            "\"demo::s\" -> \"demo::s::x\";",
        ] {
            assert!(dot.contains(edge), "{edge} in {dot}");
        }
    }
}
