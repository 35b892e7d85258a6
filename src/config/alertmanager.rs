//! The `[alertmanager]` table of `deadair run` and the endpoint its `url` names: plain data,
//! checked while the configuration is read; the Alertmanager forwarder uses it.

use std::time::Duration;

use serde::Deserialize;

use crate::check::{self, Invalid};

fn default_resend() -> Duration {
    Duration::from_secs(60)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_queue() -> usize {
    10_000
}

/// The `[alertmanager]` table of `deadair run`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Alertmanager's base URL, plain HTTP only, e.g. `http://127.0.0.1:9093` (a path prefix
    /// such as `http://host:9093/alertmanager` is kept; `/api/v2/alerts` is appended).
    pub url: String,
    /// Interval at which firing alerts are sent again (default 60 s). Firing alerts carry
    /// `endsAt = now + 4 × resend_interval`.
    #[serde(
        default = "default_resend",
        deserialize_with = "check::positive_std_duration"
    )]
    pub resend_interval: Duration,
    /// Upper bound on one request (connect, send, response) (default 10 s).
    #[serde(
        default = "default_timeout",
        deserialize_with = "check::positive_std_duration"
    )]
    pub timeout: Duration,
    /// Alerts held for Alertmanager at most (firing ones being re-sent plus resolved ones not
    /// yet delivered), count (default 10000).
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    /// `generatorURL` of every alert (a URL). Default: `http://<metrics_addr>/`, or none when
    /// `metrics_addr` is "" (set it when `metrics_addr` binds a wildcard address).
    #[serde(default)]
    pub generator_url: Option<String>,
}

impl AlertmanagerConfig {
    /// Checks the table and fills in the default `generator_url` (errors name the key; the
    /// caller adds the file).
    pub fn validate(&mut self, metrics_addr: &str) -> Result<(), Invalid> {
        Endpoint::parse(&self.url).map_err(|e| Invalid(format!("[alertmanager] `url`: {e}")))?;
        if self.max_queue == 0 {
            return Err(Invalid(
                "[alertmanager] `max_queue` must be at least 1".into(),
            ));
        }
        match &self.generator_url {
            Some(u) if !u.is_empty() && !u.starts_with("http://") && !u.starts_with("https://") => {
                return Err(Invalid(format!(
                    "[alertmanager] `generator_url`: expected an http:// or https:// URL, found `{u}`"
                )));
            }
            Some(_) => {}
            None => {
                self.generator_url = Some(if metrics_addr.is_empty() {
                    String::new()
                } else {
                    format!("http://{metrics_addr}/")
                });
            }
        }
        Ok(())
    }
}

/// Where alerts are POSTed: host, port and the path of the v2 alerts endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// `Host` header value.
    pub authority: String,
    /// e.g. `/api/v2/alerts`.
    pub path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, Invalid> {
        let bad = |what: &str| Invalid(format!("`{url}`: {what}"));
        let rest = match url.strip_prefix("http://") {
            Some(r) => r,
            None if url.starts_with("https://") => {
                return Err(bad(
                    "https is not supported (deadair speaks plain HTTP to Alertmanager; \
                     use http://, e.g. to Alertmanager on loopback or to a local TLS proxy)",
                ))
            }
            None => return Err(bad("expected http://host:port")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(bad("no query or fragment expected"));
        }
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed `[` in the host"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad(&format!("unexpected `{after}` after the host"))),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(&format!("bad port `{p}`")))?,
        };
        Ok(Endpoint {
            host: host.to_string(),
            port,
            authority: authority.to_string(),
            path: format!("{}/api/v2/alerts", path.trim_end_matches('/')),
        })
    }
}
