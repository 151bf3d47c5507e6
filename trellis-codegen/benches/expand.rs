//! How long does a 100-declaration contract take to parse and expand?
//!
//! Three groups over the same generated source text:
//!
//! 1. `build_rs`: [`trellis_codegen::parse_source`] (what `build.rs` runs:
//!    parse, validate, derive schemas) plus the canonical manifest text and
//!    its digest.
//! 2. `macro`: [`trellis_codegen::expand::expand`] on pre-parsed attribute
//!    arguments and module tokens (what `#[trellis::contract]` runs, here
//!    through proc-macro2's fallback implementation).
//! 3. `baseline`: `syn::parse_file` alone, the floor the other two build on.
//!
//! The contract declares 30 schema types, 20 KV buckets, 10 object stores,
//! 20 RPCs, 10 operations and 10 events (100 declarations; the 3 capability
//! consts they reference come on top).

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use proc_macro2::TokenStream;

const PARTS: usize = 5;
const RECORDS: usize = 10;
const REQUESTS: usize = 10;
const ERRORS: usize = 5;
const KVS: usize = 20;
const STORES: usize = 10;
const RPCS: usize = 20;
const OPERATIONS: usize = 10;
const EVENTS: usize = 10;
const SCHEMA_TYPES: usize = PARTS + RECORDS + REQUESTS + ERRORS;
const DECLARATIONS: usize = SCHEMA_TYPES + KVS + STORES + RPCS + OPERATIONS + EVENTS;

const ARGS: &str =
    r#"id = "bench@v1", display_name = "Bench", description = "A large contract for benchmarks""#;

/// The body of the contract module (without its `#[trellis::contract]` attribute).
fn module_source() -> String {
    let mut s = String::with_capacity(64 * 1024);
    let w = &mut s;
    w.push_str(
        "/// A large generated contract.\npub mod bench {\n\
         use std::collections::BTreeMap;\n\
         use serde::{Deserialize, Serialize};\n\n\
         /// Read records.\n#[capability(display_name = \"Read\")]\n\
         pub const READ: &str = \"read\";\n\
         /// Write records.\n#[capability(display_name = \"Write\", consequence = \"Can overwrite records\")]\n\
         pub const WRITE: &str = \"write\";\n\
         /// Administer jobs.\n#[capability(display_name = \"Admin\")]\n\
         pub const ADMIN: &str = \"admin\";\n\n",
    );

    for i in 0..PARTS {
        let _ = write!(
            w,
            "/// Part {i}.\n\
             #[derive(Debug, Clone, Serialize, Deserialize)]\n\
             pub struct Part{i} {{\n\
                 /// Name.\n#[serde(rename = \"partName\")]\npub name: String,\n\
                 /// Weight.\npub weight: f64,\n\
                 /// Flags.\npub flags: Vec<bool>,\n\
             }}\n\n"
        );
    }
    for i in 0..RECORDS {
        let part = i % PARTS;
        let other = (i + 1) % PARTS;
        let _ = write!(
            w,
            "/// Record {i}.\n\
             #[derive(Debug, Clone, Serialize, Deserialize)]\n\
             #[serde(rename_all = \"camelCase\")]\n\
             pub struct Record{i} {{\n\
                 /// Id.\npub id: String,\n\
                 /// Title.\npub display_title: String,\n\
                 /// Revision.\npub revision: u64,\n\
                 /// Tags.\n#[serde(default)]\npub tags: Vec<String>,\n\
                 /// Note.\n#[serde(default, skip_serializing_if = \"Option::is_none\")]\npub note: Option<String>,\n\
                 /// Main part.\npub main_part: Part{part},\n\
                 /// Other parts.\npub other_parts: Vec<Part{other}>,\n\
                 /// Labels.\n#[serde(default)]\npub labels: BTreeMap<String, String>,\n\
                 /// Archived.\n#[serde(rename = \"isArchived\", default)]\npub archived: bool,\n\
             }}\n\n"
        );
    }
    for i in 0..REQUESTS {
        let part = i % PARTS;
        let _ = write!(
            w,
            "/// Request {i}.\n\
             #[derive(Debug, Clone, Serialize, Deserialize)]\n\
             #[serde(rename_all = \"camelCase\")]\n\
             pub struct Request{i} {{\n\
                 /// Key.\npub key: String,\n\
                 /// Page size.\n#[serde(default)]\npub limit: Option<u32>,\n\
                 /// Filter.\npub filter: Option<Part{part}>,\n\
                 /// Offset.\n#[serde(default)]\npub offset: u32,\n\
             }}\n\n"
        );
    }
    for i in 0..ERRORS {
        let _ = write!(
            w,
            "/// Errors {i}.\n\
             #[derive(Debug, Clone, Serialize, Deserialize)]\n\
             #[serde(tag = \"kind\", rename_all = \"camelCase\")]\n\
             pub enum Error{i} {{\n\
                 /// Missing.\nNotFound {{\n/// Key.\nkey: String,\n}},\n\
                 /// Invalid.\nInvalid {{\n/// Why.\nreason: String,\n/// Field.\nfield: Option<String>,\n}},\n\
                 /// Busy.\nBusy,\n\
             }}\n\n"
        );
    }
    for i in 0..KVS {
        let record = i % RECORDS;
        let optional = if i % 4 == 3 { ", required = false" } else { "" };
        let _ = write!(
            w,
            "/// Bucket {i}.\n\
             #[kv(purpose = \"Records of kind {i}\", schema = Record{record}, history = 5, \
             ttl_ms = 3_600_000, max_value_bytes = 65_536{optional})]\n\
             pub struct Bucket{i};\n\n"
        );
    }
    for i in 0..STORES {
        let _ = write!(
            w,
            "/// Store {i}.\n\
             #[store(purpose = \"Blobs of kind {i}\", ttl_ms = 86_400_000, \
             max_total_bytes = 10_737_418_240)]\n\
             pub struct Blobs{i};\n\n"
        );
    }
    for i in 0..RPCS {
        let (input, output, error) = (i % REQUESTS, i % RECORDS, i % ERRORS);
        let transfer = if i % 5 == 0 {
            ", transfer(receive)"
        } else {
            ""
        };
        let caps = if i % 2 == 0 { "READ" } else { "READ, WRITE" };
        let _ = write!(
            w,
            "/// Rpc {i}.\n\
             #[rpc(\"Group{g}.Call{i}\", capabilities(call = [{caps}]){transfer})]\n\
             fn call_{i}(input: Request{input}) -> Result<Record{output}, Error{error}>;\n\n",
            g = i % 4
        );
    }
    for i in 0..OPERATIONS {
        let part = i % PARTS;
        let _ = write!(
            w,
            "/// Operation {i}.\n\
             #[operation(\"Jobs.Run{i}\", progress = Part{part}, \
             capabilities(call = [WRITE], observe = [READ], cancel = [ADMIN]), cancel, \
             transfer(send, store = Blobs{i}, key = \"/key\", max_bytes = 1_048_576, \
             expires_in_ms = 600_000))]\n\
             fn run_{i}(input: Request{i}) -> Record{i};\n\n"
        );
    }
    for i in 0..EVENTS {
        let record = i % RECORDS;
        let _ = write!(
            w,
            "/// Event {i}.\n\
             #[event(\"Records.Changed{i}\", params = [\"/id\", \"/revision\"], \
             capabilities(publish = [WRITE], subscribe = [READ]))]\n\
             #[derive(Debug, Clone, Serialize, Deserialize)]\n\
             #[serde(rename_all = \"camelCase\")]\n\
             pub struct Changed{i} {{\n\
                 /// Id.\npub id: String,\n\
                 /// Revision.\npub revision: u64,\n\
                 /// The record.\npub record: Record{record},\n\
                 /// Changed fields.\npub changed_fields: Vec<String>,\n\
             }}\n\n"
        );
    }
    s.push_str("}\n");
    s
}

/// The whole source file, as `build.rs` sees it.
fn file_source(module: &str) -> String {
    format!("#[trellis::contract({ARGS})]\n{module}")
}

/// Fails loudly if the generated contract does not parse or is not the size we claim.
fn sanity_check(text: &str) {
    let contracts = match trellis_codegen::parse_source(text, Path::new("bench.rs")) {
        Ok(c) => c,
        Err(e) => panic!("generated contract does not parse:\n{e}"),
    };
    assert_eq!(contracts.len(), 1);
    let c = &contracts[0];
    let m = &c.manifest;
    assert_eq!(c.kv.len(), KVS);
    assert_eq!(c.stores.len(), STORES);
    assert_eq!(c.rpcs.len(), RPCS);
    assert_eq!(c.operations.len(), OPERATIONS);
    assert_eq!(c.events.len(), EVENTS);
    assert_eq!(m.rpc.len(), RPCS);
    assert_eq!(m.operations.len(), OPERATIONS);
    assert_eq!(m.events.len(), EVENTS);
    assert_eq!(m.capabilities.len(), 3);
    // Event payloads are schema types too.
    assert_eq!(m.schemas.len(), SCHEMA_TYPES + EVENTS);
    let declared = m.schemas.len() - EVENTS
        + c.kv.len()
        + c.stores.len()
        + m.rpc.len()
        + m.operations.len()
        + m.events.len();
    assert_eq!(declared, DECLARATIONS);
    assert_eq!(DECLARATIONS, 100);

    // Renames, options, lists, maps and nested types made it into the schema.
    let record = m.schemas["Record0"].to_canonical_string();
    for needle in [
        "\"displayTitle\"",
        "\"isArchived\"",
        "\"partName\"",
        "\"labels\"",
    ] {
        assert!(record.contains(needle), "{needle} missing from {record}");
    }
    assert!(
        !record.contains("$ref"),
        "schemas are self-contained: {record}"
    );

    let json = m.to_canonical_string();
    let checked = trellis_codegen::check_manifest(&json).expect("emitted manifest checks");
    assert!(checked.canonical);
    assert_eq!(checked.digest, m.digest());
    eprintln!(
        "bench contract: {} bytes of source, {} bytes of manifest, digest {}",
        text.len(),
        json.len(),
        checked.digest
    );
}

fn tokens(text: &str) -> TokenStream {
    TokenStream::from_str(text).expect("tokenizes")
}

fn benches(c: &mut Criterion) {
    let module = module_source();
    let text = file_source(&module);
    sanity_check(&text);

    // Spans of the fallback proc-macro2 live in a thread-local source map
    // that grows with every parse; a build script starts empty, so reset it
    // between batches (never inside the timed routine).
    let reset = proc_macro2::extra::invalidate_current_thread_spans;

    let mut group = c.benchmark_group("contract_100");
    group.measurement_time(Duration::from_secs(12));

    group.bench_function("build_rs_parse_source_canonical_digest", |b| {
        b.iter_batched(
            reset,
            |()| {
                let contracts =
                    trellis_codegen::parse_source(black_box(&text), Path::new("bench.rs"))
                        .expect("parses");
                let m = &contracts[0].manifest;
                (m.to_canonical_string(), m.digest())
            },
            BatchSize::SmallInput,
        );
    });

    // Parsed after the groups above reset the source map, and nothing below
    // resets it until these are dropped.
    let args = tokens(ARGS);
    let item = tokens(&module);
    let expanded = trellis_codegen::expand::expand(args.clone(), item.clone()).to_string();
    assert!(
        !expanded.contains("compile_error"),
        "expansion failed: {expanded}"
    );
    group.bench_function("macro_expand", |b| {
        b.iter_batched(
            || (args.clone(), item.clone()),
            |(args, item)| trellis_codegen::expand::expand(args, item),
            BatchSize::SmallInput,
        );
    });
    drop((args, item));

    group.bench_function("baseline_syn_parse_file", |b| {
        b.iter_batched(
            reset,
            |()| syn::parse_file(black_box(&text)).expect("parses"),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(contract, benches);
criterion_main!(contract);
