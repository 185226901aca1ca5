//! `hostledger migrate history`: moves a namespace written by a version that kept full
//! history in HostHistory chunks (in etcd) to the history server (the log). It checks every
//! host's history from the history API against its chunks before it changes anything, then
//! records that the namespace's history is the log's, deletes the chunks and takes the
//! `hostledger.dev/history` finalizer off the Hosts. Running it again does nothing.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use futures::{StreamExt, TryStreamExt};
use hostledger_k8s::projection::{self, HistoryHome, Projection};
use hostledger_k8s::{HistoryApi, HistoryStore, HostStore};
use hostledger_kafka::KafkaSettings;
use hostledger_model::defaults::defaults;
use hostledger_model::names::HISTORY_FINALIZER;
use hostledger_model::{HistoryEntry, HostHistory};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kube::api::{Api, DeleteParams, ListParams};

use crate::{KafkaArgs, kube_client, print_out};

/// `hostledger migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// What to migrate.
    #[command(subcommand)]
    pub what: MigrateCommand,
}

/// What `hostledger migrate` moves.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Move a namespace's full history out of etcd: check the history server's copy of every
    /// host's history against its HostHistory chunks, then delete the chunks and the Hosts'
    /// history finalizer. Needs `hostledger history-server` running and registered
    /// (docs/operations.md). Idempotent.
    History(MigrateHistoryArgs),
}

/// `hostledger migrate history`.
#[derive(Debug, Args)]
pub struct MigrateHistoryArgs {
    /// Namespace of the Host objects.
    #[arg(
        long,
        short,
        env = "HOSTLEDGER_NAMESPACE",
        default_value = defaults().namespace.as_str()
    )]
    pub namespace: String,

    /// Check, and say what would change, without changing anything.
    #[arg(long)]
    pub dry_run: bool,

    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,

    /// The log the namespace is the projection of (only its topic name is used, when the
    /// namespace does not record it yet).
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Runs `hostledger migrate`.
pub async fn run(args: MigrateArgs) -> Result<ExitCode> {
    match args.what {
        MigrateCommand::History(args) => history(args).await,
    }
}

fn bar(quiet: bool, len: u64, what: &str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(4))
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {human_pos}/{human_len} {msg}")
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_owned());
    bar
}

/// Hosts whose history from the API differs from their chunks: (host id, why).
fn differences(
    counts: &HashMap<&str, u64>,
    chunks: &mut HashMap<String, Vec<HistoryEntry>>,
    served: &mut HashMap<String, Vec<HistoryEntry>>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (host, count) in counts {
        let count = usize::try_from(*count).unwrap_or(usize::MAX);
        let mut from_chunks = chunks.remove(*host).unwrap_or_default();
        let mut from_api = served.remove(*host).unwrap_or_default();
        from_chunks.truncate(count);
        from_api.truncate(count);
        if from_chunks.len() < count {
            out.push((
                (*host).to_owned(),
                format!(
                    "its chunks hold {} of its {count} entries",
                    from_chunks.len()
                ),
            ));
        } else if from_api.len() < count {
            out.push((
                (*host).to_owned(),
                format!(
                    "the history server has {} of its {count} entries",
                    from_api.len()
                ),
            ));
        } else if let Some(i) = (0..count).find(|&i| from_chunks[i] != from_api[i]) {
            out.push((
                (*host).to_owned(),
                format!(
                    "entry {} differs (chunk: {}, history server: {})",
                    i + 1,
                    from_chunks[i].event_id,
                    from_api[i].event_id
                ),
            ));
        }
    }
    out.sort();
    out
}

async fn history(args: MigrateHistoryArgs) -> Result<ExitCode> {
    let client = kube_client().await?;
    let ns = args.namespace.as_str();
    let topic = args
        .kafka
        .apply(KafkaSettings::default())
        .topics
        .events
        .clone();
    let chunks_api: Api<HostHistory> = Api::namespaced(client.clone(), ns);
    let recorded = projection::read(&client, ns).await?;
    let has_chunks = projection::has_chunks(&client, ns).await?;
    if recorded
        .as_ref()
        .is_some_and(|p| p.history == HistoryHome::Log)
        && !has_chunks
    {
        print_out(&format!(
            "namespace {ns}: nothing to do; its history is the log's (served by the history server) and etcd holds none of it\n"
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    // The history server finds the namespace's log through this record.
    let mut projection = match recorded {
        Some(p) => p,
        None => Projection {
            events_topic: topic,
            until: None,
            history: HistoryHome::Chunks,
        },
    };
    if !args.dry_run {
        projection::record(&client, ns, &projection).await?;
    }

    // Every Host's count of entries: what both copies must hold.
    let store = HostStore::new(client.clone(), ns);
    let hosts = store.list(ListParams::default()).await?;
    let counts: HashMap<&str, u64> = hosts
        .iter()
        .map(|h| (h.record.host_id.as_str(), h.record.event_count))
        .collect();
    let total: u64 = counts.values().sum();
    eprintln!(
        "namespace {ns}: {} Hosts with {total} history entries; reading them from the HostHistory chunks and from the history server (topic {})",
        hosts.len(),
        projection.events_topic
    );
    let mut from_chunks = HistoryStore::new(client.clone(), ns)
        .read_many(&counts.keys().copied().collect())
        .await?;
    let api = HistoryApi::new(client.clone(), ns);
    api.check()
        .await
        .context("the history server must serve this namespace before its chunks can go")?;
    let mut from_api = api.read_many(&counts).await?;
    let differ = differences(&counts, &mut from_chunks, &mut from_api);
    if !differ.is_empty() {
        let shown: Vec<String> = differ
            .iter()
            .take(10)
            .map(|(h, why)| format!("  {h}: {why}"))
            .collect();
        bail!(
            "namespace {ns}: the history server's copy differs from the HostHistory chunks for {} hosts, so nothing was changed:\n{}\nIs it reading the topic this namespace was projected from ({})? Fix that and run this again",
            differ.len(),
            shown.join("\n"),
            projection.events_topic
        );
    }
    eprintln!(
        "checked: the history server holds the same {total} entries as the chunks, for every host"
    );
    let finalized: Vec<_> = hosts
        .iter()
        .filter(|h| h.finalizers.iter().any(|f| f == HISTORY_FINALIZER))
        .collect();
    let chunk_names =
        hostledger_k8s::list_names(&chunks_api, ListParams::default(), "HostHistory").await?;
    if args.dry_run {
        print_out(&format!(
            "namespace {ns} (dry run): would record that its history is the log's, delete {} HostHistory chunks and take the history finalizer off {} Hosts\n",
            chunk_names.len(),
            finalized.len()
        ))?;
        return Ok(ExitCode::SUCCESS);
    }

    // From here on readers ask the history server, and projectors stop writing chunks at
    // their next batch.
    projection.history = HistoryHome::Log;
    projection::record(&client, ns, &projection).await?;

    let progress = bar(args.quiet, finalized.len() as u64, "hosts");
    progress.set_message("taking the history finalizer off");
    let plain = store.clone().with_history_finalizer(false);
    futures::stream::iter(finalized.iter())
        .map(|h| {
            let (plain, progress) = (&plain, &progress);
            async move {
                let written = plain.write_metadata(&h.record, None).await;
                progress.inc(1);
                written
            }
        })
        .buffer_unordered(defaults().max_in_flight as usize)
        .try_collect::<Vec<_>>()
        .await?;
    progress.finish_and_clear();

    // A projector's batch in flight when the record changed may still write a chunk: delete
    // until none is left.
    let mut deleted = 0usize;
    for attempt in 0..10 {
        let left =
            hostledger_k8s::list_names(&chunks_api, ListParams::default(), "HostHistory").await?;
        if left.is_empty() {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        deleted += left.len();
        chunks_api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .with_context(|| format!("cannot delete the HostHistory chunks of namespace {ns}"))?;
    }
    let anywhere = Api::<HostHistory>::all(client.clone())
        .list_metadata(&ListParams::default().limit(1))
        .await
        .map(|l| !l.items.is_empty())
        .unwrap_or(false);
    print_out(&format!(
        "migrated namespace {ns}: {total} history entries of {} hosts checked against the history server; deleted {deleted} HostHistory chunks; took the history finalizer off {} Hosts. Its history is read from the log now.\n",
        hosts.len(),
        finalized.len()
    ))?;
    if !anywhere {
        print_out(
            "no namespace holds HostHistory chunks any more: the CRD can go too (kubectl delete crd hosthistories.hostledger.dev)\n",
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostledger_model::Position;
    use hostledger_model::fixtures::EventBuilder;
    use hostledger_model::history::first_entry;

    fn entries(host: &str, n: usize) -> Vec<HistoryEntry> {
        (0..n)
            .map(|i| {
                let e = EventBuilder::new(host)
                    .id(format!("e{i}"))
                    .name("a")
                    .build();
                let mut entry = first_entry(
                    &e,
                    Position {
                        partition: 0,
                        offset: i as i64,
                    },
                )
                .1;
                entry.seq = i as i64 + 1;
                entry
            })
            .collect()
    }

    #[test]
    fn only_equal_histories_pass() {
        let counts = HashMap::from([
            ("dc/a/1", 2u64),
            ("dc/a/2", 2),
            ("dc/a/3", 2),
            ("dc/a/4", 2),
        ]);
        let mut chunks = HashMap::from([
            ("dc/a/1".to_owned(), entries("dc/a/1", 2)),
            ("dc/a/2".to_owned(), entries("dc/a/2", 1)),
            ("dc/a/3".to_owned(), entries("dc/a/3", 3)), // one more: a write in progress
            ("dc/a/4".to_owned(), entries("dc/a/4", 2)),
        ]);
        let mut other = entries("dc/a/4", 2);
        other[1].event_id = "other".into();
        let mut served = HashMap::from([
            ("dc/a/1".to_owned(), entries("dc/a/1", 2)),
            ("dc/a/2".to_owned(), entries("dc/a/2", 2)),
            ("dc/a/3".to_owned(), entries("dc/a/3", 2)),
            ("dc/a/4".to_owned(), other),
        ]);
        let d = differences(&counts, &mut chunks, &mut served);
        assert_eq!(
            d,
            [
                (
                    "dc/a/2".to_owned(),
                    "its chunks hold 1 of its 2 entries".to_owned()
                ),
                (
                    "dc/a/4".to_owned(),
                    "entry 2 differs (chunk: e1, history server: other)".to_owned()
                ),
            ]
        );
    }
}
