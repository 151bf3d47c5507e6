//! The `build.rs` side: find `#[trellis::contract]` modules in a source file,
//! parse them with the same parser as the macro, and write their manifests.

use std::fs;
use std::path::{Path, PathBuf};

use crate::syntax::{Contract, ContractArgs, parse_contract};

/// Errors of the build-script API.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A required environment variable (set by Cargo) is missing.
    #[error(
        "environment variable `{0}` is not set; run this from a Cargo build script or set the directory explicitly"
    )]
    Env(&'static str),
    /// The source file or a contract in it does not parse or validate.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Contract(Vec<SourceError>),
    /// No `#[trellis::contract]` module was found.
    #[error(
        "{0}: no `#[trellis::contract(...)]` module found (build.rs matches the attribute path `trellis::contract` literally)"
    )]
    NoContract(PathBuf),
}

/// One located error in a contract source file.
#[derive(Debug, Clone)]
pub struct SourceError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The message.
    pub message: String,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// A manifest written by [`Builder::emit`].
#[derive(Debug, Clone)]
pub struct Emitted {
    /// Contract id.
    pub id: String,
    /// Contract digest.
    pub digest: String,
    /// The committed copy (`<crate>/contracts/<id>.json`).
    pub path: PathBuf,
    /// The copy in `OUT_DIR` (`$OUT_DIR/contracts/<id>.json`).
    pub out_path: PathBuf,
    /// The canonical manifest text.
    pub json: String,
}

/// Configures manifest emission from `build.rs`.
///
/// ```no_run
/// // build.rs, inside `fn main()`:
/// trellis_codegen::Builder::new()
///     .source("src/lib.rs")
///     .emit_or_warn();
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    sources: Vec<PathBuf>,
    manifest_dir: Option<PathBuf>,
    out_dir: Option<PathBuf>,
}

impl Builder {
    /// A builder using Cargo's `CARGO_MANIFEST_DIR` and `OUT_DIR`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a source file (relative to the crate root) holding contract modules.
    pub fn source(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources.push(path.into());
        self
    }

    /// Overrides the crate directory (default: `CARGO_MANIFEST_DIR`).
    pub fn manifest_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.manifest_dir = Some(dir.into());
        self
    }

    /// Overrides the output directory (default: `OUT_DIR`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    fn dir(explicit: &Option<PathBuf>, var: &'static str) -> Result<PathBuf, BuildError> {
        match explicit {
            Some(d) => Ok(d.clone()),
            None => std::env::var_os(var)
                .map(PathBuf::from)
                .ok_or(BuildError::Env(var)),
        }
    }

    /// Parses every source and writes `contracts/<id>.json` into the crate
    /// directory and into `OUT_DIR` (only when the bytes changed, so mtimes
    /// stay put). Prints `cargo:rerun-if-changed` for each source.
    pub fn emit(&self) -> Result<Vec<Emitted>, BuildError> {
        let crate_dir = Self::dir(&self.manifest_dir, "CARGO_MANIFEST_DIR")?;
        let out_dir = Self::dir(&self.out_dir, "OUT_DIR")?;
        let mut emitted = Vec::new();
        for source in &self.sources {
            let path = crate_dir.join(source);
            println!("cargo:rerun-if-changed={}", path.display());
            let text = fs::read_to_string(&path).map_err(|e| BuildError::Io {
                path: path.clone(),
                source: e,
            })?;
            let contracts = parse_source(&text, &path)?;
            if contracts.is_empty() {
                return Err(BuildError::NoContract(path));
            }
            for contract in contracts {
                for shared in &contract.schema_files {
                    println!("cargo:rerun-if-changed={}", shared.display());
                }
                let (json, digest) = contract.manifest.canonical_and_digest();
                let name = format!("{}.json", contract.manifest.id);
                let committed = crate_dir.join("contracts").join(&name);
                let out = out_dir.join("contracts").join(&name);
                write_if_changed(&committed, &json)?;
                write_if_changed(&out, &json)?;
                // Peers generating client stubs check the manifest against it.
                write_if_changed(&committed.with_extension("digest"), &format!("{digest}\n"))?;
                emitted.push(Emitted {
                    id: contract.manifest.id.clone(),
                    digest,
                    path: committed,
                    out_path: out,
                    json,
                });
            }
        }
        Ok(emitted)
    }

    /// [`Builder::emit`] for build scripts: on a contract error, prints it as
    /// Cargo warnings and writes nothing, so the `#[trellis::contract]` macro
    /// reports the same error at its exact span during compilation. Other
    /// failures (I/O, missing env) panic with the reason, failing the build.
    pub fn emit_or_warn(&self) -> Vec<Emitted> {
        match self.emit() {
            Ok(emitted) => emitted,
            Err(BuildError::Contract(errors)) => {
                for e in errors {
                    println!("cargo:warning=trellis contract: {e}");
                }
                Vec::new()
            }
            Err(other) => panic!("trellis-codegen: {other}"),
        }
    }
}

fn write_if_changed(path: &Path, contents: &str) -> Result<(), BuildError> {
    write_file_if_changed(path, contents, |path, source| BuildError::Io {
        path,
        source,
    })
}

/// Writes `contents` to `path` (creating its directory) unless the file
/// already holds exactly that, so mtimes and Cargo's change detection stay
/// put. `io` builds the caller's error from the file and the I/O error.
pub(crate) fn write_file_if_changed<E>(
    path: &Path,
    contents: &str,
    io: impl Fn(PathBuf, std::io::Error) -> E,
) -> Result<(), E> {
    if fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io(path.to_path_buf(), e))?;
    }
    fs::write(path, contents).map_err(|e| io(path.to_path_buf(), e))
}

fn locate(file: &Path, e: &syn::Error) -> Vec<SourceError> {
    e.clone()
        .into_iter()
        .map(|e| {
            let start = e.span().start();
            SourceError {
                file: file.to_path_buf(),
                line: start.line,
                column: start.column + 1,
                message: e.to_string(),
            }
        })
        .collect()
}

fn is_contract_attr(attr: &syn::Attribute) -> bool {
    crate::args::is_trellis_attr(attr, "contract")
}

/// Finds and parses every `#[trellis::contract]` module in a source text,
/// including ones inside inline modules.
pub fn parse_source(text: &str, file: &Path) -> Result<Vec<Contract>, BuildError> {
    let parsed = syn::parse_file(text).map_err(|e| BuildError::Contract(locate(file, &e)))?;
    let mut modules = Vec::new();
    collect_modules(&parsed.items, &mut modules);
    let mut contracts = Vec::new();
    let mut errors = Vec::new();
    for module in modules {
        let Some(pos) = module.attrs.iter().position(is_contract_attr) else {
            continue;
        };
        let mut module = module.clone();
        let attr = module.attrs.remove(pos);
        let tokens = match &attr.meta {
            syn::Meta::List(list) => list.tokens.clone(),
            _ => proc_macro2::TokenStream::new(),
        };
        match ContractArgs::parse(tokens).and_then(|a| parse_contract(a, &module)) {
            Ok(c) => contracts.push(c),
            Err(e) => errors.extend(locate(file, &e)),
        }
    }
    if !errors.is_empty() {
        return Err(BuildError::Contract(errors));
    }
    Ok(contracts)
}

fn collect_modules<'a>(items: &'a [syn::Item], out: &mut Vec<&'a syn::ItemMod>) {
    for item in items {
        if let syn::Item::Mod(m) = item {
            if m.attrs.iter().any(is_contract_attr) {
                out.push(m);
            } else if let Some((_, inner)) = &m.content {
                collect_modules(inner, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NESTED: &str = r#"
mod outer {
    #[trellis::contract(id = "a@v1", display_name = "A", description = "a")]
    pub mod a {
        use serde::{Deserialize, Serialize};
        #[derive(Serialize, Deserialize)]
        pub struct V { pub x: u32 }
        #[kv(purpose = "p", schema = V)]
        pub struct Vs;
    }
}
#[contract(id = "ignored@v1")]
mod not_matched {}
"#;

    #[test]
    fn finds_contracts_in_nested_modules_by_literal_path() {
        let found = parse_source(NESTED, Path::new("lib.rs")).expect("parses");
        let ids: Vec<&str> = found.iter().map(|c| c.manifest.id.as_str()).collect();
        assert_eq!(ids, ["a@v1"]);
    }

    #[test]
    fn errors_carry_file_line_and_column() {
        let text = NESTED.replace("schema = V)", "schema = W)");
        let Err(BuildError::Contract(errors)) = parse_source(&text, Path::new("src/lib.rs")) else {
            panic!("expected a contract error");
        };
        assert_eq!(errors.len(), 1);
        let e = &errors[0];
        assert_eq!((e.line, e.column), (8, 38));
        assert!(e.message.contains("unknown schema 'W'"), "{}", e.message);
        assert!(e.to_string().starts_with("src/lib.rs:8:38: "));
    }

    #[test]
    fn emit_writes_both_copies_only_when_changed() {
        let dir = std::env::temp_dir().join(format!("trellis-builder-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("src")).expect("mkdir");
        fs::write(dir.join("src/lib.rs"), NESTED).expect("write source");
        let builder = Builder::new()
            .source("src/lib.rs")
            .manifest_dir(&dir)
            .out_dir(dir.join("out"));
        let first = builder.emit().expect("emits");
        assert_eq!(first.len(), 1);
        let committed = fs::read_to_string(&first[0].path).expect("committed copy");
        assert_eq!(
            committed,
            fs::read_to_string(&first[0].out_path).expect("out copy")
        );
        assert_eq!(committed, first[0].json);
        let mtime = fs::metadata(&first[0].path)
            .and_then(|m| m.modified())
            .expect("mtime");
        std::thread::sleep(std::time::Duration::from_millis(20));
        builder.emit().expect("emits again");
        let again = fs::metadata(&first[0].path)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(mtime, again, "unchanged manifest must not be rewritten");
        let _ = fs::remove_dir_all(&dir);
    }
}
