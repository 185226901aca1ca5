//! The container image, built by `scripts/image` with buildah from the Containerfile's final
//! stage. Containers cannot run on this machine (no engine; crun is refused setrlimit), so the
//! check is the image's own root filesystem: mounted with `buildah mount`, the binary runs from
//! it under chroot (its libraries, not the machine's) as the image's user, and prints its
//! version and the CRDs.

use std::path::{Path, PathBuf};
use std::process::Command;

use hostledger_e2e::hostledger_binary;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

fn buildah() -> String {
    std::env::var("HOSTLEDGER_BUILDAH").unwrap_or_else(|_| "buildah".into())
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

/// A working container of an image, removed (with the image) when dropped.
struct Mounted {
    container: String,
    image: String,
    root: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let b = buildah();
        run(&b, &["umount", &self.container]);
        run(&b, &["rm", &self.container]);
        run(&b, &["rmi", "--force", &self.image]);
    }
}

#[test]
fn the_image_runs_hostledger_from_its_own_root_filesystem() {
    let tag = format!(
        "localhost/hostledger:test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let binary = hostledger_binary();
    let script = repo().join("scripts/image");
    let built = ok(
        run(
            script.to_str().expect("utf-8 path"),
            &[
                "--binary",
                binary.to_str().expect("utf-8 path"),
                "--tag",
                &tag,
            ],
        ),
        "scripts/image --binary",
    );
    assert_eq!(
        built.lines().last(),
        Some(tag.as_str()),
        "it prints the image's name"
    );

    let b = buildah();
    let container = ok(run(&b, &["from", &tag]), "buildah from");
    let root = ok(run(&b, &["mount", &container]), "buildah mount");
    let image = Mounted {
        container,
        image: tag.clone(),
        root: PathBuf::from(root),
    };

    // The image's configuration: its user and its entrypoint.
    let config = ok(
        run(
            &b,
            &[
                "inspect",
                "--format",
                "{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}}",
                &tag,
            ],
        ),
        "buildah inspect",
    );
    assert_eq!(config, "65532:65532 [/usr/local/bin/hostledger]");
    // Nothing but hostledger and what it links: no shell, no package manager.
    assert!(!image.root.join("bin/sh").exists(), "a shell in the image");
    assert!(
        image
            .root
            .join("etc/ssl/certs/ca-certificates.crt")
            .is_file()
    );

    let in_image = |args: &[&str]| {
        let mut all = vec![
            "--userspec=65532:65532",
            image.root.to_str().expect("utf-8 path"),
            "/usr/local/bin/hostledger",
        ];
        all.extend_from_slice(args);
        run("chroot", &all)
    };
    let version = ok(
        in_image(&["--version"]),
        "hostledger --version in the image",
    );
    assert_eq!(version, format!("hostledger {}", env!("CARGO_PKG_VERSION")));
    let crds = ok(in_image(&["crd"]), "hostledger crd in the image");
    assert_eq!(
        crds,
        hostledger_model::crd::crd_yaml().trim_end(),
        "the image's binary prints the CRDs this build does"
    );
}

#[test]
fn a_missing_binary_is_refused_with_what_to_build() {
    let script = repo().join("scripts/image");
    let out = run(
        script.to_str().expect("utf-8 path"),
        &["--binary", "/nonexistent/hostledger"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/hostledger is not an executable")
            && stderr.contains("cargo build --release -p hostledger-cli"),
        "{stderr}"
    );
}
