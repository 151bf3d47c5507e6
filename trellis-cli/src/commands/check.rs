//! `trellis contract check <file>...`: validates manifests against the
//! published `trellis.contract.v1` format ([`Rules::Format`]: lenient where
//! the format is, e.g. unknown fields are dropped with a warning),
//! optionally against the published JSON Schema too.

use std::path::Path;

use anyhow::{Context as _, bail};
use trellis_manifest::{CheckError, Checked, Rules, check_manifest_with};

use crate::cli::CheckArgs;
use crate::commands::read_text;
use crate::outcome::Outcome;

/// The note printed after `ok` lines for valid but non-canonical files.
pub const NOT_CANONICAL: &str = "(not canonical: re-emit to normalize)";

/// The warning printed for an unknown field.
pub const IGNORED: &str = "unknown field, ignored (not part of trellis.contract.v1)";

/// Runs the command. Prints `ok  <id>  <digest>  <file>` per valid file on
/// stdout, and every problem as `<file>: <problem>` and every dropped
/// unknown field as `<file>: warning: ...` on stderr.
pub fn run(args: &CheckArgs) -> anyhow::Result<Outcome> {
    let schema = args.schema.as_deref().map(load_schema).transpose()?;
    let mut outcome = Outcome::Ok;
    for path in &args.files {
        let text = match read_text(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("trellis: {e:#}");
                outcome = outcome.max(Outcome::UsageOrIo);
                continue;
            }
        };
        let shown = path.display();
        match check_file(&text, schema.as_ref(), args.strict_canonical) {
            Ok(checked) => {
                for path in &checked.ignored {
                    eprintln!("{shown}: warning: {path}: {IGNORED}");
                }
                let note = if checked.canonical {
                    String::new()
                } else {
                    format!("  {NOT_CANONICAL}")
                };
                println!(
                    "ok  {}  {}  {shown}{note}",
                    checked.manifest.id, checked.digest
                );
            }
            Err(problems) => {
                for problem in problems {
                    eprintln!("{shown}: {problem}");
                }
                outcome = outcome.max(Outcome::Invalid);
            }
        }
    }
    Ok(outcome)
}

/// Checks one manifest text under [`Rules::Format`]; on failure returns
/// every problem found.
pub(crate) fn check_file(
    text: &str,
    schema: Option<&jsonschema::Validator>,
    strict_canonical: bool,
) -> Result<Checked, Vec<String>> {
    let checked = check_manifest_with(text, Rules::Format);
    let mut problems = match &checked {
        Ok(_) => Vec::new(),
        Err(CheckError::Invalid(issues)) => issues.iter().map(ToString::to_string).collect(),
        Err(other) => vec![other.to_string()],
    };
    // JSON Schema errors complement ours; skip them when the text is not JSON.
    if let Some(validator) = schema
        && let Ok(instance) = serde_json::from_str::<serde_json::Value>(text)
    {
        problems.extend(validator.iter_errors(&instance).map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() {
                "(top level)".to_owned()
            } else {
                at
            };
            format!("schema: {at}: {e}")
        }));
    }
    match checked {
        Ok(c) if problems.is_empty() => {
            if strict_canonical && !c.canonical {
                Err(vec![
                    "not canonical (sorted keys, no whitespace, one trailing newline): \
                     re-emit to normalize (--strict-canonical)"
                        .to_owned(),
                ])
            } else {
                Ok(c)
            }
        }
        _ => Err(problems),
    }
}

/// Loads and compiles a JSON Schema file.
fn load_schema(path: &Path) -> anyhow::Result<jsonschema::Validator> {
    let text = read_text(path)?;
    let schema: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: schema is not valid JSON", path.display()))?;
    match jsonschema::validator_for(&schema) {
        Ok(v) => Ok(v),
        Err(e) => bail!("{}: not a usable JSON Schema: {e}", path.display()),
    }
}
