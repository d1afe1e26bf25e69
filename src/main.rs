//! The `sqlproxy` binary: parse the command line, load and validate the
//! config, start every service, and stop cleanly on SIGTERM or Ctrl-C.
//! `anyhow` is used only here, at the edge.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use sqlproxy::config::Config;
use sqlproxy::server::Server;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "MySQL proxy (one writer, read split) and HTTP balancer for HA shops"
)]
struct Cli {
    /// Path to the TOML config; every key can be overridden by SQLPROXY_* variables.
    #[arg(long, short)]
    config: PathBuf,
    /// Validate the config and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SQLPROXY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let config = Config::load(&cli.config, std::env::vars())
        .with_context(|| format!("invalid config {}", cli.config.display()))?;
    if cli.check {
        println!("{}: configuration is valid", cli.config.display());
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
        if let Some(a) = server.admin_addr() {
            println!("sqlproxy: admin SQL port on {a}");
        }
        if let Some(a) = server.metrics_addr() {
            println!("sqlproxy: Prometheus metrics on http://{a}/metrics");
        }
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing running statements");
            signal.cancel();
        });
        server.run(shutdown).await?;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
