//! The command line: `sqlproxy --config FILE`, `sqlproxy --check --config
//! FILE` and `sqlproxy import-haproxy FILE`. It lives in the library, not in
//! `main.rs`, so the man page (`config/sqlproxy.1`) is generated from the same
//! definition and a test keeps the two equal: `--help` says everything the
//! man page says, section for section.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `sqlproxy --version`: the crate version and the commit it was built from
/// (`build.rs`; "unknown" for a build without git).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SQLPROXY_COMMIT"),
    ")"
);

const ABOUT: &str = "MySQL proxy (one writer, read split) and HTTP balancer for HA shops";

const LONG_ABOUT: &str = "\
MySQL proxy (one writer, read split) and HTTP balancer for HA shops.

sqlproxy speaks the MySQL protocol to the shop's PHP workers and sends every \
write, transaction and session-dependent statement to the one active master, \
while plain reads are balanced over the healthy nodes. It health-checks the \
nodes, fences all but the master with read_only, fails over and switches over, \
and balances HTTP requests over the web workers. It replaces the two HAProxies \
of the classic setup; `sqlproxy import-haproxy` translates their configuration.

Run `sqlproxy --config /etc/sqlproxy/ha.toml`; under systemd the unit \
`sqlproxy.service` does, after `sqlproxy --check`. Every key of the file is \
documented in the shipped example.";

/// One titled part of the long help and of the man page (FILES, SIGNALS...):
/// entries of a term and what it means.
pub struct HelpSection {
    pub title: &'static str,
    pub entries: &'static [(&'static str, &'static str)],
}

/// What the man page says beyond the options; `--help` prints the same.
pub const SECTIONS: &[HelpSection] = &[
    HelpSection {
        title: "FILES",
        entries: &[
            ("/etc/sqlproxy/ha.toml", "The configuration (TOML; every key commented). Installed readable only by root and the sqlproxy user: it holds passwords."),
            ("/usr/lib/systemd/system/sqlproxy.service", "The systemd unit: runs as the sqlproxy user, sandboxed, Type=notify, reload on SIGHUP."),
            ("/usr/share/sqlproxy/grafana/sqlproxy.json", "A Grafana dashboard over the Prometheus metrics."),
            ("/usr/share/sqlproxy/prometheus/alerts.yml", "Prometheus alert rules (master down, no writer, two writers, replication, semi-sync, pool, HTTP workers)."),
            ("/usr/share/doc/sqlproxy/", "README.md and the operator guides: admin, failover, cache, http, migration from HAProxy."),
        ],
    },
    HelpSection {
        title: "ENVIRONMENT",
        entries: &[
            ("SQLPROXY_<SECTION>__<KEY>", "Overrides a key of the file, e.g. SQLPROXY_MYSQL__LISTEN=0.0.0.0:3306, SQLPROXY_NODES__CN2__WEIGHT=5, SQLPROXY_ADMIN__PASSWORD=... (keeps secrets out of the file)."),
            ("SQLPROXY_LOG", "Log filter (tracing syntax): info (default), debug (each statement's node, route and reason), warn."),
            ("SQLPROXY_LOG_FORMAT", "text (default; colours only on a terminal, never under NO_COLOR) or json (one JSON object per line, for log shippers)."),
            ("NOTIFY_SOCKET", "Set by systemd: READY=1 is sent once every listener is bound and the first topology discovery is done; RELOADING=1 and STOPPING=1 follow reloads and shutdown."),
            ("WATCHDOG_USEC", "Set by systemd's WatchdogSec=: the runtime pings the watchdog at half that interval. Without it, no pings."),
        ],
    },
    HelpSection {
        title: "SIGNALS",
        entries: &[
            ("SIGTERM, SIGINT", "Stop accepting clients, let running statements finish (mysql.shutdown_timeout), exit."),
            ("SIGHUP", "Reload the configuration file, exactly as the admin command RELOAD CONFIG: a file that does not validate changes nothing; node weights and the admin account apply live, other changes are logged as needing a restart."),
        ],
    },
    HelpSection {
        title: "EXIT STATUS",
        entries: &[
            ("0", "Stopped on a signal, or --check found the configuration valid, or import-haproxy wrote its output."),
            ("1", "The configuration is invalid (the message names the key), a listener could not be bound, or the HAProxy file could not be read or parsed (the message names the line)."),
            ("2", "Wrong command line."),
        ],
    },
    HelpSection {
        title: "SEE ALSO",
        entries: &[
            ("systemctl reload sqlproxy", "Sends SIGHUP after sqlproxy --check passed."),
            ("mariadb -h127.0.0.1 -P6032 -uadmin -p", "The admin SQL port: SHOW BACKENDS, SWITCHOVER TO, RELOAD CONFIG (docs/admin.md)."),
            ("haproxy(1), systemd.service(5), systemd.exec(5)", ""),
        ],
    },
];

#[derive(Parser, Debug)]
#[command(
    name = "sqlproxy",
    version = VERSION,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = after_long_help(),
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Path to the TOML config; every key can be overridden by SQLPROXY_* variables.
    #[arg(long, short, value_name = "FILE", required = true)]
    pub config: Option<PathBuf>,
    /// Validate the config (file and SQLPROXY_* variables) and exit: the pre-flight of ExecStartPre.
    #[arg(long)]
    pub check: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Translate an HAProxy configuration (a TCP listen with option mysql-check,
    /// an HTTP frontend/backend) into a commented sqlproxy config on standard output.
    ImportHaproxy {
        /// The HAProxy configuration, e.g. /etc/haproxy/haproxy.cfg.
        #[arg(value_name = "HAPROXY_CFG")]
        path: PathBuf,
    },
}

/// The sections as `--help` prints them after the options.
fn after_long_help() -> String {
    let mut out = String::new();
    for s in SECTIONS {
        out.push_str(&format!("{}:\n", title_case(s.title)));
        for (term, text) in s.entries {
            out.push_str(&format!("  {term}\n"));
            if !text.is_empty() {
                out.push_str(&format!("          {text}\n"));
            }
        }
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// "EXIT STATUS" → "Exit status".
fn title_case(title: &str) -> String {
    let lower = title.to_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The man page: clap_mangen's sections for the name, synopsis,
    /// description, options and commands, then [`SECTIONS`] as `.TP` lists.
    /// The version line carries no commit, so the file changes only when
    /// the CLI does.
    fn man_page() -> String {
        let cmd = Cli::command().version(env!("CARGO_PKG_VERSION"));
        let man = clap_mangen::Man::new(cmd.clone());
        let mut out = Vec::new();
        type Part = fn(&clap_mangen::Man, &mut dyn std::io::Write) -> std::io::Result<()>;
        let parts: [Part; 5] = [
            clap_mangen::Man::render_title,
            clap_mangen::Man::render_name_section,
            clap_mangen::Man::render_synopsis_section,
            clap_mangen::Man::render_description_section,
            clap_mangen::Man::render_options_section,
        ];
        for part in parts {
            part(&man, &mut out).unwrap();
        }
        let mut roff = roff::Roff::new();
        roff.control("SH", ["COMMANDS"]);
        for sub in cmd.get_subcommands() {
            let args: Vec<String> = sub
                .get_positionals()
                .map(|a| format!("<{}>", a.get_value_names().unwrap_or_default().join(" ")))
                .collect();
            roff.control("TP", []);
            roff.text([roff::bold(format!(
                "sqlproxy {} {}",
                sub.get_name(),
                args.join(" ")
            ))]);
            roff.text([roff::roman(
                sub.get_about().map(|a| a.to_string()).unwrap_or_default(),
            )]);
        }
        for s in SECTIONS {
            roff.control("SH", [s.title]);
            for (term, text) in s.entries {
                roff.control("TP", []);
                roff.text([roff::bold(*term)]);
                if !text.is_empty() {
                    roff.text([roff::roman(*text)]);
                }
            }
        }
        roff.to_writer(&mut out).unwrap();
        man.render_version_section(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// `config/sqlproxy.1` is what the CLI says; `UPDATE_MAN=1 cargo test
    /// --lib cli` rewrites it after a change.
    #[test]
    fn man_page_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sqlproxy.1");
        let want = man_page();
        if std::env::var_os("UPDATE_MAN").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "config/sqlproxy.1 is stale: run `UPDATE_MAN=1 cargo test --lib cli`"
        );
    }

    #[test]
    fn long_help_says_what_the_man_page_says() {
        let help = Cli::command().render_long_help().to_string();
        for s in SECTIONS {
            assert!(help.contains(&title_case(s.title)), "{}", s.title);
            for (term, text) in s.entries {
                assert!(help.contains(term) && help.contains(text), "{term}");
            }
        }
        assert!(help.contains("import-haproxy") && help.contains("--check"));
    }

    #[test]
    fn config_is_required_unless_a_command_is_given() {
        let parse = |args: &[&str]| Cli::try_parse_from(args);
        assert!(parse(&["sqlproxy"]).is_err());
        let c = parse(&["sqlproxy", "--config", "x.toml"]).unwrap();
        assert_eq!(c.config, Some(PathBuf::from("x.toml")));
        let c = parse(&["sqlproxy", "-c", "x.toml", "--check"]).unwrap();
        assert!(c.check && c.command.is_none());
        let c = parse(&["sqlproxy", "import-haproxy", "/etc/haproxy/haproxy.cfg"]).unwrap();
        assert!(matches!(c.command, Some(Command::ImportHaproxy { .. })));
        assert!(parse(&["sqlproxy", "--check", "import-haproxy", "x.cfg"]).is_err());
    }

    #[test]
    fn version_names_the_commit() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")));
        assert!(VERSION.contains("(commit "), "{VERSION}");
    }
}
