//! Records what built this crate (git commit, profile, rustc) so that bug reports say which
//! binary they come from; every probe falls back to "unknown" rather than failing the build.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"]).unwrap_or_else(|| "unknown".into());
    let commit =
        output("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = output("git", &["status", "--porcelain", "--untracked-files=no"]).is_some();
    let commit = if dirty && commit != "unknown" {
        format!("{commit}-dirty")
    } else {
        commit
    };
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    let features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| {
            k.strip_prefix("CARGO_FEATURE_")
                .map(|f| f.to_lowercase().replace('_', "-"))
        })
        .collect();
    println!("cargo:rustc-env=COLLECT_ENV_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=COLLECT_ENV_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=COLLECT_ENV_PROFILE={profile}");
    println!("cargo:rustc-env=COLLECT_ENV_TARGET={target}");
    println!(
        "cargo:rustc-env=COLLECT_ENV_FEATURES={}",
        features.join(",")
    );
    // A new commit changes HEAD (or the ref it points to); rebuild then so the commit stays true.
    for p in ["../.git/HEAD", "../.git/index"] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
