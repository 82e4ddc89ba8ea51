//! Builds the first-party adapters (and the runtime's test fixture) for wasm32-wasip2 and leaves
//! them in `$OUT_DIR/plugins/`, where `plugins::embedded` includes them: one `cargo run` needs no
//! separate plugin step.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PLUGINS: [(&str, &str); 5] = [
    ("omnichat-plugin-telegram-bot", "telegram_bot"),
    ("omnichat-plugin-facebook", "facebook"),
    ("omnichat-plugin-widget", "widget"),
    ("omnichat-plugin-hostile", "hostile"),
    ("omnichat-plugin-legacy-v01", "legacy_v01"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("workspace root").to_owned();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    // `sqlx::migrate!` tracks the migration files it saw, not a file added since: watching the
    // directories rebuilds the crate when a migration is added.
    for watched in ["plugins", "wit", "Cargo.lock", "migrations"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    // Relative relocations packed (DT_RELR, glibc 2.36+, GNU ld 2.38+ or lld 15+): the loader
    // reads a 27 KB table at start instead of 2.4 MB of relocations, which stayed resident
    // (BENCHMARKS.md, idle memory).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    ensure_target();
    // A target dir of its own: the outer build holds the lock on the workspace's.
    let target_dir = root.join("target").join("plugins");
    for (package, _) in PLUGINS {
        let mut command = Command::new(&cargo);
        command
            .current_dir(&root)
            .args(["rustc", "--locked", "-p", package, "--profile", "plugin", "--target", TARGET, "--crate-type", "cdylib"])
            .arg("--target-dir")
            .arg(&target_dir)
            // A 128 KiB stack instead of 1 MiB: a fresh instance then touches (and the pool keeps
            // resident) far fewer pages per call.
            .args(["--", "-C", "link-arg=-zstack-size=131072"]);
        // Flags meant for the host (coverage, sanitizers) must not reach the wasm build.
        for var in
            ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "RUSTC_WORKSPACE_WRAPPER", "CARGO_TARGET_DIR"]
        {
            command.env_remove(var);
        }
        let status = command.status().expect("cannot run cargo to build the plugins");
        if !status.success() {
            panic!("building {package} for {TARGET} failed (see above)");
        }
    }

    let built = target_dir.join(TARGET).join("plugin");
    let dest = out_dir.join("plugins");
    std::fs::create_dir_all(&dest).expect("create $OUT_DIR/plugins");
    for (_, artifact) in PLUGINS {
        let from = built.join(format!("omnichat_plugin_{artifact}.wasm"));
        copy(&from, &dest.join(format!("{artifact}.wasm")));
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("cannot copy {}: {e}", from.display()));
}

/// The wasm32-wasip2 standard library, added with rustup when it is missing.
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc).args(["--print", "sysroot"]).output().expect("rustc --print sysroot");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_owned();
    if Path::new(&sysroot).join("lib/rustlib").join(TARGET).exists() {
        return;
    }
    println!("cargo:warning=adding the {TARGET} target with rustup (needed to build the plugins)");
    let added = Command::new("rustup").args(["target", "add", TARGET]).status();
    if !added.is_ok_and(|s| s.success()) {
        panic!("the {TARGET} target is missing: run `rustup target add {TARGET}`");
    }
}
