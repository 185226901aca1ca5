//! The `hostledger` binary: parse flags, hand over to [`hostledger_cli::run`].

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = hostledger_cli::Cli::parse();
    hostledger_cli::init_logging(&cli);
    match hostledger_cli::run(cli).await {
        Ok(code) => code,
        Err(error) if hostledger_cli::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // Kubernetes client errors repeat their causes in their own messages: each cause
            // is said once.
            let line = hostledger_inventory::watch::error_text(error.as_ref());
            eprintln!("error: {line}");
            ExitCode::from(1)
        }
    }
}
