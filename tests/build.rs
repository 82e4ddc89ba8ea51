//! Builds the adapters the end-to-end tests load from files (not embedded in the host) for
//! wasm32-wasip2: the LINE plugin, the proof that a channel ships as a .wasm with no host change.
//! `OMNICHAT_TEST_LINE_WASM` names the component, `OMNICHAT_TEST_LINE_RELOADED_WASM` the same one
//! stamped with another version (for the hot-reload test).

use std::path::PathBuf;
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("workspace root").to_owned();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for watched in ["plugins/line", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    // Twice: as it is, and stamped with another version, for the hot-reload test to swap in.
    build(&root, &out_dir.join("line.wasm"), None);
    build(&root, &out_dir.join("line-reloaded.wasm"), Some(RELOADED_VERSION));
    println!("cargo:rustc-env=OMNICHAT_TEST_LINE_WASM={}", out_dir.join("line.wasm").display());
    println!("cargo:rustc-env=OMNICHAT_TEST_LINE_RELOADED_WASM={}", out_dir.join("line-reloaded.wasm").display());
    println!("cargo:rustc-env=OMNICHAT_TEST_LINE_RELOADED_VERSION={RELOADED_VERSION}");
}

const RELOADED_VERSION: &str = "0.1.0-reloaded";

fn build(root: &std::path::Path, dest: &std::path::Path, version: Option<&str>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The same target dir as the host's build script: its plugin dependencies are built already.
    let target_dir = root.join("target").join("plugins");
    let mut command = Command::new(&cargo);
    match version {
        Some(version) => command.env("OMNICHAT_PLUGIN_VERSION", version),
        None => command.env_remove("OMNICHAT_PLUGIN_VERSION"),
    };
    command
        .current_dir(root)
        .args([
            "rustc",
            "--locked",
            "-p",
            "omnichat-plugin-line",
            "--profile",
            "plugin",
            "--target",
            TARGET,
            "--crate-type",
            "cdylib",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--", "-C", "link-arg=-zstack-size=131072"]);
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "RUSTC_WORKSPACE_WRAPPER", "CARGO_TARGET_DIR"] {
        command.env_remove(var);
    }
    let status = command.status().expect("cannot run cargo to build the LINE plugin");
    if !status.success() {
        panic!("building omnichat-plugin-line for {TARGET} failed (see above)");
    }
    let built = target_dir.join(TARGET).join("plugin").join("omnichat_plugin_line.wasm");
    std::fs::copy(&built, dest).unwrap_or_else(|e| panic!("cannot copy {}: {e}", built.display()));
}
