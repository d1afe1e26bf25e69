//! Build script: records which commit the binary was built from, for
//! `sqlproxy --version`. The commit comes from `SQLPROXY_COMMIT` when set
//! (a build from a tarball or a packaging system that knows it), else from
//! `git rev-parse`, else it is "unknown": a build without git must not fail.

use std::process::Command;

/// Hex digits of the commit shown: enough to be unique in this repository
/// for years, short enough to read out loud.
const COMMIT_DIGITS: &str = "--short=12";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SQLPROXY_COMMIT");
    let commit = std::env::var("SQLPROXY_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SQLPROXY_COMMIT={}", commit.trim());
}

/// `git <args>` in the package directory; `None` if git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The commit of HEAD, and rerun triggers for when HEAD moves: the HEAD file,
/// the branch's ref file and packed-refs (worktrees keep them apart, so git
/// itself says where each one is). Only files that exist are named, because
/// cargo reruns the script on every build for a path that does not.
fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", COMMIT_DIGITS, "HEAD"])?;
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    Some(commit)
}
