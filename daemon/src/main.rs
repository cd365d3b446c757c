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
        // clap's own help/version output arrives here too: `exit` prints it to stdout with exit
        // code 0, as `vllm serve --help` does; usage errors go to stderr with exit code 2.
        Err(e) => e.exit(),
    };
    // A refused flag is a usage error, as clap's own: exit code 2.
    if let Err(e) = cfg.check_supported() {
        e.exit();
    }
    daemon::logging::init_server(&env, &cfg);
    if let Err(e) = daemon::serve::run(cfg, env) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
