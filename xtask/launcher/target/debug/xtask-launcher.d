/work/main/xtask/launcher/target/debug/xtask-launcher: /work/main/xtask/launcher/src/main.rs
