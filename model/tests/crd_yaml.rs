//! The CRD YAML in deploy/crds/ is generated from the Rust type; this fails when it is stale.

#[test]
fn committed_crds_match_the_rust_types() {
    for (file, yaml) in hostledger_model::crd::crd_documents() {
        let path = format!("{}/../deploy/crds/{file}", env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            committed == yaml,
            "deploy/crds/{file} is stale: regenerate with `cargo run -p hostledger-cli -- crd --write deploy/crds`"
        );
    }
}

/// `kubectl apply -k deploy/crds` (scripts/stack, the deploy/ overlays) installs exactly the
/// files the CRDs are generated into.
#[test]
fn the_crds_kustomization_lists_every_crd_file() {
    let path = format!(
        "{}/../deploy/crds/kustomization.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut listed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .collect();
    let documents = hostledger_model::crd::crd_documents();
    let mut files: Vec<&str> = documents.iter().map(|(file, _)| *file).collect();
    listed.sort_unstable();
    files.sort_unstable();
    assert_eq!(
        listed, files,
        "deploy/crds/kustomization.yaml must list the generated CRD files under resources:"
    );
}

#[test]
fn crd_has_status_subresource_and_printer_columns() {
    use kube::CustomResourceExt;
    let crd = hostledger_model::Host::crd();
    let version = &crd.spec.versions[0];
    assert_eq!(crd.spec.group, "hostledger.dev");
    assert_eq!(version.name, "v1alpha1");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .as_ref()
        .expect("printer columns")
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for wanted in ["Hostname", "Provider", "Region", "Role", "Phase"] {
        assert!(columns.contains(&wanted), "{columns:?}");
    }
}
