//! `hostledger prometheus-sd` (being written).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

/// `hostledger prometheus-sd`.
#[derive(Debug, Args)]
pub struct PrometheusSdArgs {}

/// Writes the file.
pub async fn run(_args: PrometheusSdArgs) -> Result<ExitCode> {
    anyhow::bail!("not written yet")
}
