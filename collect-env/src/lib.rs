//! `vllm collect-env`: what a bug report needs to know about the machine and the build, as plain
//! text to paste or as JSON. Every probe degrades to "unknown"/"not found" instead of failing, so
//! the report always completes (a machine without an NVIDIA driver is a normal case).

mod gpu;
mod system;

use serde_json::{Map, Value};

/// One titled block of `key: value` lines (plus free-form lines, e.g. the topology matrix).
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub title: String,
    pub items: Vec<(String, String)>,
    pub extra: Vec<String>,
}

impl Section {
    fn new(title: &str) -> Section {
        Section {
            title: title.to_string(),
            ..Section::default()
        }
    }

    fn add(&mut self, key: &str, value: impl Into<String>) {
        self.items.push((key.to_string(), value.into()));
    }
}

/// The whole report, section by section in the order it is printed.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub sections: Vec<Section>,
}

/// The prefixes of environment variables that change how vllm-rs and its libraries behave.
const ENV_PREFIXES: &[&str] = &["VLLM_", "CUDA_", "NCCL_", "OMP_", "HF_"];
/// Name fragments that mark a variable's value as a secret.
const SECRET_MARKERS: &[&str] = &["_KEY", "_TOKEN", "_SECRET", "PASSWORD"];
pub const REDACTED: &str = "<redacted>";

/// Whether the value of the variable `name` must not appear in a report.
pub fn is_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_MARKERS.iter().any(|m| upper.contains(m))
}

fn build_section() -> Section {
    let mut s = Section::new("vllm-rs");
    s.add("version", env!("CARGO_PKG_VERSION"));
    s.add("git commit", env!("COLLECT_ENV_GIT_COMMIT"));
    s.add("build profile", env!("COLLECT_ENV_PROFILE"));
    s.add("target", env!("COLLECT_ENV_TARGET"));
    let features = env!("COLLECT_ENV_FEATURES");
    s.add(
        "cargo features",
        if features.is_empty() {
            "none (CPU backend only)"
        } else {
            features
        },
    );
    s.add("compiled CPU features", system::compiled_target_features());
    s.add("rust toolchain", env!("COLLECT_ENV_RUSTC_VERSION"));
    s
}

fn env_section(vars: impl Iterator<Item = (String, String)>) -> Section {
    let mut s = Section::new("Environment variables");
    let mut found: Vec<(String, String)> = vars
        .filter(|(k, _)| ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| {
            let v = if is_secret(&k) {
                REDACTED.to_string()
            } else {
                v
            };
            (k, v)
        })
        .collect();
    found.sort();
    if found.is_empty() {
        s.extra.push(format!(
            "(none of {} set)",
            ENV_PREFIXES
                .iter()
                .map(|p| format!("{p}*"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (k, v) in found {
        s.add(&k, v);
    }
    s
}

/// Collects the report from this process's machine and environment.
pub fn report() -> Report {
    report_with_env(std::env::vars_os().map(|(k, v)| {
        (
            k.to_string_lossy().into_owned(),
            v.to_string_lossy().into_owned(),
        )
    }))
}

/// As [`report`], with the environment given (tests use it to check redaction).
pub fn report_with_env(vars: impl Iterator<Item = (String, String)>) -> Report {
    let mut sections = vec![
        system::os_section(),
        system::cpu_section(),
        system::memory_section(),
        build_section(),
    ];
    sections.extend(gpu::sections());
    sections.push(env_section(vars));
    Report { sections }
}

impl Report {
    /// The paste-able text form.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for s in &self.sections {
            out.push_str(&format!("== {} ==\n", s.title));
            let width = s.items.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in &s.items {
                out.push_str(&format!("{k:<width$} : {v}\n"));
            }
            for line in &s.extra {
                out.push_str(line);
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }

    /// `{section: {key: value, ..., "lines": [...]}}`, keys as in the text form.
    pub fn to_json(&self) -> Value {
        let mut root = Map::new();
        for s in &self.sections {
            let mut m = Map::new();
            for (k, v) in &s.items {
                m.insert(k.clone(), Value::String(v.clone()));
            }
            if !s.extra.is_empty() {
                m.insert(
                    "lines".into(),
                    Value::Array(s.extra.iter().cloned().map(Value::String).collect()),
                );
            }
            root.insert(s.title.clone(), Value::Object(m));
        }
        Value::Object(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_others_kept() {
        let vars = [
            ("VLLM_API_KEY", "sk-very-secret"),
            ("HF_TOKEN", "hf_abc"),
            ("VLLM_CACHE_ROOT", "/tmp/c"),
            ("PATH", "/bin"),
        ];
        let r = report_with_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let text = r.to_text();
        assert!(
            !text.contains("sk-very-secret") && !text.contains("hf_abc"),
            "{text}"
        );
        assert!(text.contains("VLLM_API_KEY") && text.contains(REDACTED));
        assert!(text.contains("/tmp/c"));
        assert!(!text.contains("/bin\n"));
        let json = r.to_json();
        assert_eq!(json["Environment variables"]["VLLM_API_KEY"], REDACTED);
    }

    #[test]
    fn every_section_is_present() {
        let r = report_with_env(std::iter::empty());
        let titles: Vec<&str> = r.sections.iter().map(|s| s.title.as_str()).collect();
        for t in [
            "Operating system",
            "CPU",
            "Memory",
            "vllm-rs",
            "NVIDIA GPUs",
            "CUDA libraries",
            "Environment variables",
        ] {
            assert!(titles.contains(&t), "{t} missing from {titles:?}");
        }
    }
}
