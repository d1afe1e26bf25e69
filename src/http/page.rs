//! Rendering of the stats: an HTML table in the spirit of HAProxy's stats
//! page (worker, state, weight, active, requests, 2xx/4xx/5xx, errors, last
//! check, latency, with drain/ready/maint buttons) and the same rows as
//! JSON. Pure formatting over a snapshot of the counters.

use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

use serde_json::{json, Value};

use super::stats::Stats;
use super::upstream::Backend;

/// One worker as JSON (also the answer to a control POST).
pub fn backend_json(b: &Backend) -> Value {
    let s = &b.stats;
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let requests = l(&s.requests);
    let avg_ms = if requests == 0 {
        0.0
    } else {
        l(&s.latency_us_total) as f64 / requests as f64 / 1000.0
    };
    let check = b.last_check.lock().map(|c| c.clone()).unwrap_or_default();
    json!({
        "name": b.name,
        "address": b.address,
        "state": b.state_label(),
        "admin": b.admin_state().to_string(),
        "healthy": b.is_healthy(),
        "weight": b.weight,
        "maxconn": b.maxconn,
        "active": b.active(),
        "idle_connections": b.idle_connections(),
        "requests": requests,
        "responses": {
            "1xx": l(&s.status_1xx), "2xx": l(&s.status_2xx), "3xx": l(&s.status_3xx),
            "4xx": l(&s.status_4xx), "5xx": l(&s.status_5xx),
        },
        "errors": {
            "connect": l(&s.connect_errors),
            "response": l(&s.response_errors),
            "timeout": l(&s.timeouts),
            "total": s.errors(),
        },
        "retries": l(&s.retries),
        "avg_response_ms": avg_ms,
        "last_check": {
            "result": check.result,
            "at_unix": check.at.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs()),
            "latency_ms": check.latency.as_secs_f64() * 1000.0,
        },
    })
}

/// The whole stats document.
pub fn json(stats: &Stats) -> Value {
    let f = &stats.frontend;
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    json!({
        "control_token": stats.control_token(),
        "frontend": {
            "requests": l(&f.requests),
            "connections": f.connections.load(Ordering::Relaxed),
            "queued": stats.ups.queued(),
            "proxy_errors": l(&f.proxy_errors),
            "tls_failures": l(&f.tls_failures),
            "responses": {
                "2xx": l(&f.status_2xx), "3xx": l(&f.status_3xx),
                "4xx": l(&f.status_4xx), "5xx": l(&f.status_5xx),
            },
        },
        "backends": stats.ups.backends().iter().map(|b| backend_json(b)).collect::<Vec<_>>(),
    })
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The HTML page.
pub fn html(stats: &Stats, uri: &str) -> String {
    let doc = json(stats);
    let f = &doc["frontend"];
    let mut o = String::new();
    o.push_str(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>sqlproxy HTTP statistics</title>\
         <style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}\
         th,td{border:1px solid #999;padding:2px 6px;text-align:right}th{background:#ddf}\
         td.l{text-align:left}tr.UP{background:#cfc}tr.DOWN{background:#fcc}\
         tr.DRAIN{background:#ccf}tr.MAINT{background:#ccc}</style></head><body>\
         <h1>sqlproxy HTTP balancer</h1>",
    );
    o.push_str(&format!(
        "<p>Frontend: {} requests, {} connections open, {} queued, {} balancer errors \
         (2xx {}, 3xx {}, 4xx {}, 5xx {}). <a href=\"{}.json\">JSON</a></p>",
        f["requests"],
        f["connections"],
        f["queued"],
        f["proxy_errors"],
        f["responses"]["2xx"],
        f["responses"]["3xx"],
        f["responses"]["4xx"],
        f["responses"]["5xx"],
        esc(uri)
    ));
    o.push_str(
        "<table><tr><th>Worker</th><th>Address</th><th>State</th><th>Weight</th>\
         <th>Active</th><th>Max</th><th>Requests</th><th>2xx</th><th>3xx</th><th>4xx</th>\
         <th>5xx</th><th>Errors</th><th>Retries</th><th>Last check</th><th>Check latency</th>\
         <th>Avg response</th><th>Action</th></tr>",
    );
    if let Some(rows) = doc["backends"].as_array() {
        for b in rows {
            let name = b["name"].as_str().unwrap_or("");
            let state = b["state"].as_str().unwrap_or("");
            let class = state.split(' ').next().unwrap_or("");
            let r = &b["responses"];
            o.push_str(&format!(
                "<tr class=\"{}\"><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{:.1} ms</td>\
                 <td>{:.1} ms</td><td class=\"l\">",
                esc(class), esc(name), esc(b["address"].as_str().unwrap_or("")), esc(state),
                b["weight"], b["active"], b["maxconn"], b["requests"],
                r["2xx"], r["3xx"], r["4xx"], r["5xx"],
                b["errors"]["total"], b["retries"],
                esc(b["last_check"]["result"].as_str().unwrap_or("")),
                b["last_check"]["latency_ms"].as_f64().unwrap_or(0.0),
                b["avg_response_ms"].as_f64().unwrap_or(0.0),
            ));
            for action in ["drain", "ready", "maint"] {
                o.push_str(&format!(
                    "<form method=\"post\" action=\"{}/backends/{}/{action}?token={}\" style=\"display:inline\">\
                     <button>{action}</button></form>",
                    esc(uri),
                    esc(name),
                    esc(stats.control_token())
                ));
            }
            o.push_str("</td></tr>");
        }
    }
    o.push_str("</table></body></html>\n");
    o
}
