//! The contract module's `use` declarations, so a type path written in a
//! schema type can be read as the full path it names: with
//! `use uuid::Uuid as Id;`, `Id` is `uuid::Uuid`; with `use std::net;`,
//! `net::IpAddr` is `std::net::IpAddr`. Only what the module itself
//! imports is known; glob imports are remembered only to say so. Paths
//! under `core::` and `alloc::` read as the `std::` paths that re-export
//! them.

use std::collections::BTreeMap;

/// Names the module imports, each with the full path it stands for.
#[derive(Default, Debug)]
pub struct Imports {
    names: BTreeMap<String, Vec<String>>,
    globs: Vec<String>,
}

/// One name a `use` item brings in.
#[derive(Debug)]
pub struct Imported {
    /// The name as the module sees it (the alias of `as`).
    pub name: String,
    /// The full path (leading `::` dropped).
    pub path: Vec<String>,
}

/// Every name a `use` tree imports, with its full path; each glob as
/// `Err(prefix)`.
pub fn flatten(tree: &syn::UseTree) -> Vec<Result<Imported, String>> {
    fn walk(
        tree: &syn::UseTree,
        prefix: &mut Vec<String>,
        out: &mut Vec<Result<Imported, String>>,
    ) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                walk(&p.tree, prefix, out);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                // `use a::b::{self}` imports `b`.
                let (name, path) = if n.ident == "self" {
                    (prefix.last().cloned().unwrap_or_default(), prefix.clone())
                } else {
                    let mut path = prefix.clone();
                    path.push(n.ident.to_string());
                    (n.ident.to_string(), path)
                };
                out.push(Ok(Imported { name, path }));
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                if r.ident != "self" {
                    path.push(r.ident.to_string());
                }
                out.push(Ok(Imported {
                    name: r.rename.to_string(),
                    path,
                }));
            }
            syn::UseTree::Glob(_) => out.push(Err(prefix.join("::"))),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    walk(tree, prefix, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut Vec::new(), &mut out);
    out
}

/// `path` with a leading `core` or `alloc` read as `std`.
pub fn normalized(mut path: Vec<String>) -> Vec<String> {
    if let Some(first) = path.first_mut()
        && (first == "core" || first == "alloc")
    {
        *first = "std".to_owned();
    }
    path
}

impl Imports {
    /// Records the names of one `use` item.
    pub fn add(&mut self, item: &syn::ItemUse) {
        for imported in flatten(&item.tree) {
            match imported {
                // `use x as _;` names nothing.
                Ok(i) if i.name == "_" => {}
                Ok(i) => {
                    self.names.insert(i.name, i.path);
                }
                Err(prefix) => self.globs.push(prefix),
            }
        }
    }

    /// The full path `path` names: its first segment replaced by what the
    /// module imports under that name. A path with a leading `::`, or whose
    /// first segment is not imported, is taken as written.
    pub fn resolve(&self, path: &syn::Path) -> Vec<String> {
        let written: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let full = match written.split_first() {
            Some((first, rest)) if path.leading_colon.is_none() => match self.names.get(first) {
                Some(full) => full.iter().chain(rest).cloned().collect(),
                None => written,
            },
            _ => written,
        };
        normalized(full)
    }

    /// The prefixes of the module's glob imports (`use chrono::prelude::*`
    /// gives `chrono::prelude`).
    pub fn globs(&self) -> &[String] {
        &self.globs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imports(src: &str) -> Imports {
        let file: syn::File = syn::parse_str(src).expect("parses");
        let mut imports = Imports::default();
        for item in &file.items {
            if let syn::Item::Use(u) = item {
                imports.add(u);
            }
        }
        imports
    }

    fn resolve(imports: &Imports, ty: &str) -> String {
        let path: syn::Path = syn::parse_str(ty).expect("path");
        imports.resolve(&path).join("::")
    }

    #[test]
    fn aliases_groups_and_prefixes_resolve() {
        let i = imports(
            "use uuid::Uuid as Id; use ::chrono::{DateTime, naive::{self, NaiveDate as Day}}; \
             use std::net; use std::time::Duration as _; use chrono::prelude::*; \
             use core::num::NonZeroU8;",
        );
        assert_eq!(resolve(&i, "Id"), "uuid::Uuid");
        assert_eq!(resolve(&i, "DateTime<Utc>"), "chrono::DateTime");
        assert_eq!(resolve(&i, "naive::NaiveTime"), "chrono::naive::NaiveTime");
        assert_eq!(resolve(&i, "Day"), "chrono::naive::NaiveDate");
        assert_eq!(resolve(&i, "net::IpAddr"), "std::net::IpAddr");
        assert_eq!(resolve(&i, "::uuid::Uuid"), "uuid::Uuid");
        assert_eq!(resolve(&i, "Duration"), "Duration");
        assert_eq!(resolve(&i, "::Id"), "Id");
        assert_eq!(resolve(&i, "NonZeroU8"), "std::num::NonZeroU8");
        assert_eq!(resolve(&i, "alloc::borrow::Cow"), "std::borrow::Cow");
        assert_eq!(i.globs(), ["chrono::prelude"]);
    }
}
