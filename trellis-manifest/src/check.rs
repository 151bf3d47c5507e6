//! Checking any manifest file: JSON syntax, removed v1 concepts, the typed
//! shape, and the semantic rules. Under [`Rules::Format`] unknown fields
//! are dropped (and listed); under [`Rules::Dsl`] they are rejected with
//! their path.

use crate::digest;
use crate::json::Json;
use crate::known::strip_unknown;
use crate::manifest::Manifest;
use crate::validate::{Issue, Rules, validate_with};

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Not JSON.
    #[error("not valid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// Does not match the `trellis.contract.v1` shape.
    #[error("{path}: {message}")]
    Shape {
        /// Where (`resources.kv.items.ttl`).
        path: String,
        /// What.
        message: String,
    },
    /// Violates contract rules.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Issue>),
}

/// A manifest that passed every check.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The typed manifest.
    pub manifest: Manifest,
    /// Its digest.
    pub digest: String,
    /// Whether the text is already canonical (sorted, compact, one trailing newline).
    pub canonical: bool,
    /// Unknown fields dropped while reading (dotted paths; [`Rules::Format`] only).
    pub ignored: Vec<String>,
}

/// Checks manifest text under [`Rules::Dsl`].
pub fn check_manifest(text: &str) -> Result<Checked, CheckError> {
    check_manifest_with(text, Rules::Dsl)
}

/// Checks manifest text under `rules`.
pub fn check_manifest_with(text: &str, rules: Rules) -> Result<Checked, CheckError> {
    let json = Json::parse(text)?;
    let rejected = rejected_concepts(&json);
    if !rejected.is_empty() {
        return Err(CheckError::Invalid(rejected));
    }
    let (manifest, ignored) = match rules {
        Rules::Dsl => {
            let mut de = serde_json::Deserializer::from_str(text);
            (read(&mut de)?, Vec::new())
        }
        Rules::Format => {
            let (known, dropped) = strip_unknown(&json);
            let ignored = dropped.iter().map(|p| dotted(p.iter())).collect();
            (read(serde_json::to_value(&known)?)?, ignored)
        }
    };
    let issues = validate_with(&manifest, rules);
    if !issues.is_empty() {
        return Err(CheckError::Invalid(issues));
    }
    let canonical_text = format!("{}\n", json.to_canonical_string());
    Ok(Checked {
        digest: digest::digest(&json),
        canonical: canonical_text == text,
        manifest,
        ignored,
    })
}

/// Deserializes the typed model, naming the path of a shape error.
fn read<'de, D>(de: D) -> Result<Manifest, CheckError>
where
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    serde_path_to_error::deserialize(de).map_err(|e| CheckError::Shape {
        path: shape_path(e.path()),
        message: e.into_inner().to_string(),
    })
}

/// Joins path parts with dots, quoting parts that contain one.
fn dotted<'a>(parts: impl Iterator<Item = &'a String>) -> String {
    let parts: Vec<String> = parts
        .map(|p| {
            if p.contains('.') {
                format!("\"{p}\"")
            } else {
                p.clone()
            }
        })
        .collect();
    if parts.is_empty() {
        "(top level)".to_owned()
    } else {
        parts.join(".")
    }
}

/// Renders a deserialization path like [`Issue::path_string`]: dotted, with
/// keys that contain dots quoted (`rpc."Files.List".input`).
fn shape_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let parts: Vec<String> = path
        .iter()
        .filter_map(|segment| match segment {
            Segment::Map { key } => Some(key.clone()),
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    dotted(parts.iter())
}

fn rejected_concepts(json: &Json) -> Vec<Issue> {
    let mut out = Vec::new();
    let mut reject = |path: &[&str], message: &str| {
        out.push(Issue {
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            message: message.to_owned(),
            help: None,
        });
    };
    if json.get("subjects").is_some() {
        reject(
            &["subjects"],
            "raw subjects do not exist in trellis.contract.v1; subjects derive from rpc/operations/events",
        );
    }
    if let Some(resources) = json.get("resources") {
        if resources.get("streams").is_some() {
            reject(
                &["resources", "streams"],
                "stream resources do not exist in trellis.contract.v1; events own their streams",
            );
        }
        if resources.get("jobs").is_some() {
            reject(
                &["resources", "jobs"],
                "job resources do not exist in trellis.contract.v1; use operations",
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(extra: &str) -> String {
        format!(
            r#"{{"format":"trellis.contract.v1","id":"notes@v1","displayName":"Notes","description":"d","kind":"service","schemas":{{"Note":{{"type":"object","properties":{{"text":{{"type":"string"}}}}}},"Query":{{"type":"object"}}}}{extra}}}"#
        )
    }

    fn format_ok(text: &str) -> Checked {
        match check_manifest_with(text, Rules::Format) {
            Ok(checked) => checked,
            Err(e) => panic!("{e}\n{text}"),
        }
    }

    fn messages(result: Result<Checked, CheckError>) -> String {
        match result {
            Ok(_) => panic!("expected a refusal"),
            Err(e) => e.to_string(),
        }
    }

    const RPC: &str = r#","rpc":{"Auth.Capabilities.List":{"version":"v1","subject":"rpc.v1.Auth.Capabilities.List","input":{"schema":"Query"},"output":{"schema":"Note"},"capabilities":{"call":["admin","service"]},"errors":[{"type":"UnexpectedError"},{"type":"ValidationError"},{"type":"AuthError"},{"type":"TransferError"}]}}"#;

    #[test]
    fn state_feeds_and_jobs_pass_and_digest_like_the_projection() {
        let t = text(
            r#","state":{"drafts":{"kind":"value","schema":{"schema":"Note"},"acceptedVersions":{"v0":{"schema":"Query"}}}},"feeds":{"Notes.Changes":{"version":"v1","subject":"feeds.v1.Notes.Changes","input":{"schema":"Query"},"event":{"schema":"Note"},"capabilities":{"subscribe":["admin"]}}},"jobs":{"reindex":{"payload":{"schema":"Query"},"result":{"schema":"Note"},"maxDeliver":2}}"#,
        );
        let checked = format_ok(&t);
        assert_eq!(checked.digest, digest::digest_text(&t).expect("json"));
        assert!(checked.ignored.is_empty());
        assert_eq!(checked.manifest.jobs.map(|j| j.len()), Some(1));
        let without = text("");
        assert_ne!(checked.digest, format_ok(&without).digest);
    }

    #[test]
    fn unknown_schemas_in_state_feeds_and_jobs_are_refused() {
        let t = text(
            r#","state":{"drafts":{"kind":"map","schema":{"schema":"Gone"}}},"feeds":{"F":{"version":"v1","subject":"f","input":{"schema":"Query"},"event":{"schema":"Lost"}}},"jobs":{"j":{"payload":{"schema":"Missing"},"concurrency":0}}"#,
        );
        let why = messages(check_manifest_with(&t, Rules::Format));
        for expected in [
            "state.drafts.schema: state 'drafts' schema: unknown schema 'Gone'",
            "feeds.F.event: feed 'F' event: unknown schema 'Lost'",
            "jobs.j.payload: job 'j' payload: unknown schema 'Missing'",
            "jobs.j.concurrency: concurrency must be >= 1",
        ] {
            assert!(why.contains(expected), "{expected}\n{why}");
        }
        let bad_kind = text(r#","state":{"s":{"kind":"list","schema":{"schema":"Note"}}}"#);
        let why = messages(check_manifest_with(&bad_kind, Rules::Format));
        assert!(
            why.starts_with("state.s.kind: unknown variant `list`"),
            "{why}"
        );
    }

    #[test]
    fn multi_segment_names_and_builtins_pass_the_format_rules() {
        let t = text(RPC);
        let checked = format_ok(&t);
        assert!(checked.manifest.rpc.contains_key("Auth.Capabilities.List"));
        // The macro's own rules stay stricter.
        let why = messages(check_manifest(&t));
        for expected in [
            "`Auth.Capabilities.List` is not a `<Group>.<Leaf>` PascalCase name",
            "undeclared capability `admin`",
            "undeclared capability `service`",
            "error type `UnexpectedError` is not declared in `errors`",
            "error type `TransferError` is not declared in `errors`",
        ] {
            assert!(why.contains(expected), "{expected}\n{why}");
        }
    }

    #[test]
    fn undeclared_errors_and_capabilities_are_still_refused() {
        let t = text(RPC)
            .replace(r#""admin","service""#, r#""notes::write""#)
            .replace("UnexpectedError", "NotesError");
        let why = messages(check_manifest_with(&t, Rules::Format));
        assert!(
            why.contains("undeclared capability `notes::write`"),
            "{why}"
        );
        assert!(
            why.contains(
                "rpc 'Auth.Capabilities.List' error type `NotesError` is not declared in `errors`"
            ),
            "{why}"
        );
        let empty_name = text(RPC).replace("Auth.Capabilities.List\":{", "\":{");
        let why = messages(check_manifest_with(&empty_name, Rules::Format));
        assert!(why.contains("names must not be empty"), "{why}");
    }

    #[test]
    fn unknown_fields_are_dropped_under_the_format_rules() {
        let plain = text(RPC);
        let t = plain.replacen('{', r#"{"surprise":{"x":[1]},"#, 1).replace(
            r#""input":{"schema":"Query"}"#,
            r#""input":{"schema":"Query","note":"x"},"timeoutMs":5"#,
        );
        let checked = format_ok(&t);
        assert_eq!(
            checked.ignored,
            [
                r#"rpc."Auth.Capabilities.List".input.note"#,
                r#"rpc."Auth.Capabilities.List".timeoutMs"#,
                "surprise",
            ]
        );
        assert_eq!(checked.digest, format_ok(&plain).digest);
        // The DSL rules keep objects closed.
        let why = messages(check_manifest(&t));
        assert!(why.contains("unknown field `surprise`"), "{why}");
    }

    #[test]
    fn removed_concepts_are_refused_under_both_rules() {
        let t = text(r#","subjects":{}"#);
        for rules in [Rules::Format, Rules::Dsl] {
            let why = messages(check_manifest_with(&t, rules));
            assert!(
                why.starts_with("subjects: raw subjects do not exist"),
                "{why}"
            );
        }
    }
}
