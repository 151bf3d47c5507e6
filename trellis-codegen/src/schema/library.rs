//! Shared schema modules: `#[trellis::schema] pub mod shared { ... }` holds
//! serde types that several contracts use. A contract names the file that
//! declares them (`#[trellis::contract(..., schemas = "src/shared.rs")]`);
//! the macro and `build.rs` both read that file, so both derive the same
//! schemas from the same source. The file's path is relative to the crate
//! root (`CARGO_MANIFEST_DIR`), as `include_str!`-style tools do, so one
//! workspace crate can also name another's source file.

use std::path::{Path, PathBuf};

use super::{Library, SchemaTypes};

/// Whether `attr` is `#[trellis::schema]` (matched literally, as
/// `build.rs` matches `#[trellis::contract]`).
pub fn is_schema_attr(attr: &syn::Attribute) -> bool {
    crate::args::is_trellis_attr(attr, "schema")
}

/// Whether an item derives both `Serialize` and `Deserialize`.
pub fn has_serde_derives(attrs: &[syn::Attribute]) -> (bool, bool) {
    let mut ser = false;
    let mut de = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("derive")) {
        let _ = attr.parse_nested_meta(|meta| {
            if let Some(last) = meta.path.segments.last() {
                if last.ident == "Serialize" {
                    ser = true;
                }
                if last.ident == "Deserialize" {
                    de = true;
                }
            }
            Ok(())
        });
    }
    (ser, de)
}

/// The schema types and imports of a shared module's items: every struct
/// and enum deriving both serde traits, and every `use`.
pub fn module_types(items: &[syn::Item]) -> (SchemaTypes, Vec<syn::Error>) {
    let mut types = SchemaTypes::default();
    let mut errors = Vec::new();
    for item in items {
        let input = match item {
            syn::Item::Use(u) => {
                if let Err(e) = types.add_use(u) {
                    errors.push(e);
                }
                continue;
            }
            syn::Item::Struct(s) => syn::DeriveInput::from(s.clone()),
            syn::Item::Enum(e) => syn::DeriveInput::from(e.clone()),
            _ => continue,
        };
        if has_serde_derives(&input.attrs) == (true, true) {
            types.insert(input.ident.to_string(), input);
        }
    }
    (types, errors)
}

/// Where a contract's `schemas = "..."` file is: relative to the crate
/// root. `None` when Cargo did not say where that is.
pub fn locate(written: &str) -> Option<PathBuf> {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")?;
    Some(Path::new(&root).join(written))
}

/// Reads the `#[trellis::schema]` modules of a source file (at any depth
/// of inline modules). An error names what is wrong: unreadable, not Rust,
/// or no shared schema module.
pub fn load(path: &Path) -> Result<Library, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let file = syn::parse_file(&text).map_err(|e| {
        let at = e.span().start();
        format!(
            "it does not parse as Rust ({}:{}: {e})",
            at.line,
            at.column + 1
        )
    })?;
    let mut library = Library::default();
    let mut problems = Vec::new();
    collect(&file.items, &mut library, &mut problems);
    if let Some(first) = problems.first() {
        return Err(first.clone());
    }
    if library.modules.is_empty() {
        return Err("it declares no `#[trellis::schema] mod name { ... }` module".to_owned());
    }
    Ok(library)
}

fn collect(items: &[syn::Item], library: &mut Library, problems: &mut Vec<String>) {
    for item in items {
        let syn::Item::Mod(m) = item else {
            continue;
        };
        let Some((_, content)) = &m.content else {
            continue;
        };
        if !m.attrs.iter().any(is_schema_attr) {
            collect(content, library, problems);
            continue;
        }
        let (types, errors) = module_types(content);
        if let Some(e) = errors.first() {
            problems.push(format!("module `{}`: {e}", m.ident));
        }
        if library.modules.insert(m.ident.to_string(), types).is_some() {
            problems.push(format!(
                "two `#[trellis::schema]` modules are named `{}`; rename one",
                m.ident
            ));
        }
    }
}
