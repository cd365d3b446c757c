//! The engine thread's settings that come from vllm-rs's own environment variables: the bound on
//! waiting requests (vLLM has no such knob) and, for the fault tests, an injected engine panic.

use engine::actor::ActorOptions;

use super::ServeError;

/// Requests that may wait for a slot before new ones get 503 with `Retry-After`. Unset: no bound
/// (vLLM's behaviour: every request queues).
pub const MAX_WAITING_VAR: &str = "VLLM_RS_MAX_WAITING_REQUESTS";

/// Dev mode only: the engine thread panics after this many steps (tests of engine death).
pub const PANIC_AFTER_STEPS_VAR: &str = "VLLM_RS_TEST_PANIC_AFTER_STEPS";

/// Reads both variables through `get` (the process environment in the server).
pub fn from_env(
    get: impl Fn(&str) -> Option<String>,
    dev_mode: bool,
) -> Result<ActorOptions, ServeError> {
    let number = |name: &str| -> Result<Option<u64>, ServeError> {
        match get(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                ServeError::Config(format!(
                    "{name}={v:?}: expected a non-negative whole number"
                ))
            }),
        }
    };
    let panic_after_steps = number(PANIC_AFTER_STEPS_VAR)?;
    if panic_after_steps.is_some() && !dev_mode {
        return Err(ServeError::Config(format!(
            "{PANIC_AFTER_STEPS_VAR} injects an engine crash for tests; it needs VLLM_SERVER_DEV_MODE=1"
        )));
    }
    if let Some(n) = panic_after_steps {
        tracing::warn!("{PANIC_AFTER_STEPS_VAR}={n}: the engine thread will panic after {n} steps (fault test)");
    }
    let max_waiting_requests =
        number(MAX_WAITING_VAR)?.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    Ok(ActorOptions {
        max_waiting_requests,
        panic_after_steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn unset_means_no_bound_and_no_fault() {
        let o = from_env(env(&[]), false).unwrap();
        assert_eq!(o.max_waiting_requests, None);
        assert_eq!(o.panic_after_steps, None);
    }

    #[test]
    fn the_panic_hook_needs_dev_mode() {
        let vars = env(&[(PANIC_AFTER_STEPS_VAR, "3")]);
        let e = from_env(&vars, false).unwrap_err().to_string();
        assert!(e.contains("VLLM_SERVER_DEV_MODE"), "{e}");
        assert_eq!(from_env(&vars, true).unwrap().panic_after_steps, Some(3));
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let e = from_env(env(&[(MAX_WAITING_VAR, "lots")]), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains(MAX_WAITING_VAR), "{e}");
        let o = from_env(env(&[(MAX_WAITING_VAR, "8")]), false).unwrap();
        assert_eq!(o.max_waiting_requests, Some(8));
    }
}
