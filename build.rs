//! Compiles the wire schemas in `proto/` with prost, using protox (a pure-Rust protobuf
//! compiler) so no system `protoc` is needed: deadair's own (`deadair/v1`), and the subsets of
//! Prometheus remote-write and OpenTelemetry OTLP that deadair reads.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/deadair/v1/sample.proto",
        "proto/deadair/v1/alert.proto",
        "proto/prometheus/remote.proto",
        "proto/opentelemetry/proto/common/v1/common.proto",
        "proto/opentelemetry/proto/resource/v1/resource.proto",
        "proto/opentelemetry/proto/metrics/v1/metrics.proto",
        "proto/opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    prost_build::Config::new()
        .btree_map([".deadair"])
        .compile_fds(fds)?;
    Ok(())
}
