/work/main/xtask/launcher/target/debug/deps/xtask_launcher-91c8445f821eb946.d: src/main.rs

/work/main/xtask/launcher/target/debug/deps/xtask_launcher-91c8445f821eb946: src/main.rs

src/main.rs:

# env-dep:CARGO_MANIFEST_DIR=/work/main/xtask/launcher
