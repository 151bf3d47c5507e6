//! `cargo xtask links`: what each role crate links, checked.
//!
//! A service binary links `trellis-runtime`; it must not compile the Rust
//! parser, the code generator, the manifest model or the control plane. An
//! operator build of the CLI (`--no-default-features`) runs the authority
//! (`trellis authority run`) but must not link the test harness that only
//! `trellis dev` uses.
//! Proc macros run at build time and are not linked, so they are left out
//! (`-e normal,no-proc-macro`).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::cargo;

/// One rule: the normal, linked dependency tree of `package` (with
/// `features` flags) holds none of `forbidden`.
struct Rule {
    package: &'static str,
    features: &'static [&'static str],
    forbidden: &'static [&'static str],
    why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        package: "trellis-runtime",
        features: &[],
        forbidden: &[
            "syn",
            "trellis-codegen",
            "trellis-manifest",
            "trellis-authority",
            "trellis-testing",
        ],
        why: "what a service links: no parser, no manifest model, no control plane, no harness",
    },
    Rule {
        package: "trellis-authority",
        features: &[],
        forbidden: &["syn", "trellis-codegen", "trellis-testing"],
        why: "the control plane reads manifests through trellis-manifest",
    },
    Rule {
        package: "trellis-cli",
        features: &["--no-default-features"],
        forbidden: &["syn", "trellis-codegen", "trellis-testing"],
        why: "an operator build of the CLI; only the `dev` feature links the harness",
    },
];

/// Checks every rule, printing one line per crate.
pub fn check(root: &Path) -> Result<()> {
    let mut broken = Vec::new();
    for rule in RULES {
        let tree = tree(root, rule)?;
        let found: Vec<&str> = rule
            .forbidden
            .iter()
            .copied()
            .filter(|name| tree.iter().any(|dep| dep == name))
            .collect();
        let flags = rule.features.join(" ");
        if found.is_empty() {
            println!(
                "  {} {flags}: links none of {}",
                rule.package,
                rule.forbidden.join(", ")
            );
        } else {
            println!(
                "  {} {flags}: LINKS {} ({})",
                rule.package,
                found.join(", "),
                rule.why
            );
            broken.push(rule.package);
        }
    }
    if !broken.is_empty() {
        bail!("crates link what their role forbids: {}", broken.join(", "));
    }
    Ok(())
}

/// The package names in `rule.package`'s linked dependency tree.
fn tree(root: &Path, rule: &Rule) -> Result<Vec<String>> {
    let mut command: Command = cargo(root);
    command
        .args([
            "tree",
            "--quiet",
            "-p",
            rule.package,
            "-e",
            "normal,no-proc-macro",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .args(rule.features);
    let output = command
        .output()
        .with_context(|| format!("running `cargo tree -p {}`", rule.package))?;
    if !output.status.success() {
        bail!(
            "`cargo tree -p {}` failed: {}",
            rule.package,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}
