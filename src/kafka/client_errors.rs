//! librdkafka's client-level errors (broker connections, TLS handshakes, SASL authentication),
//! which reach deadair through the client context rather than through a consumed message:
//! counted by kind, logged rate-limited, and the last TLS or authentication error kept for the
//! startup check, which turns a configuration that cannot work (a wrong CA, a bad password)
//! into one clear error and a non-zero exit instead of a silent, never-ready deadair.

use std::sync::Mutex;

use prometheus::IntCounterVec;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::ratelog::RateLimitedLog;

/// The `kind` label of `deadair_kafka_client_errors_total`.
pub fn kind(error: &KafkaError, reason: &str) -> &'static str {
    let code = error.rdkafka_error_code();
    let lower = reason.to_ascii_lowercase();
    match code {
        Some(RDKafkaErrorCode::Authentication)
        | Some(RDKafkaErrorCode::SaslAuthenticationFailed) => "authentication",
        Some(RDKafkaErrorCode::SSL) => "tls",
        _ if lower.contains("ssl handshake") || lower.contains("certificate verify") => "tls",
        _ if lower.contains("sasl") && lower.contains("auth") => "authentication",
        Some(RDKafkaErrorCode::AllBrokersDown) => "all_brokers_down",
        Some(RDKafkaErrorCode::BrokerTransportFailure) => "transport",
        _ => "other",
    }
}

/// Whether an error of this kind means the configuration cannot work as it is.
pub fn is_configuration(kind: &str) -> bool {
    matches!(kind, "tls" | "authentication")
}

/// Counts, logs and remembers client errors (shared by a client's context).
pub struct ClientErrors {
    counter: IntCounterVec,
    /// None: counted and remembered only (the startup probe reports once, at its end).
    log: Option<Mutex<RateLimitedLog>>,
    /// The last TLS or authentication error, as librdkafka described it.
    configuration: Mutex<Option<String>>,
}

impl ClientErrors {
    pub fn new(counter: IntCounterVec, logged: bool) -> Self {
        for k in [
            "tls",
            "authentication",
            "transport",
            "all_brokers_down",
            "other",
        ] {
            counter.with_label_values(&[k]);
        }
        ClientErrors {
            counter,
            log: logged.then(|| Mutex::new(RateLimitedLog::new(5))),
            configuration: Mutex::new(None),
        }
    }

    /// One error from librdkafka's error callback.
    pub fn report(&self, error: &KafkaError, reason: &str) {
        let k = kind(error, reason);
        self.counter.with_label_values(&[k]).inc();
        let key: &'static str = match k {
            "tls" => "kafka tls error",
            "authentication" => "kafka authentication error",
            _ => "kafka client error",
        };
        if let Some(Ok(mut log)) = self.log.as_ref().map(Mutex::lock) {
            log.log(key, || reason.to_string());
        }
        if is_configuration(k) {
            if let Ok(mut c) = self.configuration.lock() {
                *c = Some(reason.to_string());
            }
        }
    }

    /// The last TLS or authentication error seen, if any.
    pub fn configuration_error(&self) -> Option<String> {
        self.configuration.lock().ok().and_then(|c| c.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_codes_and_reasons() {
        let g = |c| KafkaError::Global(c);
        assert_eq!(
            kind(
                &g(RDKafkaErrorCode::Authentication),
                "SASL SCRAM-SHA-256 mechanism handshake failed"
            ),
            "authentication"
        );
        assert_eq!(
            kind(
                &g(RDKafkaErrorCode::BrokerTransportFailure),
                "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed"
            ),
            "tls"
        );
        assert_eq!(
            kind(
                &g(RDKafkaErrorCode::BrokerTransportFailure),
                "Connection refused"
            ),
            "transport"
        );
        assert_eq!(
            kind(&g(RDKafkaErrorCode::AllBrokersDown), "1/1 brokers are down"),
            "all_brokers_down"
        );
        let r = prometheus::Registry::new();
        let c = IntCounterVec::new(prometheus::Opts::new("e_total", "e"), &["kind"]).unwrap();
        r.register(Box::new(c.clone())).unwrap();
        let errors = ClientErrors::new(c.clone(), true);
        errors.report(
            &g(RDKafkaErrorCode::BrokerTransportFailure),
            "Connection refused",
        );
        assert_eq!(errors.configuration_error(), None);
        errors.report(
            &g(RDKafkaErrorCode::Authentication),
            "SASL authentication error: bad credentials",
        );
        assert_eq!(
            errors.configuration_error().as_deref(),
            Some("SASL authentication error: bad credentials")
        );
        assert_eq!(c.with_label_values(&["authentication"]).get(), 1);
        assert_eq!(c.with_label_values(&["transport"]).get(), 1);
    }
}
