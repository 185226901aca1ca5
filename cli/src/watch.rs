//! `hostledger watch`: Host changes as they happen, as lines or JSON. What a change is and
//! how it is printed is [`hostledger_inventory::watch`]; this module follows the watch and
//! writes stdout.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use hostledger_inventory::watch::{Tracker, error_text, host_watch, json, line, next};
use hostledger_model::Host;
use kube::api::Api;

use crate::read::Scope;

/// Output formats of `watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchOutput {
    /// One line per change: `TIME TYPE NAME HOST-ID FIELD OLD→NEW ...`.
    Line,
    /// One JSON object per line: type, name, hostId, hostname, phase, previousPhase,
    /// resourceVersion, observedAt, changes [{field, old, new}], labels.
    Json,
}

/// `hostledger watch`.
#[derive(Debug, Args)]
#[command(after_help = "\
Prints the Hosts there are (as ADDED, unless --changes-only), then every change as it happens: \
ADDED, MODIFIED (with what changed), DELETED. Each line is flushed as it is printed, so scripts \
can read it live; a closed pipe (| head -1) ends the command at once with exit code 0. TIME \
(observedAt) is when the watch saw the change, in UTC.

MODIFIED events in which nothing shown changed (only the object's metadata, the status's \
bookkeeping such as lastEvent, or the projector's own labels provider, region, role, team and \
phase, which follow the status) are skipped; --verbose prints them too. A Host is shown once \
the projector has written its status.

If the API server cannot be reached at the start, the command fails; if it goes away later, \
the watch resumes with backoff and reports what changed meanwhile.")]
pub struct WatchArgs {
    /// Which Hosts.
    #[command(flatten)]
    pub scope: Scope,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = WatchOutput::Line)]
    pub output: WatchOutput,

    /// Do not print the Hosts that exist when the watch starts; only changes after it.
    #[arg(long)]
    pub changes_only: bool,

    /// Also print MODIFIED events in which nothing shown changed.
    #[arg(long)]
    pub verbose: bool,
}

/// Resolves once stdout is a pipe whose reader has gone (`| head -1` has its line), so the
/// command can end then rather than at the next line it would print, which may be long after
/// (a script waiting for `head` waits for the whole pipeline). Never resolves when stdout is
/// not something that can tell (a file, /dev/null).
// The one `unsafe` of the workspace: registering a duplicate of stdout with tokio's reactor,
// which has no safe constructor for a borrowed descriptor (see the SAFETY comment below).
#[allow(unsafe_code)]
async fn stdout_closed() {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd as _;
        use tokio::io::Interest;
        use tokio::io::unix::AsyncFd;
        let watched = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .and_then(|fd| {
                // SAFETY: `fd` is an `OwnedFd` (a duplicate of stdout) that the `AsyncFd` owns:
                // it stays open and is the same descriptor for the `AsyncFd`'s whole life.
                unsafe { AsyncFd::register_with_interest(fd, Interest::ERROR) }.ok()
            });
        if let Some(fd) = watched {
            while let Ok(mut guard) = fd.ready(Interest::ERROR).await {
                if guard.ready().is_error() {
                    return;
                }
                guard.clear_ready();
            }
        }
    }
    std::future::pending::<()>().await;
}

/// Prints changes as they happen until Ctrl-C, SIGTERM or a closed stdout.
pub async fn run(args: WatchArgs) -> Result<ExitCode> {
    let client = crate::kube_client().await?;
    let api: Api<Host> = Api::namespaced(client, &args.scope.namespace);
    let mut stream = host_watch(api, args.scope.selector.as_ref());
    let mut tracker = Tracker::new(!args.changes_only, args.verbose);
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    let closed = stdout_closed();
    tokio::pin!(closed);
    loop {
        let item = tokio::select! {
            () = &mut shutdown => return Ok(ExitCode::SUCCESS),
            () = &mut closed => return Ok(ExitCode::SUCCESS),
            item = next(&mut stream) => item,
        };
        let event = match item {
            None => bail!("the watch of Hosts ended"),
            Some(Ok(event)) => event,
            Some(Err(error)) if !tracker.synced() => bail!(
                "cannot watch Hosts in namespace {} on the Kubernetes API server{}: {}",
                args.scope.namespace,
                crate::read::client_url(),
                error_text(&error)
            ),
            Some(Err(error)) => {
                let error = error_text(&error);
                tracing::warn!(%error, namespace = %args.scope.namespace, "watch of Hosts interrupted; resuming with backoff");
                continue;
            }
        };
        let was_synced = tracker.synced();
        let changes = tracker.handle(event);
        if !was_synced && tracker.synced() {
            tracing::info!(namespace = %args.scope.namespace, hosts = tracker.len(), "watching Hosts");
        }
        if changes.is_empty() {
            continue;
        }
        let observed_at = match args.output {
            WatchOutput::Line => {
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }
            WatchOutput::Json => {
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            }
        };
        let mut text = String::new();
        for change in &changes {
            match args.output {
                WatchOutput::Line => text.push_str(&line(change, &observed_at)),
                WatchOutput::Json => text.push_str(&json(change, &observed_at)),
            }
            text.push('\n');
        }
        crate::print_out(&text)?;
    }
}
