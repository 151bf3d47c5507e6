//! `trellis contract digest <file>...`: prints `<digest>  <file>` per file.

use crate::cli::DigestArgs;
use crate::commands::check::check_file;
use crate::commands::read_text;
use crate::outcome::Outcome;

/// Runs the command. Every file is processed; a manifest `trellis contract
/// check` rejects gets no digest, its problems go to stderr with the same
/// messages, and the worst [`Outcome`] decides the exit code.
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
        match check_file(&text, None, false) {
            Ok(checked) => println!("{}  {shown}", checked.digest),
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
