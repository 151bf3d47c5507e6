//! Writing a new deployment's files: never over an existing file, and
//! nothing left behind when a write fails.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use trellis_runtime::identity::write_secret;

/// One file to write, relative to the output directory.
pub struct Output {
    /// Path relative to the output directory.
    pub path: PathBuf,
    /// Contents.
    pub text: String,
    /// Secret: readable by its owner only (mode 0600).
    pub secret: bool,
}

impl Output {
    /// A file anyone may read.
    pub fn public(path: impl Into<PathBuf>, text: String) -> Output {
        Output {
            path: path.into(),
            text,
            secret: false,
        }
    }

    /// A file only its owner may read.
    pub fn secret(path: impl Into<PathBuf>, text: String) -> Output {
        Output {
            path: path.into(),
            text,
            secret: true,
        }
    }
}

/// Fails, naming the first one, if any of `paths` (relative to `dir`)
/// exists.
pub fn refuse_existing<'a>(
    dir: &Path,
    paths: impl IntoIterator<Item = &'a Path>,
) -> anyhow::Result<()> {
    for path in paths {
        let path = dir.join(path);
        match path.symlink_metadata() {
            Ok(_) => anyhow::bail!(
                "{}: already exists; `trellis authority init` never overwrites a \
                 deployment's files (choose another --out)",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("{}: cannot check", path.display())),
        }
    }
    Ok(())
}

/// Writes every output below `dir`, creating directories; on a failure
/// removes the files already written.
pub fn write_all(dir: &Path, outputs: &[Output]) -> anyhow::Result<()> {
    for (written, output) in outputs.iter().enumerate() {
        if let Err(e) = write_one(&dir.join(&output.path), output) {
            for done in &outputs[..written] {
                let _ = std::fs::remove_file(dir.join(&done.path));
            }
            return Err(e);
        }
    }
    Ok(())
}

fn write_one(path: &Path, output: &Output) -> anyhow::Result<()> {
    if output.secret {
        return Ok(write_secret(path, &output.text)?);
    }
    let context = || format!("{}: cannot write", path.display());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(context)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut file| file.write_all(output.text.as_bytes()))
        .with_context(context)
}
