//! End-to-end tests of the `trellis` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A file in the system temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "trellis-cli-test-{}-{n}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, contents).expect("write temp file");
        TempFile(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn shown(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn trellis<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .output()
        .expect("run trellis");
    Run {
        code: status.code().expect("exited normally"),
        stdout: String::from_utf8(stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(stderr).expect("utf-8 stderr"),
    }
}

fn documents_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/documents/contracts/documents@v1.json")
}

/// A hand-written, valid, pretty-printed (so non-canonical) manifest.
const FOREIGN: &str = r#"{
  "format": "trellis.contract.v1",
  "id": "notes@v1",
  "displayName": "Notes",
  "description": "Keeps notes",
  "kind": "service",
  "schemas": {
    "NoteKey": {
      "type": "object",
      "properties": { "key": { "type": "string" } },
      "required": ["key"]
    },
    "Note": {
      "type": "object",
      "properties": { "key": { "type": "string" }, "text": { "type": "string" } },
      "required": ["key", "text"]
    }
  },
  "rpc": {
    "Notes.Get": {
      "version": "v1",
      "subject": "rpc.v1.Notes.Get",
      "input": { "schema": "NoteKey" },
      "output": { "schema": "Note" }
    }
  }
}
"#;

fn digest_of(path: &Path) -> String {
    let run = trellis([Path::new("contract"), Path::new("digest"), path]);
    assert_eq!(run.code, 0, "digest failed: {}", run.stderr);
    let line = run.stdout.trim_end();
    let (digest, file) = line.split_once("  ").expect("`<digest>  <file>`");
    assert_eq!(file, path.display().to_string());
    assert_eq!(digest.len(), 43, "base64url sha-256: {digest}");
    digest.to_owned()
}

#[test]
fn committed_documents_manifest_is_ok_and_digests_agree() {
    let path = documents_manifest();
    let digest = digest_of(&path);
    let run = trellis([
        Path::new("contract"),
        Path::new("check"),
        Path::new("--strict-canonical"),
        &path,
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(
        run.stdout,
        format!("ok  documents@v1  {digest}  {}\n", path.display())
    );
    assert!(run.stderr.is_empty(), "stderr: {}", run.stderr);
}

#[test]
fn unknown_field_is_ignored_with_a_warning_naming_its_path() {
    // The format keeps objects open: readers drop unknown fields.
    let text = FOREIGN.replace(
        r#""subject": "rpc.v1.Notes.Get","#,
        r#""subject": "rpc.v1.Notes.Get", "timeoutMs": 5,"#,
    );
    assert_ne!(text, FOREIGN);
    let file = TempFile::new("unknown-field.json", &text);
    let plain = TempFile::new("unknown-field-plain.json", FOREIGN);
    let digest = digest_of(plain.path());
    assert_eq!(digest_of(file.path()), digest);
    let run = trellis(["contract".as_ref(), "check".as_ref(), file.path()]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(
        run.stdout
            .starts_with(&format!("ok  notes@v1  {digest}  {}", file.shown())),
        "stdout: {}",
        run.stdout
    );
    let line = run.stderr.lines().next().expect("a warning line");
    assert_eq!(
        line,
        format!(
            r#"{}: warning: rpc."Notes.Get".timeoutMs: unknown field, ignored (not part of trellis.contract.v1)"#,
            file.shown()
        )
    );
}

#[test]
fn digest_refuses_what_check_rejects_with_the_same_messages() {
    let text = FOREIGN
        .replace(
            r#""output": { "schema": "Note" }"#,
            r#""output": { "schema": "X" }"#,
        )
        .replacen('{', r#"{ "subjects": {},"#, 1);
    let file = TempFile::new("digest-invalid.json", &text);
    let check = trellis(["contract".as_ref(), "check".as_ref(), file.path()]);
    let digest = trellis(["contract".as_ref(), "digest".as_ref(), file.path()]);
    assert_eq!(check.code, 1, "check stderr: {}", check.stderr);
    assert_eq!(digest.code, 1, "digest stdout: {}", digest.stdout);
    assert!(digest.stdout.is_empty(), "stdout: {}", digest.stdout);
    assert!(
        digest.stderr.starts_with(&format!(
            "{}: subjects: raw subjects do not exist in trellis.contract.v1",
            file.shown()
        )),
        "stderr: {}",
        digest.stderr
    );
    assert_eq!(digest.stderr, check.stderr);

    let semantic = TempFile::new(
        "digest-semantic.json",
        &FOREIGN.replace(
            r#""output": { "schema": "Note" }"#,
            r#""output": { "schema": "X" }"#,
        ),
    );
    let run = trellis(["contract".as_ref(), "digest".as_ref(), semantic.path()]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    assert_eq!(
        run.stderr,
        format!(
            "{}: rpc.\"Notes.Get\".output: rpc 'Notes.Get' output: unknown schema 'X'\n",
            semantic.shown()
        )
    );

    // Other files still get their digest.
    let good = TempFile::new("digest-good.json", FOREIGN);
    let run = trellis([
        "contract".as_ref(),
        "digest".as_ref(),
        semantic.path(),
        good.path(),
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.ends_with(&format!("  {}\n", good.shown())),
        "{}",
        run.stdout
    );
}

#[test]
fn format_constructs_pass_check_and_digest() {
    // Multi-segment names, built-in errors and capabilities, state, feeds,
    // jobs and an unknown top-level field.
    let text = FOREIGN
        .replace(
            r#""Notes.Get": {"#,
            r#""Notes.Drafts.Get": {
      "capabilities": { "call": ["admin", "service"] },
      "errors": [{ "type": "UnexpectedError" }, { "type": "AuthError" }],"#,
        )
        .replace(
            r#""rpc": {"#,
            r#""state": { "drafts": { "kind": "map", "schema": { "schema": "Note" } } },
  "feeds": { "Notes.Changes": { "version": "v1", "subject": "feeds.v1.Notes.Changes",
    "input": { "schema": "NoteKey" }, "event": { "schema": "Note" } } },
  "jobs": { "reindex": { "payload": { "schema": "NoteKey" } } },
  "x-origin": "hand-written",
  "rpc": {"#,
        );
    let file = TempFile::new("format-constructs.json", &text);
    let digest = digest_of(file.path());
    let plain = TempFile::new("format-plain.json", FOREIGN);
    assert_ne!(digest, digest_of(plain.path()));
    let run = trellis(["contract".as_ref(), "check".as_ref(), file.path()]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(
        run.stdout.starts_with(&format!("ok  notes@v1  {digest}  ")),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("warning: x-origin: unknown field"),
        "{}",
        run.stderr
    );
}

#[test]
fn duplicate_keys_are_refused_not_collapsed() {
    // serde_json::Value would keep only the last entry and hide the first.
    let text = FOREIGN.replace(
        r#""rpc": {"#,
        r#""rpc": {
    "Notes.Get": { "version": "v1", "subject": "s", "input": { "schema": "Gone" }, "output": { "schema": "Note" } },"#,
    );
    assert_ne!(text, FOREIGN);
    let file = TempFile::new("duplicate-key.json", &text);
    for command in ["check", "digest"] {
        let run = trellis(["contract".as_ref(), command.as_ref(), file.path()]);
        assert_eq!(run.code, 1, "{command}: stdout: {}", run.stdout);
        assert!(
            run.stderr.contains("duplicate key `Notes.Get`"),
            "{command}: {}",
            run.stderr
        );
    }
}

#[test]
fn raw_subjects_are_rejected() {
    let text = FOREIGN.replacen('{', r#"{ "subjects": {},"#, 1);
    let file = TempFile::new("subjects.json", &text);
    let run = trellis(["contract".as_ref(), "check".as_ref(), file.path()]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    assert!(
        run.stderr.starts_with(&format!(
            "{}: subjects: raw subjects do not exist in trellis.contract.v1",
            file.shown()
        )),
        "stderr: {}",
        run.stderr
    );
}

#[test]
fn semantic_problems_are_printed_with_file_and_path() {
    let text = FOREIGN
        .replace(
            r#""output": { "schema": "Note" }"#,
            r#""output": { "schema": "X" }"#,
        )
        .replace(r#""id": "notes@v1""#, r#""id": "Notes""#);
    let file = TempFile::new("semantic.json", &text);
    let run = trellis(["contract".as_ref(), "check".as_ref(), file.path()]);
    assert_eq!(run.code, 1);
    let shown = file.shown();
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines.contains(&format!("{shown}: id: invalid contract id `Notes`").as_str()),
        "stderr: {}",
        run.stderr
    );
    assert!(
        lines.contains(
            &format!(
                "{shown}: rpc.\"Notes.Get\".output: rpc 'Notes.Get' output: unknown schema 'X'"
            )
            .as_str()
        ),
        "stderr: {}",
        run.stderr
    );
}

#[test]
fn non_json_input_is_an_error_naming_the_file() {
    let file = TempFile::new("not-json.json", "contract: documents@v1\n");
    for command in ["digest", "check"] {
        let run = trellis(["contract".as_ref(), command.as_ref(), file.path()]);
        assert_eq!(run.code, 1, "{command}");
        assert!(run.stdout.is_empty(), "{command}: {}", run.stdout);
        assert!(
            run.stderr
                .starts_with(&format!("{}: not valid JSON: ", file.shown())),
            "{command}: {}",
            run.stderr
        );
    }
}

#[test]
fn digest_rejects_json_that_is_not_an_object() {
    let file = TempFile::new("array.json", "[1, 2]\n");
    let run = trellis(["contract".as_ref(), "digest".as_ref(), file.path()]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains(&file.shown()), "{}", run.stderr);
}

#[test]
fn foreign_non_canonical_manifest_is_ok_with_a_note() {
    let file = TempFile::new("foreign.json", FOREIGN);
    let digest = digest_of(file.path());
    let run = trellis(["contract".as_ref(), "check".as_ref(), file.path()]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "ok  notes@v1  {digest}  {}  (not canonical: re-emit to normalize)\n",
            file.shown()
        )
    );
}

#[test]
fn strict_canonical_rejects_a_non_canonical_manifest() {
    let file = TempFile::new("foreign-strict.json", FOREIGN);
    let run = trellis([
        "contract".as_ref(),
        "check".as_ref(),
        "--strict-canonical".as_ref(),
        file.path(),
    ]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
    assert!(
        run.stderr
            .starts_with(&format!("{}: not canonical", file.shown())),
        "stderr: {}",
        run.stderr
    );
}

#[test]
fn digest_ignores_display_text_but_not_schemas() {
    let base = TempFile::new("base.json", FOREIGN);
    let renamed = TempFile::new(
        "renamed.json",
        &FOREIGN.replace(r#""displayName": "Notes""#, r#""displayName": "My Notes""#),
    );
    let retyped = TempFile::new(
        "retyped.json",
        &FOREIGN.replace(
            r#""text": { "type": "string" }"#,
            r#""text": { "type": "integer" }"#,
        ),
    );
    let d = digest_of(base.path());
    assert_eq!(d, digest_of(renamed.path()));
    assert_ne!(d, digest_of(retyped.path()));
}

#[test]
fn json_schema_errors_carry_the_instance_path() {
    let schema = TempFile::new(
        "schema.json",
        r#"{
          "$schema": "https://json-schema.org/draft/2019-09/schema",
          "type": "object",
          "properties": { "description": { "type": "string", "minLength": 20 } }
        }"#,
    );
    let file = TempFile::new("schema-target.json", FOREIGN);
    let run = trellis([
        "contract".as_ref(),
        "check".as_ref(),
        "--schema".as_ref(),
        schema.path(),
        file.path(),
    ]);
    assert_eq!(run.code, 1, "stdout: {}", run.stdout);
    assert!(
        run.stderr
            .starts_with(&format!("{}: schema: /description: ", file.shown())),
        "stderr: {}",
        run.stderr
    );

    let ok = trellis([
        "contract".as_ref(),
        "check".as_ref(),
        "--schema".as_ref(),
        schema.path(),
        documents_manifest().as_path(),
    ]);
    assert_eq!(ok.code, 0, "stderr: {}", ok.stderr);
}

#[test]
fn published_json_schema_accepts_the_documents_manifest() {
    // The schema lives next to the repository in the project layout; skip
    // quietly where it is not checked out.
    let schema =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/trellis.contract.v1.schema.json");
    if !schema.exists() {
        eprintln!("skipped: {} not present", schema.display());
        return;
    }
    let run = trellis([
        "contract".as_ref(),
        "check".as_ref(),
        "--schema".as_ref(),
        schema.as_path(),
        documents_manifest().as_path(),
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
}

#[test]
fn unusable_schema_file_is_a_usage_error() {
    let schema = TempFile::new("bad-schema.json", "{ not json");
    let run = trellis([
        "contract".as_ref(),
        "check".as_ref(),
        "--schema".as_ref(),
        schema.path(),
        documents_manifest().as_path(),
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains(&schema.shown()), "{}", run.stderr);
}

#[test]
fn missing_file_is_an_io_error_and_other_files_still_run() {
    let missing = std::env::temp_dir().join("trellis-cli-test-does-not-exist.json");
    let run = trellis([
        "contract".as_ref(),
        "check".as_ref(),
        missing.as_path(),
        documents_manifest().as_path(),
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains(&missing.display().to_string()));
    assert!(
        run.stdout.starts_with("ok  documents@v1  "),
        "{}",
        run.stdout
    );
}

#[test]
fn missing_arguments_are_a_usage_error() {
    let run = trellis(["contract", "check"]);
    assert_eq!(run.code, 2);
    let run = trellis(["contract", "frobnicate"]);
    assert_eq!(run.code, 2);
}
