//! Every example config in deploy/examples/ parses, and the bundled export is clean.

use std::path::Path;

use hostledger_producers::FetcherConfig;
use hostledger_producers::ProviderConfig;
use hostledger_producers::provider::dcexport::DcExport;
use hostledger_schemas::{Lifecycle, Timestamp};

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples")
}

#[test]
fn every_example_fetcher_config_parses() {
    let mut parsed = 0;
    for entry in std::fs::read_dir(examples()).expect("deploy/examples exists") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.starts_with("fetcher") && name.ends_with(".yaml") {
            FetcherConfig::from_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            parsed += 1;
        }
    }
    assert!(parsed >= 1, "no example fetcher configs found");
}

#[test]
fn bundled_export_is_clean_and_realistic() {
    let config = FetcherConfig::from_file(&examples().join("fetcher-dc.yaml")).expect("parses");
    let ProviderConfig::DcExport(mut dc) = config.providers[0].clone() else {
        panic!("fetcher-dc.yaml's first provider is a dc-export");
    };
    dc.path = examples().join("..").join("..").join(&dc.path);
    let listing = DcExport::new(dc)
        .read(Timestamp(0))
        .expect("sample export reads");
    assert!(listing.problems.is_empty(), "{:?}", listing.problems);
    assert!(listing.hosts.len() >= 24, "a few dozen hosts");
    let sites: std::collections::BTreeSet<_> = listing
        .hosts
        .iter()
        .filter_map(|h| h.state.region.clone())
        .collect();
    assert_eq!(sites.len(), 2);
    assert!(
        listing
            .hosts
            .iter()
            .all(|h| h.state.role.is_some() && h.state.team.is_some())
    );
    assert!(
        listing
            .hosts
            .iter()
            .any(|h| h.state.lifecycle == Lifecycle::Retired)
    );
}
