/work/main/xtask/launcher/target/debug/deps/xtask_launcher-93af6c5b117293c2.d: src/main.rs Cargo.toml

/work/main/xtask/launcher/target/debug/deps/libxtask_launcher-93af6c5b117293c2.rmeta: src/main.rs Cargo.toml

src/main.rs:
Cargo.toml:

# env-dep:CARGO_MANIFEST_DIR=/work/main/xtask/launcher
# env-dep:CLIPPY_ARGS=
# env-dep:CLIPPY_CONF_DIR
