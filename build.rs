//! Generates the prost types of proto/ at build time with protox (pure Rust: no system protoc).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/silo/v1/silo.proto",
        "proto/silo/store/v1/store.proto",
        "proto/silo/admin/v1/admin.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    prost_build::Config::new()
        .bytes(["."])
        .btree_map(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
