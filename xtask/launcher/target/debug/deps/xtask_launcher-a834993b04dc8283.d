/work/main/xtask/launcher/target/debug/deps/xtask_launcher-a834993b04dc8283.d: src/main.rs

/work/main/xtask/launcher/target/debug/deps/xtask_launcher-a834993b04dc8283: src/main.rs

src/main.rs:

# env-dep:CARGO_MANIFEST_DIR=/work/main/xtask/launcher
