//! `trellis contract digest <file>...`: prints `<digest>  <file>` per file.

use trellis_manifest::Json;

use crate::cli::DigestArgs;
use crate::commands::read_text;
use crate::outcome::Outcome;

/// Runs the command. Every file is processed; problems go to stderr and
/// the worst [`Outcome`] decides the exit code.
pub fn run(args: &DigestArgs) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::Ok;
    for path in &args.files {
        let shown = path.display();
        let text = match read_text(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("trellis: {e:#}");
                outcome = outcome.max(Outcome::UsageOrIo);
                continue;
            }
        };
        match digest_of(&text) {
            Ok(digest) => println!("{digest}  {shown}"),
            Err(why) => {
                eprintln!("{shown}: {why}");
                outcome = outcome.max(Outcome::Invalid);
            }
        }
    }
    Ok(outcome)
}

/// The digest of manifest text; any JSON object is accepted (the digest
/// projection drops fields it does not know).
fn digest_of(text: &str) -> Result<String, String> {
    let json = Json::parse(text).map_err(|e| format!("not valid JSON: {e}"))?;
    if json.as_object().is_none() {
        return Err("not a manifest: the top level must be a JSON object".to_owned());
    }
    Ok(trellis_manifest::digest(&json))
}
