//! The installation of deploy/ against the real kube-apiserver: each overlay renders with
//! `kubectl kustomize` and passes a server-side dry run (the API server validates every
//! object: schemas, RBAC, admission); the roles give each identity what it needs and nothing
//! else, as the API server's own authorizer answers; and `hostledger` run with nothing but a
//! role's permissions does its work, or is refused with the role that would grant it.

use std::path::{Path, PathBuf};
use std::process::Command;

use hostledger_e2e::{
    TestEnv, bind, client_certificate, event, foreign_ca, kubeconfig_with, run_hostledger_as,
    user_kubeconfig,
};
use hostledger_schemas::Lifecycle;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

/// Runs kubectl (the stack's, with its admin kubeconfig) with `input` on stdin.
fn kubectl(args: &[&str], input: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl on PATH (scripts/stack env)");
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(text) = input {
        stdin.write_all(text.as_bytes()).expect("write to kubectl");
    }
    drop(stdin);
    child.wait_with_output().expect("kubectl")
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn render(overlay: &str) -> String {
    let dir = repo().join("deploy/overlays").join(overlay);
    ok(
        kubectl(&["kustomize", dir.to_str().expect("utf-8 path")], None),
        &format!("kubectl kustomize deploy/overlays/{overlay}"),
    )
}

fn documents(yaml: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde_yaml::Value::deserialize(d).expect("kustomize prints YAML"))
        .collect()
}

fn find<'a>(docs: &'a [serde_yaml::Value], kind: &str, name: &str) -> &'a serde_yaml::Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered overlay"))
}

/// Applies a file of deploy/ for real (server-side, as this test's field manager).
fn apply(file: &str) {
    let path = repo().join(file);
    let args = [
        "apply",
        "--server-side",
        "--field-manager=hostledger-deploy-test",
        "-f",
        path.to_str().expect("utf-8 path"),
    ];
    ok(kubectl(&args, None), &format!("applying {file}"));
}

/// Applies the namespaces for real: a dry run cannot create objects inside a namespace that
/// the same dry run only pretends to create.
fn apply_namespaces() {
    apply("deploy/base/namespaces.yaml");
}

fn dry_run(yaml: &str) -> std::process::Output {
    kubectl(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=hostledger-deploy-test",
            "--dry-run=server",
            "-f",
            "-",
        ],
        Some(yaml),
    )
}

#[test]
fn every_overlay_renders_and_passes_a_server_side_dry_run() {
    apply_namespaces();
    for overlay in ["dev", "production"] {
        let yaml = render(overlay);
        let docs = documents(&yaml);
        let projector = find(&docs, "StatefulSet", "hostledger-projector");
        let container = &projector["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(
            container["securityContext"]["readOnlyRootFilesystem"], true,
            "{overlay}: the projector's root filesystem is read-only"
        );
        let replicas = projector["spec"]["replicas"].as_u64().expect("replicas");
        assert_eq!(replicas, if overlay == "dev" { 1 } else { 3 }, "{overlay}");
        for name in [
            "hostledger-fetcher-dc",
            "hostledger-fetcher-aws",
            "hostledger-history-server",
        ] {
            let d = find(&docs, "Deployment", name);
            let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .expect("image");
            assert!(
                image.ends_with(if overlay == "dev" { ":dev" } else { ":0.1.0" }),
                "{overlay}: {name} runs {image}"
            );
        }
        find(&docs, "APIService", "v1alpha1.history.hostledger.dev");
        for crd in [
            "hosts.hostledger.dev",
            "hosthistories.hostledger.dev",
            "hostlocks.hostledger.dev",
            "hostgroups.hostledger.dev",
        ] {
            find(&docs, "CustomResourceDefinition", crd);
        }

        let out = ok(dry_run(&yaml), &format!("the dry run of overlay {overlay}"));
        let applied = out
            .lines()
            .filter(|l| l.contains("(server dry run)"))
            .count();
        assert_eq!(applied, docs.len(), "{overlay}: every object passed: {out}");

        // The dry run checks what it is given: an invalid port is refused by the API server.
        let broken = yaml.replacen("containerPort: 9464", "containerPort: 99999", 1);
        assert_ne!(broken, yaml, "the projector's port is in the rendered YAML");
        let refused = dry_run(&broken);
        assert!(
            !refused.status.success(),
            "{overlay}: an invalid port passed"
        );
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("containerPort") && stderr.contains("hostledger-projector"),
            "{overlay}: {stderr}"
        );
    }
}

/// `kubectl auth can-i VERB RESOURCE [-n NS] --as USER`: what the API server's authorizer
/// answers for that identity.
fn can(user: &str, groups: &[&str], args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let as_user = format!("--as={user}");
    all.push(&as_user);
    let as_groups: Vec<String> = groups.iter().map(|g| format!("--as-group={g}")).collect();
    all.extend(as_groups.iter().map(String::as_str));
    let out = kubectl(&all, None);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match answer.as_str() {
        "yes" => true,
        "no" => false,
        _ => panic!(
            "kubectl {all:?}: {answer} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn each_identity_may_do_what_its_role_needs_and_nothing_else() {
    apply_namespaces();
    apply("deploy/base/identities.yaml");
    apply("deploy/base/approver.yaml");
    // "may it? who what": who is a ServiceAccount of hostledger-system, an operator (user
    // alice in group hostledger-operators), alice alone, or a reader (rita in group
    // hostledger-readers); what is `kubectl auth can-i` args.
    let checks = [
        "yes projector create hosts.hostledger.dev -n hostledger",
        "yes projector patch hosts.hostledger.dev --subresource=status -n hostledger",
        "yes projector delete hostlocks.hostledger.dev -n hostledger",
        "yes projector patch configmaps/hostledger-projection -n hostledger",
        "no  projector create hosts.hostledger.dev -n default",
        "no  projector delete namespaces",
        "no  projector delete hosts.hostledger.dev -n hostledger",
        "no  projector get secrets -n hostledger",
        "no  projector patch configmaps/other -n hostledger",
        "yes history-server create subjectaccessreviews.authorization.k8s.io",
        "yes history-server watch configmaps/hostledger-projection -A",
        "yes history-server watch hosts.hostledger.dev -A",
        "no  history-server get hosts.hostledger.dev -n hostledger",
        "no  history-server list secrets -A",
        "no  history-server patch hosts.hostledger.dev -n hostledger",
        "no  fetcher list hosts.hostledger.dev -n hostledger",
        "yes operator create hostlocks.hostledger.dev -n hostledger",
        "yes operator list hosts.hostledger.dev -n hostledger",
        "no  operator patch hosts.hostledger.dev -n hostledger",
        "no  operator patch hosts.hostledger.dev --subresource=status -n hostledger",
        "no  alice list hosts.hostledger.dev -n hostledger",
        "yes rita list hosts.hostledger.dev -n hostledger",
        "no  rita create hostlocks.hostledger.dev -n hostledger",
        "yes enrollee create certificatesigningrequests.certificates.k8s.io",
        "no  enrollee list certificatesigningrequests.certificates.k8s.io",
        "no  enrollee list hosts.hostledger.dev -n hostledger",
        "no  enrollee get secrets -n kube-system",
        "yes approver patch certificatesigningrequests.certificates.k8s.io --subresource=approval",
        "yes approver delete secrets -n kube-system",
        "no  approver get secrets -n hostledger",
        "no  approver list hosts.hostledger.dev -n hostledger",
    ];
    for check in checks {
        let words: Vec<&str> = check.split_whitespace().collect();
        let (expected, who, args) = (words[0] == "yes", words[1], &words[2..]);
        let account = format!("system:serviceaccount:hostledger-system:hostledger-{who}");
        let (user, groups) = match who {
            "operator" => ("alice", vec!["hostledger-operators"]),
            // A bootstrap token's user (hostledger token create).
            "enrollee" => (
                "system:bootstrap:abcdef",
                vec!["system:bootstrappers", "system:bootstrappers:hostledger"],
            ),
            "alice" => ("alice", Vec::new()),
            // An enrolled reader (hostledger enroll --role reader).
            "rita" => ("rita", vec!["hostledger-readers"]),
            _ => (account.as_str(), Vec::new()),
        };
        assert_eq!(can(user, &groups, args), expected, "{check}");
    }
    // Signers are not a resource kubectl knows: ask the authorizer directly.
    let approver = "system:serviceaccount:hostledger-system:hostledger-approver";
    for (verb, signer, expected) in [
        ("approve", "hostledger.dev/kafka-client", true),
        ("sign", "hostledger.dev/kafka-client", true),
        // People's certificates: approved, but signed by kube-controller-manager.
        ("approve", "kubernetes.io/kube-apiserver-client", true),
        ("sign", "kubernetes.io/kube-apiserver-client", false),
        (
            "approve",
            "kubernetes.io/kube-controller-manager-client",
            false,
        ),
    ] {
        assert_eq!(
            signer_allowed(approver, verb, signer),
            expected,
            "{verb} {signer}"
        );
    }
}

/// What the authorizer answers for `user` doing `verb` on signer `name` (a SubjectAccessReview).
fn signer_allowed(user: &str, verb: &str, name: &str) -> bool {
    let review = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "resourceAttributes": {
            "group": "certificates.k8s.io", "resource": "signers", "verb": verb, "name": name,
        }},
    });
    let out = kubectl(
        &["create", "-f", "-", "-o", "jsonpath={.status.allowed}"],
        Some(&review.to_string()),
    );
    match String::from_utf8_lossy(&out.stdout).trim() {
        "true" => true,
        "false" | "" => false,
        other => panic!(
            "SubjectAccessReview: {other} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[tokio::test]
async fn hostledger_runs_with_only_its_roles_permissions() {
    let env = TestEnv::new("deploy", 1).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let events: Vec<_> = (0..5)
        .map(|i| {
            event(
                &format!("dc/pdx1/deploy-{i}"),
                1,
                i,
                Lifecycle::InService,
                "web",
            )
        })
        .collect();
    env.produce(&events).await;

    let projector_user = format!("projector-{}", &env.namespace);
    let reader_user = format!("reader-{}", &env.namespace);
    let projector = user_kubeconfig(dir.path(), &projector_user);
    let reader = user_kubeconfig(dir.path(), &reader_user);

    // Before any binding the projector's identity is refused, and told what grants it.
    let refused = run_hostledger_as(Some(projector.as_path()), &env.scoped(&["replay"]))
        .await
        .failed();
    assert!(
        refused.contains(&projector_user)
            && refused.contains("kubectl create rolebinding")
            && refused.contains(&format!("-n {}", env.namespace)),
        "{refused}"
    );

    bind(&env, "hostledger:projector", &projector_user).await;
    bind(&env, "hostledger:projection-recorder", &projector_user).await;
    bind(&env, "hostledger:reader", &reader_user).await;

    run_hostledger_as(Some(projector.as_path()), &env.scoped(&["replay"]))
        .await
        .ok();
    assert_eq!(
        env.list_hosts(None).await.len(),
        5,
        "the projector's replay wrote the Hosts"
    );

    // The reader reads; its writes are refused, naming the role that has them.
    let uptime = run_hostledger_as(
        Some(reader.as_path()),
        &env.scoped(&["uptime", "-o", "json"]),
    )
    .await
    .ok();
    let uptime: serde_json::Value = serde_json::from_str(&uptime).expect("uptime prints JSON");
    assert_eq!(uptime["total"]["hosts"].as_u64(), Some(5), "{uptime}");
    env.produce(&[event(
        "dc/pdx1/deploy-new",
        1,
        10,
        Lifecycle::InService,
        "db",
    )])
    .await;
    let write = run_hostledger_as(Some(reader.as_path()), &env.scoped(&["replay"]))
        .await
        .failed();
    println!("a reader's replay: {write}");
    assert!(
        write.contains(&reader_user) && write.contains("hostledger:projector"),
        "{write}"
    );

    // The projector's binding is this namespace's: another one refuses it.
    let other = env.extra_namespace("other").await;
    let mut elsewhere = env.scoped(&["replay"]);
    let at = elsewhere
        .iter()
        .position(|a| *a == "--namespace")
        .expect("scoped names the namespace");
    elsewhere[at + 1] = &other;
    let outside = run_hostledger_as(Some(projector.as_path()), &elsewhere)
        .await
        .failed();
    assert!(outside.contains(&format!("-n {other}")), "{outside}");
    env.cleanup().await;
}

/// What `kubectl auth can-i` answers for one of the stack's own identities (its kubeconfig
/// from `scripts/stack env`) in the inventory's namespace.
fn stack_identity_can(identity: &str, args: &[&str]) -> bool {
    let var = format!("HOSTLEDGER_{}_KUBECONFIG", identity.to_uppercase());
    let kubeconfig = std::env::var(&var).unwrap_or_else(|_| panic!("{var} (scripts/stack env)"));
    let mut all = vec!["--kubeconfig", kubeconfig.as_str(), "auth", "can-i"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-n", "hostledger"]);
    let out = kubectl(&all, None);
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        other => panic!(
            "kubectl {all:?}: {other} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn the_stacks_identities_are_bound_to_their_roles() {
    assert!(stack_identity_can(
        "projector",
        &["patch", "hosts.hostledger.dev"]
    ));
    assert!(stack_identity_can(
        "projector",
        &["patch", "hosts.hostledger.dev", "--subresource=status"]
    ));
    assert!(!stack_identity_can("projector", &["create", "namespaces"]));
    assert!(stack_identity_can(
        "reader",
        &["list", "hosts.hostledger.dev"]
    ));
    assert!(!stack_identity_can(
        "reader",
        &["patch", "hosts.hostledger.dev"]
    ));
    assert!(stack_identity_can(
        "operator",
        &["create", "hostlocks.hostledger.dev"]
    ));
    assert!(!stack_identity_can(
        "operator",
        &["patch", "hosts.hostledger.dev", "--subresource=status"]
    ));
}

#[tokio::test]
async fn the_api_server_refuses_anonymous_requests_and_certificates_of_another_ca() {
    let env = TestEnv::new("deploy-strangers", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");

    // No credentials at all: the API server sees system:anonymous, which RBAC allows nothing.
    let admin = kube::config::Kubeconfig::read().expect("the stack's kubeconfig");
    let cluster = admin.clusters[0].cluster.clone().expect("cluster");
    let anonymous = dir.path().join("anonymous.kubeconfig");
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "stack", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data,
        }}],
        "users": [{"name": "nobody", "user": {}}],
        "contexts": [{"name": "nobody", "context": {"cluster": "stack", "user": "nobody"}}],
        "current-context": "nobody",
    });
    std::fs::write(&anonymous, config.to_string()).expect("kubeconfig");
    let refused = run_hostledger_as(Some(&anonymous), &env.scoped(&["uptime"]))
        .await
        .failed();
    println!("anonymous: {refused}");
    assert!(refused.contains("system:anonymous"), "{refused}");
    assert!(refused.contains("carried no credentials"), "{refused}");

    // A client certificate the cluster's CA did not sign: not authenticated at all (401).
    let (ca_crt, ca_key) = foreign_ca(dir.path(), "elsewhere-kube-ca");
    let (crt, key) = client_certificate(dir.path(), "hostledger-reader", (&ca_crt, &ca_key));
    let foreign = kubeconfig_with(dir.path(), "foreign", &crt, &key);
    let refused = run_hostledger_as(Some(&foreign), &env.scoped(&["uptime"]))
        .await
        .failed();
    println!("another CA: {refused}");
    assert!(
        refused.contains("did not accept this client's credentials"),
        "{refused}"
    );
    assert!(refused.contains("401"), "{refused}");
    env.cleanup().await;
}
