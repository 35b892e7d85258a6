//! The input decoders against messages written by the formats' own encoders (fixtures made by
//! `scripts/formats.py fixtures tests/fixtures/formats`: opentelemetry-proto, the Prometheus
//! remote-write bindings with python-snappy, influxdb-client), compared with the samples the
//! documented rules give (`expected.json`, stated by hand in that script); then every
//! truncation and many byte mutations of those real messages, which must never panic.

use std::collections::BTreeMap;

use deadair::config::{Input, InputFormat};
use deadair::decode::{decode_message, DecodeReason, Meta, Scratch};
use proptest::prelude::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/formats");

type Row = (String, BTreeMap<String, String>, i64, f64);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap()
}

/// The rows `expected.json` states for `name`; a value JSON cannot hold is the text `NaN`,
/// `+Inf` or `-Inf`.
fn expected(name: &str) -> Vec<Row> {
    let all: serde_json::Value = serde_json::from_slice(&fixture("expected.json")).unwrap();
    let raw: Vec<(String, BTreeMap<String, String>, i64, serde_json::Value)> =
        serde_json::from_value(all[name].clone()).unwrap();
    let mut rows: Vec<Row> = raw
        .into_iter()
        .map(|(n, l, t, v)| {
            let v = match v.as_str() {
                Some("NaN") => f64::NAN,
                Some("+Inf") => f64::INFINITY,
                Some("-Inf") => f64::NEG_INFINITY,
                _ => v.as_f64().unwrap(),
            };
            (n, l, t, v)
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    rows
}

fn decode(input: &Input, meta: Meta<'_>, payload: &[u8]) -> Result<Vec<Row>, DecodeReason> {
    let mut scratch = Scratch::default();
    let views = decode_message(input, meta, payload, &mut scratch).map_err(|e| e.reason)?;
    let mut rows: Vec<Row> = views
        .refs()
        .map(|r| {
            let labels = r
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (r.name.to_string(), labels, r.ts, r.value)
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    Ok(rows)
}

fn close(got: &[Row], want: &[Row]) -> bool {
    got.len() == want.len()
        && got.iter().zip(want).all(|(g, w)| {
            (&g.0, &g.1, g.2) == (&w.0, &w.1, w.2)
                && (g.3 == w.3
                    || (g.3.is_nan() && w.3.is_nan())
                    || (g.3 - w.3).abs() <= 1e-9 * w.3.abs().max(1.0))
        })
}

const CASES: [(&str, InputFormat, &str); 3] = [
    (
        "remote_write.bin",
        InputFormat::RemoteWrite,
        "application/x-protobuf;proto=prometheus.WriteRequest",
    ),
    (
        "otlp.bin",
        InputFormat::Otlp,
        "application/x-protobuf; proto=opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest",
    ),
    ("influx.txt", InputFormat::Influx, "text/plain; charset=utf-8"),
];

/// JSON shapes other tools write one sample per message, with no header: a `format = "json"`
/// input reads them (here: one message per line of the fixture).
const JSON_CASES: [&str; 2] = ["prometheus_kafka_adapter.jsonl", "vector.jsonl"];

/// The messages of a one-sample-per-message fixture (its lines).
fn messages(file: &str) -> Vec<Vec<u8>> {
    fixture(file)
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn real_encoders_messages_decode_to_the_documented_samples() {
    for (file, format, _) in CASES {
        let got = decode(&Input::new("t", format), Meta::default(), &fixture(file)).unwrap();
        let want = expected(file);
        assert!(close(&got, &want), "{file}:\n got {got:?}\nwant {want:?}");
    }
    for file in JSON_CASES {
        let input = Input::new("t", InputFormat::Json);
        let mut got: Vec<Row> = Vec::new();
        for m in messages(file) {
            got.extend(decode(&input, Meta::default(), &m).unwrap());
        }
        got.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
        let want = expected(file);
        assert!(close(&got, &want), "{file}:\n got {got:?}\nwant {want:?}");
    }
}

#[test]
fn a_content_type_header_overrides_the_topic_format_when_autodetect_is_on() {
    for (file, format, content_type) in CASES {
        let mut input = Input::new("t", InputFormat::Json);
        input.autodetect = true;
        let meta = Meta {
            content_type: Some(content_type),
            ..Meta::default()
        };
        let got = decode(&input, meta, &fixture(file)).unwrap();
        assert!(
            close(&got, &expected(file)),
            "{file} ({format:?}) by header"
        );
        input.autodetect = false;
        assert_eq!(
            decode(&input, meta, &fixture(file)).unwrap_err(),
            DecodeReason::Json,
            "{file}: autodetect off reads the topic's format"
        );
    }
    // `content-encoding: snappy` alone marks remote-write (as its HTTP requests are marked)
    let meta = Meta {
        content_type: Some("application/x-protobuf"),
        content_encoding: Some("snappy"),
        ..Meta::default()
    };
    let mut input = Input::new("t", InputFormat::Proto);
    input.autodetect = true;
    let got = decode(&input, meta, &fixture("remote_write.bin")).unwrap();
    assert!(close(&got, &expected("remote_write.bin")));
}

#[test]
fn every_truncation_of_a_real_message_decodes_or_is_refused() {
    for (file, format, _) in CASES {
        let bytes = fixture(file);
        let input = Input::new("t", format);
        for cut in 0..bytes.len() {
            // a prefix either decodes (to at most the whole message's samples) or is refused
            if let Ok(rows) = decode(&input, Meta::default(), &bytes[..cut]) {
                assert!(
                    rows.len() <= expected(file).len() + 8,
                    "{file} cut at {cut}"
                );
            }
        }
    }
}

#[test]
fn every_truncation_of_a_json_shape_decodes_or_is_refused() {
    let input = Input::new("t", InputFormat::Json);
    for file in JSON_CASES {
        for m in messages(file) {
            for cut in 0..m.len() {
                let r = decode(&input, Meta::default(), &m[..cut]);
                assert!(
                    r.map_or(true, |rows| rows.len() <= 1),
                    "{file} cut at {cut}"
                );
            }
        }
    }
}

/// Applies `edits` to `bytes`: (where, byte, op) with op 0 overwrite, 1 insert, 2 remove.
fn mutate(bytes: &mut Vec<u8>, edits: Vec<(prop::sample::Index, u8, u8)>) {
    for (at, byte, op) in edits {
        let i = at.index(bytes.len().max(1));
        match op {
            0 if !bytes.is_empty() => bytes[i] = byte,
            1 => bytes.insert(i.min(bytes.len()), byte),
            _ if !bytes.is_empty() => {
                bytes.remove(i);
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The JSON shapes with bytes overwritten, inserted or removed never panic the decoder.
    #[test]
    fn mutated_json_shapes_never_panic(
        which in 0usize..2,
        line in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let all = messages(JSON_CASES[which]);
        let mut bytes = all[line % all.len()].clone();
        mutate(&mut bytes, edits);
        let _ = decode(&Input::new("t", InputFormat::Json), Meta::default(), &bytes);
    }

    /// Real messages with bytes overwritten, inserted or removed never panic the decoders.
    #[test]
    fn mutated_real_messages_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let (file, format, _) = CASES[which];
        let mut bytes = fixture(file);
        mutate(&mut bytes, edits);
        let _ = decode(&Input::new("t", format), Meta { timestamp: Some(1), ..Meta::default() }, &bytes);
    }
}
