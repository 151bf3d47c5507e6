//! Checking any manifest file: JSON syntax, removed v1 concepts, the typed
//! shape (unknown fields rejected with their path), and the semantic rules.

use crate::digest;
use crate::json::Json;
use crate::manifest::Manifest;
use crate::validate::{Issue, validate};

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
}

/// Checks manifest text.
pub fn check_manifest(text: &str) -> Result<Checked, CheckError> {
    let json = Json::parse(text)?;
    let rejected = rejected_concepts(&json);
    if !rejected.is_empty() {
        return Err(CheckError::Invalid(rejected));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let manifest: Manifest =
        serde_path_to_error::deserialize(&mut de).map_err(|e| CheckError::Shape {
            path: shape_path(e.path()),
            message: e.into_inner().to_string(),
        })?;
    let issues = validate(&manifest);
    if !issues.is_empty() {
        return Err(CheckError::Invalid(issues));
    }
    let canonical_text = format!("{}\n", json.to_canonical_string());
    Ok(Checked {
        digest: digest::digest(&json),
        canonical: canonical_text == text,
        manifest,
    })
}

/// Renders a deserialization path like [`Issue::path_string`]: dotted, with
/// keys that contain dots quoted (`rpc."Files.List".input`).
fn shape_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let parts: Vec<String> = path
        .iter()
        .filter_map(|segment| match segment {
            Segment::Map { key } if key.contains('.') => Some(format!("\"{key}\"")),
            Segment::Map { key } => Some(key.clone()),
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    if parts.is_empty() {
        "(top level)".to_owned()
    } else {
        parts.join(".")
    }
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
