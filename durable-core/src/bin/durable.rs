//! `durable`: inspect the executions in a store. See `durable --help` and
//! [`durable_core::cli`].

use std::process::ExitCode;

use clap::Parser;
use durable_core::cli::{self, Cli};
use durable_core::logging::{self, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Our own warnings (a PostgreSQL migration, say) go to standard error; RUST_LOG overrides.
    let _ = logging::init_with(LogFormat::from_env(), "warn");
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("durable: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(cli::run(&cli, &mut stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("durable: {error}");
            ExitCode::FAILURE
        }
    }
}
