//! The `[librdkafka]` table: librdkafka properties passed to deadair's Kafka clients, as users
//! copy them from their cluster's documentation (`security.protocol`, `ssl.ca.location`,
//! `sasl.mechanism`, `sasl.username`, ...). Secrets (`sasl.password`, client secrets, key
//! passwords) are never written in the file: they are named there, `{ env = "NAME" }` or
//! `{ file = "/path" }`, and read while the configuration is loaded.
//!
//! Every key is checked before anything connects: deadair's own rules (keys it sets itself,
//! secrets given in clear, mechanisms and codecs this build has, files that must be readable),
//! then librdkafka's own (unknown properties, bad values). Errors name the line and the key and
//! never show a secret.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::secret::{Secret, SecretRef, FORM};
use crate::check::Invalid;

/// A value as written in the file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RawValue {
    Text(String),
    Int(i64),
    Bool(bool),
    Secret(SecretRef),
}

/// A value as handed to librdkafka.
#[derive(Debug, Clone, PartialEq)]
pub enum KafkaValue {
    Plain(String),
    Secret(Secret),
}

impl KafkaValue {
    /// The value librdkafka is given (a secret's too: this is where it is used).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Plain(s) => s,
            Self::Secret(s) => s.expose(),
        }
    }
}

/// A refused `[librdkafka]` key: its line (1-based) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub line: usize,
    pub key: String,
    pub problem: String,
}

/// Keys deadair sets itself: its delivery guarantees depend on them.
const OWNED: [&str; 8] = [
    "bootstrap.servers",
    "group.id",
    "enable.auto.offset.store",
    "enable.auto.commit",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "partition.assignment.strategy",
];

/// Keys whose value is a secret: only `{ env = .. }` or `{ file = .. }` is accepted.
const SECRET: [&str; 6] = [
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.key.pem",
    "ssl_key",
];

/// Keys naming a file librdkafka reads when it connects: checked readable now.
const FILES: [&str; 5] = [
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.crl.location",
    "ssl.keystore.location",
];

/// SASL mechanisms this build supports (GSSAPI/Kerberos would need Cyrus SASL).
pub const MECHANISMS: [&str; 4] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// Compression codecs (`compression` for deadair's producers; input topics may use any).
pub const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// Checks the table and reads its secrets. `text` is the file (for line numbers).
pub fn settings(
    raw: &BTreeMap<Spanned<String>, Spanned<RawValue>>,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, KafkaValue>, KeyError> {
    let mut out = BTreeMap::new();
    let mut lines = BTreeMap::new();
    for (k, v) in raw {
        let key = k.get_ref().clone();
        let line = line_of(text, k.span().start);
        let err = |problem: String| KeyError {
            line,
            key: key.clone(),
            problem,
        };
        if OWNED.contains(&key.as_str()) {
            return Err(err(
                "set by deadair (delivery guarantees depend on it); use the top-level keys for brokers and group".into(),
            ));
        }
        if key == "compression.type" || key == "compression.codec" {
            return Err(err(
                "use the top-level `compression` key (it applies to deadair's producers; input topics are read whatever their codec)".into(),
            ));
        }
        let secret = SECRET.contains(&key.as_str());
        let value = match v.get_ref() {
            RawValue::Secret(r) => KafkaValue::Secret(r.resolve(env).map_err(|e| err(e.0))?),
            _ if secret => {
                return Err(err(format!(
                    "a secret is not written in the file: name where to read it, {FORM}"
                )))
            }
            RawValue::Text(s) => KafkaValue::Plain(s.clone()),
            RawValue::Int(i) => KafkaValue::Plain(i.to_string()),
            RawValue::Bool(b) => KafkaValue::Plain(b.to_string()),
        };
        check_value(&key, value.as_str()).map_err(|e| err(e.0))?;
        lines.insert(key.clone(), line);
        out.insert(key, value);
    }
    check_together(&out).map_err(|(key, problem)| KeyError {
        line: lines.get(key).copied().unwrap_or(1),
        key: key.to_string(),
        problem,
    })?;
    librdkafka_accepts(&out).map_err(|(key, problem)| KeyError {
        line: lines.get(&key).copied().unwrap_or(1),
        key,
        problem,
    })?;
    Ok(out)
}

/// deadair's own check of one value.
fn check_value(key: &str, v: &str) -> Result<(), Invalid> {
    let one_of = |allowed: &[&str], v: &str| {
        if allowed.iter().any(|a| a.eq_ignore_ascii_case(v)) {
            Ok(())
        } else {
            Err(Invalid(format!(
                "expected one of {}, found `{v}`",
                allowed.join(", ")
            )))
        }
    };
    match key {
        "security.protocol" => one_of(&["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"], v),
        "sasl.mechanism" | "sasl.mechanisms" => {
            if v.eq_ignore_ascii_case("GSSAPI") {
                return Err(Invalid(
                    "GSSAPI (Kerberos) is not built into deadair; use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER".into(),
                ));
            }
            one_of(&MECHANISMS, v)
        }
        "sasl.oauthbearer.method" => {
            one_of(&["default", "oidc"], v)?;
            if v.eq_ignore_ascii_case("oidc") && !builtin_features().contains(&"oidc".to_string()) {
                return Err(Invalid("`oidc` needs libcurl, which this deadair was built without: install Debian's libcurl4-openssl-dev (scripts/install-deps.sh does) and rebuild".into()));
            }
            Ok(())
        }
        k if FILES.contains(&k) => {
            let p = Path::new(v);
            if k == "ssl.ca.location" && (v == "probe" || p.is_dir()) {
                return Ok(());
            }
            std::fs::File::open(p)
                .map(|_| ())
                .map_err(|e| Invalid(format!("cannot read {v}: {e}")))
        }
        _ => Ok(()),
    }
}

/// What this build of librdkafka supports (`builtin.features`: codecs, TLS, SASL mechanisms).
pub fn builtin_features() -> Vec<String> {
    rdkafka::ClientConfig::new()
        .create_native_config()
        .ok()
        .and_then(|c| c.get("builtin.features").ok())
        .map(|f| f.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

/// Keys that only make sense together.
fn check_together(s: &BTreeMap<String, KafkaValue>) -> Result<(), (&'static str, String)> {
    let get = |k: &str| s.get(k).map(|v| v.as_str().to_ascii_uppercase());
    let protocol = get("security.protocol").unwrap_or_else(|| "PLAINTEXT".into());
    let mechanism = get("sasl.mechanism").or_else(|| get("sasl.mechanisms"));
    if !protocol.starts_with("SASL_") {
        return Ok(());
    }
    let Some(mechanism) = mechanism else {
        return Err((
            "security.protocol",
            format!(
                "`{}` needs `sasl.mechanism` ({})",
                protocol.to_ascii_lowercase(),
                MECHANISMS.join(", ")
            ),
        ));
    };
    if mechanism == "PLAIN" || mechanism.starts_with("SCRAM-") {
        for k in ["sasl.username", "sasl.password"] {
            if !s.contains_key(k) {
                let key = if s.contains_key("sasl.mechanism") {
                    "sasl.mechanism"
                } else {
                    "sasl.mechanisms"
                };
                return Err((key, format!("`{mechanism}` needs `{k}`")));
            }
        }
    }
    let oidc = get("sasl.oauthbearer.method").is_some_and(|m| m == "OIDC");
    if mechanism == "OAUTHBEARER" && oidc {
        for k in [
            "sasl.oauthbearer.client.id",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.token.endpoint.url",
        ] {
            if !s.contains_key(k) {
                return Err(("sasl.oauthbearer.method", format!("`oidc` needs `{k}`")));
            }
        }
    }
    Ok(())
}

/// librdkafka's own check: unknown properties and bad values, with secrets masked in its
/// message.
fn librdkafka_accepts(s: &BTreeMap<String, KafkaValue>) -> Result<(), (String, String)> {
    let mut c = rdkafka::ClientConfig::new();
    c.set("bootstrap.servers", "127.0.0.1:9092");
    for (k, v) in s {
        c.set(k, v.as_str());
    }
    match c.create_native_config() {
        Ok(_) => Ok(()),
        Err(rdkafka::error::KafkaError::ClientConfig(_, desc, key, _)) => {
            Err((key, mask(s, &desc)))
        }
        Err(e) => Err((String::new(), mask(s, &e.to_string()))),
    }
}

/// `text` with every secret value replaced by `***`.
pub fn mask(s: &BTreeMap<String, KafkaValue>, text: &str) -> String {
    let mut t = text.to_string();
    for v in s.values() {
        if let KafkaValue::Secret(sec) = v {
            t = t.replace(sec.expose(), "***");
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<String, KafkaValue>, KeyError> {
        #[derive(Deserialize)]
        struct T {
            librdkafka: BTreeMap<Spanned<String>, Spanned<RawValue>>,
        }
        let t: T = toml::from_str(text).unwrap();
        settings(&t.librdkafka, text, env)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn plain_values_of_every_type_pass_through() {
        let s = parse(
            "[librdkafka]\n\"fetch.max.bytes\" = 1048576\n\"socket.keepalive.enable\" = true\n\"client.id\" = \"x\"\n",
            &no_env,
        )
        .unwrap();
        assert_eq!(s["fetch.max.bytes"].as_str(), "1048576");
        assert_eq!(s["socket.keepalive.enable"].as_str(), "true");
        assert_eq!(s["client.id"].as_str(), "x");
    }

    #[test]
    fn a_scram_cluster_with_the_password_from_the_environment() {
        let env = |k: &str| (k == "KAFKA_PW").then(|| "pa55-word".to_string());
        let text = "[librdkafka]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"deadair\"\n\"sasl.password\" = { env = \"KAFKA_PW\" }\n";
        let s = parse(text, &env).unwrap();
        assert_eq!(s["sasl.password"].as_str(), "pa55-word");
        assert!(!format!("{s:?}").contains("pa55"), "{s:?}");
        assert_eq!(mask(&s, "auth failed for pa55-word"), "auth failed for ***");
    }

    #[test]
    fn refusals_name_the_line_and_the_key() {
        let cases: &[(&str, usize, &str, &str)] = &[
            (
                "\"sasl.password\" = \"hunter2\"",
                3,
                "sasl.password",
                "a secret is not written",
            ),
            (
                "\"sasl.password\" = { env = \"NOPE\" }",
                3,
                "sasl.password",
                "`NOPE` is not set",
            ),
            (
                "\"sasl.password\" = { file = \"/nonexistent/pw\" }",
                3,
                "sasl.password",
                "cannot read secret file /nonexistent/pw",
            ),
            (
                "\"sasl.mechanism\" = \"KERBEROS\"",
                3,
                "sasl.mechanism",
                "expected one of PLAIN",
            ),
            (
                "\"sasl.mechanism\" = \"GSSAPI\"",
                3,
                "sasl.mechanism",
                "not built into deadair",
            ),
            (
                "\"security.protocol\" = \"tls\"",
                3,
                "security.protocol",
                "expected one of plaintext",
            ),
            (
                "\"ssl.ca.location\" = \"/nonexistent/ca.pem\"",
                3,
                "ssl.ca.location",
                "cannot read /nonexistent/ca.pem",
            ),
            (
                "\"security.protocol\" = \"sasl_ssl\"",
                3,
                "security.protocol",
                "needs `sasl.mechanism`",
            ),
            (
                "\"security.protocol\" = \"sasl_ssl\"\n\"sasl.mechanism\" = \"PLAIN\"",
                4,
                "sasl.mechanism",
                "needs `sasl.username`",
            ),
            ("\"group.id\" = \"x\"", 3, "group.id", "set by deadair"),
            (
                "\"compression.type\" = \"zstd\"",
                3,
                "compression.type",
                "top-level `compression`",
            ),
            (
                "\"no.such.property\" = \"1\"",
                3,
                "no.such.property",
                "No such configuration property",
            ),
            (
                "\"fetch.max.bytes\" = \"lots\"",
                3,
                "fetch.max.bytes",
                "Invalid value",
            ),
        ];
        for (body, line, key, needle) in cases {
            let text = format!("# a comment\n[librdkafka]\n{body}\n");
            let e = parse(&text, &no_env).unwrap_err();
            assert_eq!((e.line, e.key.as_str()), (*line, *key), "{body}: {e:?}");
            assert!(e.problem.contains(needle), "{body}: {}", e.problem);
            assert!(!e.problem.contains("hunter2"), "{}", e.problem);
        }
    }

    #[test]
    fn this_build_has_tls_sasl_and_every_codec() {
        let features = builtin_features();
        for f in [
            "gzip",
            "snappy",
            "ssl",
            "sasl_plain",
            "sasl_scram",
            "sasl_oauthbearer",
            "zstd",
            "lz4",
            "oidc",
        ] {
            assert!(features.iter().any(|x| x == f), "{f} not in {features:?}");
        }
    }
}
