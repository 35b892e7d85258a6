//! Decoder throughput per input format: one message of 100 samples (100 series with a metric
//! name and three labels, as `deadair gen` writes them), decoded with `decode_message` into the
//! borrowed sample views the engine reads. Criterion reports samples/s as "elem/s".
//! The `one_sample_messages` group decodes the same 100 samples as 100 one-sample JSON
//! messages in the shapes prometheus-kafka-adapter and Vector write (and deadair's own), the
//! shape most pipelines put on Kafka.
//! Run: `cargo bench --bench decode`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deadair::config::{Input, InputFormat};
use deadair::decode::{decode_message, Meta, Scratch};
use deadair::proto::Sample;

const SAMPLES: usize = 100;

fn samples() -> Vec<Sample> {
    (0..SAMPLES)
        .map(|i| Sample {
            name: format!("metric_{}", i % 10),
            labels: BTreeMap::from([
                ("instance".to_string(), format!("host-{:05}:9100", i)),
                ("job".to_string(), format!("job-{}", i % 7)),
                ("region".to_string(), format!("region-{}", i % 3)),
            ]),
            timestamp: 1_767_225_600_000 + i as i64,
            value: 100.0 + (i as f64).sin(),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let samples = samples();
    let refs: Vec<&Sample> = samples.iter().collect();
    let mut group = c.benchmark_group("decode_100_samples");
    group.throughput(Throughput::Elements(SAMPLES as u64));
    for (name, format) in [
        ("proto", InputFormat::Proto),
        ("json", InputFormat::Json),
        ("remote_write", InputFormat::RemoteWrite),
        ("otlp", InputFormat::Otlp),
        ("influx", InputFormat::Influx),
    ] {
        let (payload, _) = deadair::demo::encode(&refs, format);
        let input = Input::new("t", format);
        let mut scratch = Scratch::default();
        // the message decodes to all its samples (names differ only for influx: `<name>_value`)
        let n = decode_message(&input, Meta::default(), &payload, &mut scratch)
            .map(|v| v.len())
            .unwrap_or(0);
        assert_eq!(n, SAMPLES, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| {
                let views =
                    decode_message(&input, Meta::default(), black_box(&payload), &mut scratch);
                black_box(views.map(|v| v.len()).unwrap_or(0))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("one_sample_messages");
    group.throughput(Throughput::Elements(SAMPLES as u64));
    let shapes: [(&str, Shape); 3] = [
        ("json", |s| {
            serde_json::json!({"name": s.name, "labels": s.labels, "timestamp": s.timestamp, "value": s.value})
                .to_string()
        }),
        ("prometheus_kafka_adapter", |s| {
            let mut labels = s.labels.clone();
            labels.insert("__name__".into(), s.name.clone());
            serde_json::json!({"timestamp": rfc3339(s.timestamp / 1000 * 1000), "value": s.value.to_string(), "name": s.name, "labels": labels})
                .to_string()
        }),
        ("vector", |s| {
            serde_json::json!({"name": s.name, "tags": s.labels, "timestamp": rfc3339(s.timestamp), "kind": "absolute", "gauge": {"value": s.value}})
                .to_string()
        }),
    ];
    for (name, shape) in shapes {
        let messages: Vec<String> = samples.iter().map(shape).collect();
        let input = Input::new("t", InputFormat::Json);
        let mut scratch = Scratch::default();
        for m in &messages {
            let n = decode_message(&input, Meta::default(), m.as_bytes(), &mut scratch)
                .map(|v| v.len())
                .unwrap_or(0);
            assert_eq!(n, 1, "{name}: {m}");
        }
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0;
                for m in &messages {
                    let views = decode_message(
                        &input,
                        Meta::default(),
                        black_box(m.as_bytes()),
                        &mut scratch,
                    );
                    if let Ok(v) = views {
                        n += v.len();
                        // as the stage does: the next message's views reuse these
                        let spare = v.recycled();
                        scratch.reuse(spare);
                    }
                }
                black_box(n)
            })
        });
    }
    group.finish();
}

/// One sample as one JSON message of some tool's shape.
type Shape = fn(&Sample) -> String;

fn rfc3339(ms: i64) -> String {
    deadair::time::format_rfc3339(ms)
}

criterion_group!(benches, bench);
criterion_main!(benches);
