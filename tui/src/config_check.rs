//! The Config screen's data and `vllm config validate`: both go through `vllmd`'s own
//! validator (`daemon::config`), so the TUI can never disagree with the server.

use std::path::{Path, PathBuf};

use daemon::config::{ConfigProblem, EnvSettings, ServeConfig};

#[derive(Debug, Clone, Default)]
pub struct ConfigState {
    pub path: Option<PathBuf>,
    /// Could not read the file at all.
    pub read_error: Option<String>,
    pub problems: Vec<ConfigProblem>,
    /// `(flag, value, source)`: the settings `vllmd --config FILE` would run with.
    pub settings: Vec<(String, String, &'static str)>,
    /// The warning `vllmd` would log for the file's flags that have no effect here.
    pub no_effect: Option<String>,
    pub scroll: u16,
}

impl ConfigState {
    pub fn load(path: Option<&Path>) -> ConfigState {
        let Some(path) = path else {
            return ConfigState::default();
        };
        let mut state = ConfigState {
            path: Some(path.to_path_buf()),
            ..ConfigState::default()
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                state.read_error = Some(format!("cannot read {}: {e}", path.display()));
                return state;
            }
        };
        state.problems = daemon::config::validate_yaml(&text);
        // The environment may itself be invalid (a bad VLLM_* variable); the table then shows
        // the file over the defaults alone rather than nothing.
        let env = EnvSettings::from_env().unwrap_or_default();
        if let Ok(cfg) = ServeConfig::from_yaml(&text, &env) {
            state.settings = cfg.effective_settings();
            state.no_effect = cfg.no_effect_warning();
        }
        state
    }
}

/// `vllm config validate FILE`: prints each problem (or `OK`), returns the exit code.
pub fn validate_config_file(path: &Path) -> i32 {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", path.display());
            return 1;
        }
    };
    let problems = daemon::config::validate_yaml(&text);
    // The same one line `vllmd --config FILE` logs at start-up for flags without effect here.
    if let Ok(cfg) = ServeConfig::from_yaml(&text, &EnvSettings::default()) {
        if let Some(warning) = cfg.no_effect_warning() {
            eprintln!("{}: warning: {warning}", path.display());
        }
    }
    if problems.is_empty() {
        println!("{}: OK", path.display());
        return 0;
    }
    for p in &problems {
        eprintln!("{}: {p}", path.display());
    }
    eprintln!("{}: {} problem(s)", path.display(), problems.len());
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(kind: &str) -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../daemon/tests/fixtures/config")
            .join(kind);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no fixtures in {}", dir.display());
        files
    }

    #[test]
    fn good_corpus_is_valid() {
        for f in corpus("good") {
            assert_eq!(validate_config_file(&f), 0, "{}", f.display());
            let state = ConfigState::load(Some(&f));
            assert!(
                state.problems.is_empty() && state.read_error.is_none(),
                "{}: {:?}",
                f.display(),
                state.problems
            );
            assert!(!state.settings.is_empty(), "{}", f.display());
        }
    }

    #[test]
    fn bad_corpus_is_invalid() {
        for f in corpus("bad") {
            assert_eq!(validate_config_file(&f), 1, "{}", f.display());
            assert!(
                !ConfigState::load(Some(&f)).problems.is_empty(),
                "{}",
                f.display()
            );
        }
    }

    #[test]
    fn typo_gets_line_and_suggestion() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../daemon/tests/fixtures/config/bad/typo-keys.yaml");
        let state = ConfigState::load(Some(&dir));
        assert!(
            state
                .problems
                .iter()
                .any(|p| p.line.is_some() && p.suggestion.is_some()),
            "{:?}",
            state.problems
        );
    }

    #[test]
    fn missing_file() {
        assert_eq!(validate_config_file(Path::new("/nonexistent/x.yaml")), 1);
        assert!(ConfigState::load(Some(Path::new("/nonexistent/x.yaml")))
            .read_error
            .is_some());
    }

    #[test]
    fn flags_without_effect_are_a_warning_not_a_problem() {
        let f = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../daemon/tests/fixtures/config/good/kebab-case.yaml");
        let state = ConfigState::load(Some(&f));
        assert!(state.problems.is_empty(), "{:?}", state.problems);
        let w = state.no_effect.unwrap_or_default();
        assert!(
            w.contains("--enforce-eager (") && w.contains("--swap-space ("),
            "{w}"
        );
        assert!(ConfigState::load(Some(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../daemon/tests/fixtures/config/good/minimal.yaml")
        ))
        .no_effect
        .is_none());
    }
}
