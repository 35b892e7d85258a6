//! The `[alertmanager]` table of `deadair run` and the endpoint its `url` names: plain data,
//! checked while the configuration is read; the Alertmanager forwarder uses it.

use std::time::Duration;

use serde::Deserialize;

use std::path::PathBuf;

use super::secret::{Secret, SecretRef};
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

/// `basic_auth` as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: SecretRef,
}

/// Credentials sent with every request (the secrets already read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Basic { username: String, password: Secret },
    Bearer(Secret),
}

/// The `[alertmanager]` table of `deadair run`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Alertmanager's base URL, `http://` or `https://`, e.g. `https://am.example:9093` (a
    /// path prefix such as `http://host:9093/alertmanager` is kept; `/api/v2/alerts` is
    /// appended).
    pub url: String,
    /// PEM file of the CA (or CAs) that signed Alertmanager's certificate, trusted besides the
    /// system's roots (optional; https only).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// HTTP basic auth: `{ username = "deadair", password = { env = "AM_PASSWORD" } }`
    /// (the password from the environment or a file, never the config file).
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// A bearer token, `{ env = "AM_TOKEN" }` or `{ file = "/run/secrets/am-token" }`.
    #[serde(default)]
    pub bearer_token: Option<SecretRef>,
    /// The credentials, read while the configuration is checked.
    #[serde(skip)]
    pub auth: Option<Auth>,
    /// The contents of `ca_file`, read while the configuration is checked.
    #[serde(skip)]
    pub ca_pem: Option<Vec<u8>>,
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
    /// Checks the table, reads its CA file and secrets, and fills in the default
    /// `generator_url`. An error names the key (the caller adds the file and line).
    pub fn validate(
        &mut self,
        metrics_addr: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), (&'static str, Invalid)> {
        let e = Endpoint::parse(&self.url).map_err(|e| ("url", e))?;
        if self.max_queue == 0 {
            return Err(("max_queue", Invalid("must be at least 1".into())));
        }
        if let Some(f) = &self.ca_file {
            if e.url.scheme() != "https" {
                return Err((
                    "ca_file",
                    Invalid("only used with an https:// `url`".into()),
                ));
            }
            let pem = std::fs::read(f).map_err(|err| {
                (
                    "ca_file",
                    Invalid(format!("cannot read {}: {err}", f.display())),
                )
            })?;
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| {
                (
                    "ca_file",
                    Invalid(format!("{}: not a PEM certificate ({err})", f.display())),
                )
            })?;
            self.ca_pem = Some(pem);
        }
        self.auth = match (&self.basic_auth, &self.bearer_token) {
            (Some(_), Some(_)) => {
                return Err((
                    "bearer_token",
                    Invalid("give either `basic_auth` or `bearer_token`, not both".into()),
                ))
            }
            (Some(b), None) => Some(Auth::Basic {
                username: b.username.clone(),
                password: b
                    .password
                    .resolve(env)
                    .map_err(|m| ("basic_auth", Invalid(format!("password: {m}"))))?,
            }),
            (None, Some(t)) => Some(Auth::Bearer(
                t.resolve(env).map_err(|m| ("bearer_token", m))?,
            )),
            (None, None) => None,
        };
        match &self.generator_url {
            Some(u) if !u.is_empty() && !u.starts_with("http://") && !u.starts_with("https://") => {
                return Err((
                    "generator_url",
                    Invalid(format!("expected an http:// or https:// URL, found `{u}`")),
                ));
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

/// Where alerts are POSTed: the v2 alerts endpoint under the configured base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// e.g. `https://am.example:9093/prefix/api/v2/alerts`.
    pub url: reqwest::Url,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, Invalid> {
        let bad = |what: &str| Invalid(format!("`{url}`: {what}"));
        let mut u = reqwest::Url::parse(url).map_err(|e| bad(&format!("not a URL ({e})")))?;
        if u.scheme() != "http" && u.scheme() != "https" {
            return Err(bad("expected http://host:port or https://host:port"));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if u.port() == Some(0) {
            return Err(bad("bad port `0`"));
        }
        if u.query().is_some() || u.fragment().is_some() {
            return Err(bad("no query or fragment expected"));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(bad(
                "credentials in the URL are not supported (use `basic_auth` or `bearer_token`)",
            ));
        }
        let path = format!("{}/api/v2/alerts", u.path().trim_end_matches('/'));
        u.set_path(&path);
        Ok(Endpoint { url: u })
    }
}
