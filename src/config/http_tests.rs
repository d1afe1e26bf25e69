//! Tests of `[http]` parsing and validation.

use super::*;
use figment::providers::{Format, Toml};

fn parse(toml: &str) -> Result<HttpConfig, String> {
    figment::Figment::from(Toml::string(toml))
        .extract::<HttpConfig>()
        .map_err(|e| e.to_string())
}

const MIN: &str = r#"
    listen = "127.0.0.1:0"
    [[backends]]
    name = "wa1"
    address = "127.0.0.1:8081"
"#;

#[test]
fn minimal_gets_defaults() {
    let c = parse(MIN).unwrap();
    assert_eq!(c.balance, Balance::Roundrobin);
    assert_eq!(c.retries, DEFAULT_RETRIES);
    assert_eq!(c.retry_on, [RetryOn::ConnFailure]);
    assert_eq!(c.health.rise, DEFAULT_RISE);
    assert_eq!(c.timeouts.server, DEFAULT_SERVER_TIMEOUT);
    assert_eq!(c.backends[0].weight, 1);
    assert!(c.validate().is_ok());
}

#[test]
fn retry_on_takes_haproxy_keywords() {
    let c = parse(&format!(
        "retry_on = [\"conn-failure\", \"empty-response\"]\n{MIN}"
    ))
    .unwrap();
    assert_eq!(c.retry_on, [RetryOn::ConnFailure, RetryOn::EmptyResponse]);
    assert!(parse(&format!("retry_on = []\n{MIN}"))
        .unwrap()
        .retry_on
        .is_empty());
    let e = parse(&format!("retry_on = [\"response-timeout\"]\n{MIN}")).unwrap_err();
    assert!(e.contains("response-timeout"), "{e}");
}

#[test]
fn unknown_key_is_an_error() {
    let e = parse(&format!("{MIN}\nwieght = 3")).unwrap_err();
    assert!(e.contains("wieght"), "{e}");
}

#[test]
fn durations_and_balance_parse() {
    let c = parse(&format!(
        "balance = \"random2\"\n{MIN}\n[timeouts]\nserver = \"1500ms\"\n"
    ))
    .unwrap();
    assert_eq!(c.balance, Balance::Random2);
    assert_eq!(c.timeouts.server, Duration::from_millis(1500));
}

#[test]
fn the_documented_example_parses_and_validates() {
    let doc = include_str!("../../docs/http.md");
    let start = doc.find("```toml\n[http]").expect("example block") + "```toml\n".len();
    let block = &doc[start..];
    let block = &block[..block.find("```").expect("end of block")];
    let c: HttpConfig = figment::Figment::from(Toml::string(block))
        .focus("http")
        .extract()
        .unwrap();
    c.validate().unwrap();
    assert_eq!(c.backends.len(), 2);
    assert_eq!(
        c.stats.as_ref().map(|s| s.uri.as_str()),
        Some(DEFAULT_STATS_URI)
    );
    assert_eq!(c.health, HealthCheck::default());
    assert_eq!(c.timeouts, Timeouts::default());
    assert_eq!(c.max_header_size, DEFAULT_MAX_HEADER_SIZE);
    assert_eq!(c.max_body_size, DEFAULT_MAX_BODY_SIZE);
    assert_eq!(c.threads, AUTO_THREADS);
    assert_eq!(c.retry_on, DEFAULT_RETRY_ON);
    assert_eq!(
        (c.retries, c.maxconn, c.max_queue, c.pool_max_idle),
        (
            DEFAULT_RETRIES,
            DEFAULT_MAXCONN,
            DEFAULT_MAX_QUEUE,
            DEFAULT_POOL_MAX_IDLE
        )
    );
}

#[test]
fn cidrs_match_their_block_only() {
    let c = Cidr::parse("10.0.0.0/8").unwrap();
    assert!(c.contains("10.200.1.2".parse().unwrap()));
    assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
    assert!(!c.contains("11.0.0.1".parse().unwrap()));
    assert!(!c.contains("::1".parse().unwrap()));
    let one = Cidr::parse("192.0.2.7").unwrap();
    assert!(one.contains("192.0.2.7".parse().unwrap()));
    assert!(!one.contains("192.0.2.8".parse().unwrap()));
    assert!(Cidr::parse("0.0.0.0/0")
        .unwrap()
        .contains("8.8.8.8".parse().unwrap()));
    assert!(Cidr::parse("fd00::/8")
        .unwrap()
        .contains("fd12::1".parse().unwrap()));
    assert!(Cidr::parse("10.0.0.0/33").is_err());
    assert!(Cidr::parse("shop").is_err());
}

#[test]
fn validate_names_the_key() {
    let mut c = parse(MIN).unwrap();
    c.backends.push(c.backends[0].clone());
    assert_eq!(c.validate().unwrap_err().key, "http.backends[1].name");
    c.backends.pop();
    c.backends[0].address = "nohost".into();
    assert_eq!(c.validate().unwrap_err().key, "http.backends[0].address");
    c.backends[0].address = "h:1".into();
    c.health.fall = 0;
    assert_eq!(c.validate().unwrap_err().key, "http.health.rise/fall");
    c.health.fall = 1;
    c.stats = parse(&format!(
        "{MIN}\n[stats]\ntls = true\nuser = \"a\"\npassword = \"p\"\n"
    ))
    .unwrap()
    .stats;
    assert_eq!(c.validate().unwrap_err().key, "http.stats.tls");
    c.stats = None;
    let tls = "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nredirect_from = \"127.0.0.1:80\"\n";
    let mut t = parse(&format!(
        "{}\n{tls}",
        MIN.replace("127.0.0.1:0", "127.0.0.1:80")
    ))
    .unwrap();
    assert_eq!(t.validate().unwrap_err().key, "http.tls.redirect_from");
    t.listen = "127.0.0.1:443".parse().unwrap();
    assert!(t.validate().is_ok());
}
