//! A data-centre export flows through the real Kafka broker into Hosts in the real
//! kube-apiserver, and the Hosts follow edits of the export.

use std::collections::BTreeMap;

use hostledger_e2e::TestEnv;
use hostledger_model::Host;
use hostledger_schemas::EventKind;

const HEADER: &str = "serial,hostname,site,zone,status,role,team,ips,model,rack\n";

fn labels(host: &Host) -> BTreeMap<String, String> {
    host.metadata.labels.clone().unwrap_or_default()
}

fn by_host_id(hosts: Vec<Host>) -> BTreeMap<String, Host> {
    hosts
        .into_iter()
        .map(|h| {
            (
                h.status
                    .as_ref()
                    .expect("projected Hosts have a status")
                    .host_id
                    .clone(),
                h,
            )
        })
        .collect()
}

#[tokio::test]
async fn export_edits_flow_into_hosts() {
    let env = TestEnv::new("dc", 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("inventory.csv");
    let config = env.dc_fetcher_config(dir.path(), &export, 0);

    // Given three hosts in the export,
    std::fs::write(
        &export,
        format!(
            "{HEADER}\
             PX100,log-pdx1-01,pdx1,hall-a,active,log,observability,10.1.0.1,R650,A01\n\
             PX200,db-pdx1-01,pdx1,hall-a,maintenance,db,data,10.1.0.2,R750,A02\n\
             FR300,web-fra2-01,fra2,hall-1,active,web,storefront,10.2.0.1,R650,C07\n"
        ),
    )
    .expect("write export");
    env.fetch_once(&config).await;
    env.project_until_caught_up().await;

    // then three Hosts with the right labels and phase.
    let hosts = by_host_id(env.list_hosts(None).await);
    assert_eq!(hosts.len(), 3, "{:?}", hosts.keys());
    let log = &hosts["dc/pdx1/PX100"];
    assert_eq!(
        labels(log),
        BTreeMap::from([
            ("provider".into(), "dc".into()),
            ("region".into(), "pdx1".into()),
            ("role".into(), "log".into()),
            ("team".into(), "observability".into()),
            ("phase".into(), "InService".into()),
        ])
    );
    let status = log.status.as_ref().expect("status");
    assert_eq!(status.state.name, "log-pdx1-01");
    assert_eq!(status.state.addresses, ["10.1.0.1"]);
    assert_eq!(
        status.state.attributes.get("rack").map(String::as_str),
        Some("A01")
    );
    assert!(status.in_service_since.is_some());
    assert_eq!(
        hosts["dc/pdx1/PX200"]
            .status
            .as_ref()
            .expect("status")
            .state
            .lifecycle
            .as_str(),
        "OutOfService"
    );
    assert_eq!(labels(&hosts["dc/fra2/FR300"])["region"], "fra2");

    // Label selection works as users will use it.
    let selected = env.list_hosts(Some("role=log,provider=dc")).await;
    assert_eq!(selected.len(), 1);
    assert_eq!(
        selected[0].status.as_ref().expect("status").host_id,
        "dc/pdx1/PX100"
    );
    let untouched_version = hosts["dc/fra2/FR300"].metadata.resource_version.clone();

    // When one host changes role and another is decommissioned,
    std::fs::write(
        &export,
        format!(
            "{HEADER}\
             PX100,log-pdx1-01,pdx1,hall-a,active,metrics,observability,10.1.0.1,R650,A01\n\
             PX200,db-pdx1-01,pdx1,hall-a,decommissioned,db,data,10.1.0.2,R750,A02\n\
             FR300,web-fra2-01,fra2,hall-1,active,web,storefront,10.2.0.1,R650,C07\n"
        ),
    )
    .expect("edit export");
    env.fetch_once(&config).await;
    env.project_until_caught_up().await;

    // then the Hosts follow, and the unchanged one is not even rewritten.
    let hosts = by_host_id(env.list_hosts(None).await);
    assert_eq!(labels(&hosts["dc/pdx1/PX100"])["role"], "metrics");
    let retired = &hosts["dc/pdx1/PX200"];
    assert_eq!(
        retired
            .status
            .as_ref()
            .expect("status")
            .state
            .lifecycle
            .as_str(),
        "Retired"
    );
    assert_eq!(labels(retired)["phase"], "Retired");
    assert_eq!(
        hosts["dc/fra2/FR300"].metadata.resource_version,
        untouched_version
    );

    // When a host disappears from a complete export (grace 0 here), it goes missing.
    std::fs::write(
        &export,
        format!(
            "{HEADER}\
             PX100,log-pdx1-01,pdx1,hall-a,active,metrics,observability,10.1.0.1,R650,A01\n\
             PX200,db-pdx1-01,pdx1,hall-a,decommissioned,db,data,10.1.0.2,R750,A02\n"
        ),
    )
    .expect("edit export");
    env.fetch_once(&config).await;
    // An unchanged export publishes nothing, even from a freshly started fetcher.
    env.fetch_once(&config).await;
    env.project_until_caught_up().await;
    let hosts = by_host_id(env.list_hosts(None).await);
    assert_eq!(
        hosts["dc/fra2/FR300"]
            .status
            .as_ref()
            .expect("status")
            .state
            .lifecycle
            .as_str(),
        "Missing"
    );

    // The log holds every change exactly once.
    let mut kinds: Vec<(String, EventKind)> = env
        .read_events()
        .into_iter()
        .map(|e| (e.host_id, e.kind))
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.as_str().cmp(b.1.as_str())));
    assert_eq!(
        kinds,
        vec![
            ("dc/fra2/FR300".into(), EventKind::HostDiscovered),
            ("dc/fra2/FR300".into(), EventKind::HostWentMissing),
            ("dc/pdx1/PX100".into(), EventKind::HostChanged),
            ("dc/pdx1/PX100".into(), EventKind::HostDiscovered),
            ("dc/pdx1/PX200".into(), EventKind::HostDiscovered),
            ("dc/pdx1/PX200".into(), EventKind::HostRetired),
        ]
    );
    env.cleanup().await;
}
