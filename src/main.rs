//! The `sqlproxy` binary: parse the command line (`cli.rs`), load and
//! validate the config, start every service, tell systemd when it is ready,
//! reload on SIGHUP and stop cleanly on SIGTERM or Ctrl-C. `sqlproxy
//! import-haproxy` translates an HAProxy configuration instead.
//! `anyhow` is used only here, at the edge.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use sqlproxy::cli::{Cli, Command};
use sqlproxy::config::Config;
use sqlproxy::server::Server;
use sqlproxy::systemd;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging()?;

    if let Some(Command::ImportHaproxy { path }) = &cli.command {
        return import_haproxy(path);
    }
    let Some(path) = cli.config else {
        anyhow::bail!("--config is required");
    };
    let config = Config::load(&path, std::env::vars())
        .with_context(|| format!("invalid config {}", path.display()))?;
    if cli.check {
        // The certificate files too: a key that does not match its
        // certificate would otherwise surface only at start.
        sqlproxy::tls::ServerTls::optional("mysql.tls", config.mysql.tls.as_ref())
            .and_then(|_| {
                sqlproxy::tls::ServerTls::optional(
                    "admin.tls",
                    config.admin_enabled().and_then(|a| a.tls.as_ref()),
                )
            })
            .and_then(|_| {
                sqlproxy::http::tls::optional(config.http.as_ref().and_then(|h| h.tls.as_ref()))
            })
            .and_then(|_| sqlproxy::tls::node_targets(&config))
            .with_context(|| format!("invalid config {}", path.display()))?;
        println!("{}: configuration is valid", path.display());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.runtime.threads())
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(config).await?;
        println!("sqlproxy: MySQL clients connect to {}", server.mysql_addr());
        if let Some(a) = server.http_addr() {
            println!("sqlproxy: HTTP balancer on {a}");
        }
        if let Some(a) = server.http_redirect_addr() {
            println!("sqlproxy: redirect to HTTPS on {a}");
        }
        if let Some(a) = server.admin_addr() {
            println!("sqlproxy: admin SQL port on {a}");
        }
        if let Some(a) = server.metrics_addr() {
            println!("sqlproxy: Prometheus metrics on http://{a}/metrics");
        }
        let shutdown = CancellationToken::new();
        let mut ready = server.ready();
        tokio::spawn(async move {
            if ready.wait_for(|done| *done).await.is_ok() {
                tracing::info!("ready: listeners bound, topology discovered");
                systemd::ready();
            }
        });
        if let Some(interval) = systemd::watchdog_interval() {
            tracing::info!(?interval, "systemd watchdog enabled");
            tokio::spawn(systemd::run_watchdog(interval, shutdown.clone()));
        }
        let admin = server.admin_context();
        tokio::spawn(reload_on_sighup(admin));
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing running statements");
            systemd::stopping();
            signal.cancel();
        });
        server.run(shutdown).await?;
        Ok(())
    })
}

/// `sqlproxy import-haproxy FILE`: the translated config on stdout.
fn import_haproxy(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let toml = sqlproxy::import_haproxy::translate(&text, &path.display().to_string())
        .with_context(|| format!("cannot translate {}", path.display()))?;
    print!("{toml}");
    Ok(())
}

/// Each SIGHUP reloads the config exactly as admin `RELOAD CONFIG` does
/// and logs what changed (passwords masked) or why nothing did.
/// Logs go to stdout: text (colours only on a terminal, and not under
/// NO_COLOR), or one JSON object per line with `SQLPROXY_LOG_FORMAT=json`
/// for log shippers.
fn init_logging() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SQLPROXY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match std::env::var("SQLPROXY_LOG_FORMAT").as_deref() {
        Err(_) | Ok("") | Ok("text") => false,
        Ok("json") => true,
        Ok(other) => anyhow::bail!("SQLPROXY_LOG_FORMAT: expected text or json, got {other:?}"),
    };
    // Under systemd stdout goes to the journal, which stamps each line
    // itself and shows colour codes as garbage.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi && !json);
    match (json, journal) {
        (true, _) => log.json().init(),
        (false, true) => log.without_time().init(),
        (false, false) => log.init(),
    }
    Ok(())
}

async fn reload_on_sighup(admin: std::sync::Arc<sqlproxy::admin::AdminContext>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP: reload only through the admin port");
            return;
        }
    };
    while hup.recv().await.is_some() {
        systemd::reloading();
        match sqlproxy::admin::reload_config(&admin) {
            Ok(report) => {
                for c in &report.changes {
                    tracing::info!(
                        key = %c.key,
                        running = c.running.as_deref().unwrap_or("(none)"),
                        file = c.file.as_deref().unwrap_or("(none)"),
                        status = c.status(),
                        "SIGHUP: config key changed"
                    );
                }
                let restart = report.changes.iter().filter(|c| !c.applied).count();
                tracing::info!(
                    path = %report.path.display(),
                    changes = report.changes.len(),
                    restart_needed = restart,
                    "SIGHUP: config reloaded"
                );
                systemd::reloaded("serving; config reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: config not reloaded");
                systemd::reloaded("serving; last reload refused, see the log");
            }
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot listen for Ctrl-C either");
                std::future::pending::<()>().await;
            }
        }
    }
}
