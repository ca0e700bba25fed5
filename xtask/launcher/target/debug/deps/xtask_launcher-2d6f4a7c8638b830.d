/work/main/xtask/launcher/target/debug/deps/xtask_launcher-2d6f4a7c8638b830.d: src/main.rs Cargo.toml

/work/main/xtask/launcher/target/debug/deps/libxtask_launcher-2d6f4a7c8638b830.rmeta: src/main.rs Cargo.toml

src/main.rs:
Cargo.toml:

# env-dep:CARGO_MANIFEST_DIR=/work/main/xtask/launcher
# env-dep:CLIPPY_ARGS=
# env-dep:CLIPPY_CONF_DIR
