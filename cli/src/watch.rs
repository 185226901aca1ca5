//! `hostledger watch` (being written).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

/// `hostledger watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {}

/// Prints changes.
pub async fn run(_args: WatchArgs) -> Result<ExitCode> {
    anyhow::bail!("not written yet")
}
