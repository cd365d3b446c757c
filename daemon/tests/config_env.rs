//! `EnvSettings`: the VLLM_* variables, their defaults, and errors that name the variable.

use std::collections::HashMap;
use std::path::PathBuf;

use daemon::config::{ConfigError, EnvSettings, LogLevel};

fn env(vars: &[(&str, &str)]) -> Result<EnvSettings, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    EnvSettings::from_map(&map)
}

fn ok(vars: &[(&str, &str)]) -> EnvSettings {
    env(vars).unwrap_or_else(|e| panic!("{vars:?}: {e}"))
}

#[test]
fn defaults_of_an_empty_environment() {
    let e = ok(&[("HOME", "/home/u")]);
    assert_eq!(e.api_key, None);
    assert_eq!(e.cache_root, PathBuf::from("/home/u/.cache/vllm"));
    assert_eq!(e.config_root, PathBuf::from("/home/u/.config/vllm"));
    assert_eq!(e.cpu_kvcache_space_gib, 4);
    assert_eq!(e.cpu_kvcache_space_bytes(), 4 << 30);
    assert_eq!(e.engine_iteration_timeout_s, 60);
    assert!(!e.keep_alive_on_engine_death && !e.allow_long_max_model_len && !e.server_dev_mode);
    assert_eq!(e.logging_level, LogLevel::Info);
    assert!(e.configure_logging);
    assert_eq!(e.logging_config_path, None);
    assert_eq!(e.logging_prefix, "");
    assert_eq!(ok(&[]), EnvSettings::default());
}

#[test]
fn every_variable_is_read() {
    let e = ok(&[
        ("HOME", "/home/u"),
        ("VLLM_API_KEY", "k"),
        ("VLLM_CACHE_ROOT", "~/cache"),
        ("VLLM_CONFIG_ROOT", "/etc/vllm"),
        ("VLLM_CPU_KVCACHE_SPACE", "16"),
        ("VLLM_ENGINE_ITERATION_TIMEOUT_S", "120"),
        ("VLLM_KEEP_ALIVE_ON_ENGINE_DEATH", "1"),
        ("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "true"),
        ("VLLM_SERVER_DEV_MODE", "YES"),
        ("VLLM_LOGGING_LEVEL", "debug"),
        ("VLLM_CONFIGURE_LOGGING", "0"),
        ("VLLM_LOGGING_CONFIG_PATH", "~/log.json"),
        ("VLLM_LOGGING_PREFIX", "[node0] "),
    ]);
    assert_eq!(e.api_key.as_deref(), Some("k"));
    assert_eq!(e.cache_root, PathBuf::from("/home/u/cache"));
    assert_eq!(e.config_root, PathBuf::from("/etc/vllm"));
    assert_eq!(e.cpu_kvcache_space_gib, 16);
    assert_eq!(e.engine_iteration_timeout_s, 120);
    assert!(e.keep_alive_on_engine_death && e.allow_long_max_model_len && e.server_dev_mode);
    assert_eq!(e.logging_level, LogLevel::Debug);
    assert_eq!(e.logging_level.as_filter(), "debug");
    assert!(!e.configure_logging);
    assert_eq!(
        e.logging_config_path,
        Some(PathBuf::from("/home/u/log.json"))
    );
    assert_eq!(e.logging_prefix, "[node0] ");
}

#[test]
fn xdg_directories_and_special_values() {
    let e = ok(&[
        ("HOME", "/h"),
        ("XDG_CACHE_HOME", "/xc"),
        ("XDG_CONFIG_HOME", "/xf"),
    ]);
    assert_eq!(
        (e.cache_root, e.config_root),
        (PathBuf::from("/xc/vllm"), PathBuf::from("/xf/vllm"))
    );
    // 0 GiB means "not set" in vLLM, i.e. the 4 GiB default.
    assert_eq!(
        ok(&[("VLLM_CPU_KVCACHE_SPACE", "0")]).cpu_kvcache_space_gib,
        4
    );
    // Empty counts as unset; WARNING has the alias WARN, CRITICAL maps to error.
    assert_eq!(
        ok(&[("VLLM_API_KEY", ""), ("VLLM_LOGGING_LEVEL", "")]),
        EnvSettings::default()
    );
    assert_eq!(
        ok(&[("VLLM_LOGGING_LEVEL", "warn")]).logging_level,
        LogLevel::Warning
    );
    assert_eq!(
        ok(&[("VLLM_LOGGING_LEVEL", "CRITICAL")])
            .logging_level
            .as_filter(),
        "error"
    );
    assert!(!ok(&[("VLLM_KEEP_ALIVE_ON_ENGINE_DEATH", "0")]).keep_alive_on_engine_death);
}

#[test]
fn invalid_values_name_the_variable() {
    for (var, value) in [
        ("VLLM_CPU_KVCACHE_SPACE", "4GB"),
        ("VLLM_CPU_KVCACHE_SPACE", "-1"),
        ("VLLM_ENGINE_ITERATION_TIMEOUT_S", "soon"),
        ("VLLM_ENGINE_ITERATION_TIMEOUT_S", "0"),
        ("VLLM_KEEP_ALIVE_ON_ENGINE_DEATH", "perhaps"),
        ("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "2"),
        ("VLLM_SERVER_DEV_MODE", "dev"),
        ("VLLM_LOGGING_LEVEL", "LOUD"),
        ("VLLM_CONFIGURE_LOGGING", "maybe"),
    ] {
        match env(&[(var, value)]) {
            Err(e @ ConfigError::Env { .. }) => {
                assert_eq!(e.key(), Some(var));
                assert!(
                    e.to_string().contains(var) && e.to_string().contains(value),
                    "{e}"
                );
            }
            other => panic!("{var}={value}: expected an error, got {other:?}"),
        }
    }
}

#[test]
fn single_node_variables_work_or_are_reported() {
    let e = ok(&[
        ("VLLM_HTTP_TIMEOUT_KEEP_ALIVE", "9"),
        ("VLLM_NO_DEPRECATION_WARNING", "1"),
        ("VLLM_ATTENTION_BACKEND", "FLASHINFER"),
        ("VLLM_HOST_IP", "10.1.2.3"),
        ("VLLM_PORT", "5000"),
        ("VLLM_ZZZ", "1"),
    ]);
    assert_eq!(e.http_timeout_keep_alive_s, 9);
    assert!(e.no_deprecation_warning);
    assert_eq!(e.attention_backend.as_deref(), Some("FLASHINFER"));
    let w = e.warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    for name in ["VLLM_ATTENTION_BACKEND", "VLLM_HOST_IP", "VLLM_PORT"] {
        assert!(w[0].contains(name), "{name}: {w:?}");
    }
    assert!(!w[0].contains("VLLM_HTTP_TIMEOUT_KEEP_ALIVE"), "{w:?}");
    assert!(w[1].ends_with("VLLM_ZZZ"), "{w:?}");
    assert_eq!(ok(&[]).http_timeout_keep_alive_s, 5);
    assert!(ok(&[]).warnings().is_empty());
    for (var, value) in [
        ("VLLM_ATTENTION_BACKEND", "FAST"),
        ("VLLM_PORT", "tcp://10.0.0.1:80"),
        ("VLLM_PORT", "x"),
        ("VLLM_HTTP_TIMEOUT_KEEP_ALIVE", "-1"),
    ] {
        match env(&[(var, value)]) {
            Err(ConfigError::Env { var: v, .. }) => assert_eq!(v, var),
            other => panic!("{var}={value}: expected an error, got {other:?}"),
        }
    }
}
