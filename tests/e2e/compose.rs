//! docker-compose.yml, checked where no container engine runs: Debian's docker-compose
//! validates it (`config`), and what it names is checked against the repository and the code:
//! every file it mounts exists, each fetcher's config and export are there, hostledger's ports
//! are the binary's defaults and published, and its topics, partitions, namespace and Kafka
//! address are those of deploy/defaults.env and the local stack.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hostledger_e2e::hostledger_binary;
use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

fn defaults() -> BTreeMap<String, String> {
    std::fs::read_to_string(repo().join("deploy/defaults.env"))
        .expect("deploy/defaults.env")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// `docker-compose config`: the file as the tool reads it, every path made absolute.
fn compose_config() -> Value {
    let tool =
        std::env::var("HOSTLEDGER_DOCKER_COMPOSE").unwrap_or_else(|_| "docker-compose".into());
    let out = Command::new(&tool)
        .args(["-f", "docker-compose.yml", "-p", "hostledger", "config"])
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (scripts/test installs Debian's docker-compose)"));
    assert!(
        out.status.success(),
        "docker-compose config refused docker-compose.yml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::from_slice(&out.stdout).expect("docker-compose config prints YAML")
}

/// (source on this machine, target in the container) of a service's bind mounts.
fn binds(service: &Value) -> Vec<(PathBuf, String)> {
    let Some(volumes) = service["volumes"].as_sequence() else {
        return Vec::new();
    };
    volumes
        .iter()
        .filter_map(|v| match v {
            Value::String(s) => {
                let mut parts = s.split(':');
                let source = parts.next()?;
                let target = parts.next()?;
                source
                    .starts_with('/')
                    .then(|| (PathBuf::from(source), target.to_owned()))
            }
            Value::Mapping(_) if v["type"] == "bind" => Some((
                PathBuf::from(v["source"].as_str()?),
                v["target"].as_str()?.to_owned(),
            )),
            _ => None,
        })
        .collect()
}

/// The file on this machine that `path` (absolute, or relative to the working dir) is inside
/// the service's container.
fn on_host(service: &Value, path: &str) -> PathBuf {
    let absolute = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!(
            "{}/{path}",
            service["working_dir"]
                .as_str()
                .expect("a working_dir for a relative path")
        )
    };
    let (source, target) = binds(service)
        .into_iter()
        .filter(|(_, t)| absolute.starts_with(&format!("{t}/")))
        .max_by_key(|(_, t)| t.len())
        .unwrap_or_else(|| panic!("{absolute} is in no volume of the service"));
    source.join(&absolute[target.len() + 1..])
}

fn args(service: &Value) -> Vec<String> {
    service["command"]
        .as_sequence()
        .map(|c| {
            c.iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn flag(service: &Value, name: &str) -> Option<String> {
    args(service)
        .iter()
        .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_owned))
}

fn environment(service: &Value, name: &str) -> Option<String> {
    match &service["environment"] {
        Value::Mapping(m) => m.get(name).and_then(|v| v.as_str()).map(str::to_owned),
        Value::Sequence(items) => items.iter().find_map(|i| {
            i.as_str()?
                .strip_prefix(&format!("{name}="))
                .map(str::to_owned)
        }),
        _ => None,
    }
}

/// The port of a `[default: 127.0.0.1:9464]` in `hostledger SUBCOMMAND --help`.
fn default_port(subcommand: &str, option: &str) -> u16 {
    let out = Command::new(hostledger_binary())
        .args([subcommand, "--help"])
        .output()
        .expect("hostledger --help");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let at = help
        .find(&format!("--{option}"))
        .unwrap_or_else(|| panic!("{subcommand} --help has no --{option}"));
    let rest = &help[at..];
    let default = &rest[rest.find("[default: ").expect("a default") + 10..];
    let default = &default[..default.find(']').expect("]")];
    default
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("not an address: {default}"))
}

#[test]
fn the_compose_file_is_valid_and_agrees_with_the_code() {
    let config = compose_config();
    let services = config["services"].as_mapping().expect("services");
    let service = |name: &str| {
        services
            .get(name)
            .unwrap_or_else(|| panic!("no service {name} in docker-compose.yml"))
    };
    let state = repo().join(".stack");
    for (name, s) in services {
        for (source, _) in binds(s) {
            // .stack/docker is made by the certs service on the first run.
            if !source.starts_with(&state) {
                assert!(
                    source.exists(),
                    "service {name:?} mounts {}, which does not exist",
                    source.display()
                );
            }
        }
    }

    // The image hostledger's services run is built from the repository's Containerfile.
    let build = &service("projector")["build"];
    let context = PathBuf::from(build["context"].as_str().expect("build context"));
    let file = build["dockerfile"].as_str().expect("dockerfile");
    assert!(
        context.join(file).is_file(),
        "{file} in {}",
        context.display()
    );

    // Each fetcher's config and what it lists are there.
    for name in ["fetcher-dc", "fetcher-aws"] {
        let s = service(name);
        let config = on_host(s, &flag(s, "config").expect("--config"));
        let text = std::fs::read_to_string(&config)
            .unwrap_or_else(|e| panic!("{name}: {}: {e}", config.display()));
        let fetcher: Value = serde_yaml::from_str(&text).expect("a YAML fetcher config");
        for provider in fetcher["providers"].as_sequence().expect("providers") {
            if let Some(path) = provider["path"].as_str() {
                assert!(
                    on_host(s, path).exists(),
                    "{name}: the export {path} is not in the mounted files"
                );
            }
        }
    }

    // hostledger's ports: the binary's defaults, published by the service whose network
    // namespace they share.
    let kafka = service("kafka");
    let published: Vec<String> = kafka["ports"]
        .as_sequence()
        .expect("kafka's ports")
        .iter()
        .map(|p| match p {
            // "127.0.0.1:9464:9464" as written, "9464/tcp" as `config` prints it.
            Value::String(s) => {
                let container = s.rsplit(':').next().unwrap_or_default();
                container.split('/').next().unwrap_or_default().to_owned()
            }
            other => format!("{}", other["target"].as_u64().unwrap_or_default()),
        })
        .collect();
    for (name, subcommand) in [
        ("projector", "project"),
        ("fetcher-dc", "fetch"),
        ("fetcher-aws", "fetch"),
    ] {
        let s = service(name);
        assert_eq!(s["network_mode"], "service:kafka", "{name}");
        let addr = flag(s, "metrics-addr").expect("--metrics-addr");
        let port = addr.rsplit_once(':').expect("host:port").1.to_owned();
        assert!(
            published.contains(&port),
            "{name}'s port {port} is not published: {published:?}"
        );
        if name != "fetcher-aws" {
            let default = default_port(subcommand, "metrics-addr");
            assert_eq!(
                port,
                default.to_string(),
                "{name}: the binary's default port"
            );
        }
        let bootstrap = environment(s, "HOSTLEDGER_KAFKA_BOOTSTRAP").expect("bootstrap");
        let stack =
            std::env::var("HOSTLEDGER_KAFKA_PLAINTEXT_BOOTSTRAP").expect("scripts/stack env");
        assert_eq!(bootstrap, stack, "{name}: the stack's plaintext listener");
        let advertised = environment(kafka, "KAFKA_ADVERTISED_LISTENERS").expect("listeners");
        assert!(
            advertised.contains(&format!("PLAINTEXT://{bootstrap}")),
            "{advertised}"
        );
    }

    // Topics, partitions and namespace: deploy/defaults.env's.
    let d = defaults();
    let init = args(service("kafka-init")).join(" ");
    for topic in ["EVENTS_TOPIC", "DEAD_LETTER_TOPIC", "FETCHER_STATE_TOPIC"] {
        assert!(
            init.contains(&format!("--topic {} ", d[topic])),
            "kafka-init creates {}: {init}",
            d[topic]
        );
    }
    assert!(
        init.contains(&format!(
            "--topic {} --partitions {}",
            d["EVENTS_TOPIC"], d["TOPIC_PARTITIONS"]
        )),
        "{init}"
    );
    assert_eq!(
        flag(service("projector"), "namespace").as_deref(),
        Some(d["NAMESPACE"].as_str())
    );
    let certs = args(service("certs")).join(" ");
    assert!(
        certs.contains(&format!("name: {}", d["NAMESPACE"])),
        "{certs}"
    );
}
