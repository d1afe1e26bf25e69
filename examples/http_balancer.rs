//! Runs only the HTTP balancer from the `[http]` section of a TOML file,
//! until Ctrl-C. `benches/http.sh` uses it until the `sqlproxy` binary
//! starts the balancer itself, and also as the benchmark's worker (a fixed
//! small page, so the workers are never the bottleneck being measured):
//!
//!     cargo run --release --example http_balancer -- config.toml
//!     cargo run --release --example http_balancer -- --worker wa1 127.0.0.1:8081

use std::process::ExitCode;

use figment::providers::{Format, Toml};
use sqlproxy::config::HttpConfig;
use sqlproxy::http::HttpService;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    // BALANCER_RUNTIME=current runs everything on one thread (for comparison).
    let rt = match std::env::var("BALANCER_RUNTIME").as_deref() {
        Ok("current") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    match rt {
        Ok(rt) => rt.block_on(real_main()),
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn real_main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.as_slice() {
        [flag, name, addr] if flag == "--worker" => return worker(name.clone(), addr).await,
        [path] => path.clone(),
        _ => {
            eprintln!("usage: http_balancer CONFIG.toml | --worker NAME ADDR");
            return ExitCode::from(2);
        }
    };
    let cfg: HttpConfig = match figment::Figment::from(Toml::file_exact(&path))
        .focus("http")
        .extract()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    let svc = match HttpService::bind(cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", svc.local_addr());
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            t.cancel();
        }
    });
    match svc.run(token).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// A minimal HTTP/1.1 worker: every request gets a ~600-byte page naming it.
async fn worker(name: String, addr: &str) -> ExitCode {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bind {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let page = Bytes::from(format!(
        "<html><body><h1>Served by worker {name}</h1>{}</body></html>\n",
        "<p>lorem ipsum dolor sit amet</p>".repeat(16)
    ));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let page = page.clone();
        let name = name.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |_req| {
                let resp = hyper::Response::builder()
                    .header("content-type", "text/html")
                    .header("x-worker", name.as_str())
                    .body(Full::new(page.clone()));
                async move { resp }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
