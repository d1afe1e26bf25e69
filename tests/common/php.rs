//! Runs the PHP scripts in `tests/php/` with `php-cli`: the shop's own
//! drivers (PDO and mysqli over mysqlnd) as clients, next to mysql_async.
//! Scripts print `key=value` lines; [`key_values`] reads them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `tests/php/<script>`.
pub fn script_path(script: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/php")
        .join(script)
}

/// Runs `php tests/php/<script> args...`: `Ok(stdout)` when it exits 0,
/// `Err(stderr)` otherwise (the script's error, for asserting on it).
/// Panics if php itself cannot be started (scripts/test.sh installs it).
pub fn run(script: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("php")
        .arg(script_path(script))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run php (apt-get install php-cli php-mysql): {e}"));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "php {script} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `key=value` lines → map (later keys win; other lines are ignored).
pub fn key_values(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
