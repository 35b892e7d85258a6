//! Compiles `proto/deadair/v1/*.proto` with prost, using protox (a pure-Rust
//! protobuf compiler) so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/deadair/v1/sample.proto",
        "proto/deadair/v1/alert.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    prost_build::Config::new()
        .btree_map(["."])
        .compile_fds(fds)?;
    Ok(())
}
