//! `vllmd`: serve a model behind the OpenAI-compatible API (`vllm serve`, in one binary).

use daemon::config::{EnvSettings, ServeConfig};

fn main() {
    let env = match EnvSettings::from_env() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let cfg = match ServeConfig::load(std::env::args().collect(), &env) {
        Ok(c) => c,
        Err(e) => {
            // clap's own help/version output arrives here too, as an error that prints itself.
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    daemon::logging::init(&env, None);
    if let Err(e) = daemon::serve::run(cfg, env) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
