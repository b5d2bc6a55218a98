//! `deploy/kubernetes/`: every manifest validated offline against the Kubernetes API schemas
//! (`kubernetes-validate --strict`, from PyPI, installed by `scripts/test`), and the parts
//! that must agree with each other and with loadlens checked: the worker count, the Service
//! the workers dial, the names of the ConfigMap and Secret, and the scenario itself.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{bin, stderr, stdout};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

fn validator() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME");
    let v = Path::new(&home).join(".cache/loadlens-k8s/bin/kubernetes-validate");
    assert!(
        v.exists(),
        "kubernetes-validate is missing: run scripts/test, or \
         python3 -m venv ~/.cache/loadlens-k8s && ~/.cache/loadlens-k8s/bin/pip install kubernetes-validate==1.37.0"
    );
    v
}

/// Every document of a manifest file.
fn docs(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(deploy().join(name)).unwrap();
    loadlens_core::yaml::load_all(&text)
        .unwrap()
        .iter()
        .map(|d| loadlens_core::yaml::from_node(d, &loadlens_core::yaml::NodePath::root()).unwrap())
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn args(job: &Value) -> Vec<String> {
    job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn flag<'a>(args: &'a [String], name: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == name)
        .unwrap_or_else(|| panic!("{name} missing from {args:?}"));
    &args[i + 1]
}

#[test]
fn every_manifest_is_valid_against_the_kubernetes_schemas() {
    let kustomization = docs("kustomization.yaml");
    let mut files: Vec<String> = kustomization[0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    files.push("results-reader.yaml".into());
    for f in &files {
        let out = Command::new(validator())
            .arg("--strict")
            .arg(deploy().join(f))
            .output()
            .unwrap();
        let (so, se) = (stdout(&out), stderr(&out));
        assert!(out.status.success(), "{f}: {so}{se}");
        assert!(
            so.contains("passed") && !so.contains("ERROR") && !se.contains("ERROR"),
            "{f}: {so}{se}"
        );
    }
    // The validator rejects what the schemas do not allow: a misspelt field fails.
    let bad = std::env::temp_dir().join(format!("loadlens-k8s-bad-{}.yaml", std::process::id()));
    let workers = std::fs::read_to_string(deploy().join("workers.yaml")).unwrap();
    std::fs::write(&bad, workers.replace("completionMode:", "completionMod:")).unwrap();
    let out = Command::new(validator())
        .arg("--strict")
        .arg(&bad)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&bad);
    assert!(!out.status.success(), "{}", stdout(&out));
}

#[test]
fn the_manifests_agree_with_each_other_and_the_scenario_is_valid() {
    let k = &docs("kustomization.yaml")[0];
    for r in k["resources"].as_array().unwrap() {
        assert!(deploy().join(r.as_str().unwrap()).exists(), "{r:?}");
    }
    let generator = &k["configMapGenerator"][0];
    let configmap = generator["name"].as_str().unwrap();
    let scenario = generator["files"][0].as_str().unwrap();

    let coordinator = docs("coordinator.yaml");
    let (service, cjob) = (kind(&coordinator, "Service"), kind(&coordinator, "Job"));
    let wjob = &docs("workers.yaml")[0];
    let secret = docs("secret.yaml")[0]["metadata"]["name"].clone();

    // One worker count everywhere: pods of the Indexed Job, their --workers, the coordinator's.
    let (wargs, cargs) = (args(wjob), args(cjob));
    let n = wjob["spec"]["completions"].as_u64().unwrap();
    assert_eq!(wjob["spec"]["completionMode"].as_str(), Some("Indexed"));
    assert_eq!(wjob["spec"]["parallelism"].as_u64(), Some(n));
    assert_eq!(flag(&wargs, "--workers"), n.to_string());
    assert_eq!(flag(&cargs, "--workers"), n.to_string());

    // The workers dial the Service, which selects the coordinator's pod and its named port.
    let port = service["spec"]["ports"][0]["port"].as_u64().unwrap();
    let name = service["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        flag(&wargs, "--coordinator"),
        format!("http://{name}:{port}")
    );
    let labels = &cjob["spec"]["template"]["metadata"]["labels"];
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k.as_str()], v, "selector {k:?}");
    }
    let container = &cjob["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["ports"][0]["name"],
        service["spec"]["ports"][0]["targetPort"]
    );
    assert!(flag(&cargs, "--listen").ends_with(&format!(":{port}")));

    // Both read the scenario from the generated ConfigMap and the keys from the Secret.
    for job in [cjob, wjob] {
        let spec = &job["spec"]["template"]["spec"];
        assert_eq!(
            spec["volumes"][0]["configMap"]["name"].as_str(),
            Some(configmap)
        );
        let mount = spec["containers"][0]["volumeMounts"][0]["mountPath"]
            .as_str()
            .unwrap();
        assert_eq!(args(job)[1], format!("{mount}/{scenario}"));
        assert_eq!(
            spec["containers"][0]["envFrom"][0]["secretRef"]["name"],
            secret
        );
        assert_eq!(
            spec["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true)
        );
        assert_eq!(job["spec"]["backoffLimit"].as_u64(), Some(0));
    }

    // The scenario passes `loadlens validate`.
    let out = Command::new(bin())
        .args(["validate"])
        .arg(deploy().join(scenario))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

/// A container's args with the cluster's paths and addresses replaced by local ones.
fn localised(args: &[String], swaps: &[(&str, &str)]) -> Vec<String> {
    args.iter()
        .map(|a| {
            swaps
                .iter()
                .fold(a.clone(), |a, (from, to)| a.replace(from, to))
        })
        .collect()
}

#[test]
fn the_pods_as_the_manifests_start_them_run_the_scenario_together() {
    use std::io::Read;
    use std::process::Stdio;

    // Processes stand in for the pods: the manifests' args and environment, with the mount
    // paths, the Service and the target made local, and a short load (the same for all, as
    // the scenario hash requires).
    let target = crate::support::DemoTarget::start(&[]);
    let dir = crate::support::TempDir::new("k8s-pods");
    let coordinator = docs("coordinator.yaml");
    let cjob = kind(&coordinator, "Job");
    let wjob = &docs("workers.yaml")[0];
    let secret = &docs("secret.yaml")[0];
    let token = secret["stringData"]["LOADLENS_COORDINATOR_TOKEN"]
        .as_str()
        .unwrap()
        .to_owned();
    let scenario_dir = deploy().display().to_string();
    let results = dir.path("results").display().to_string();
    let load = ["-u", "6", "-r", "6", "-t", "3s"].map(String::from);
    let mut cargs = localised(
        &args(cjob),
        &[
            ("/etc/loadlens", &scenario_dir),
            ("/results", &results),
            ("0.0.0.0:7700", "127.0.0.1:0"),
        ],
    );
    cargs.extend(load.clone());
    let env = |job: &Value| -> Vec<(String, String)> {
        job["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let name = e["name"].as_str().unwrap().to_owned();
                let value = if name == "TARGET_HOST" {
                    target.url.clone()
                } else {
                    e["value"].as_str().unwrap().to_owned()
                };
                (name, value)
            })
            .chain([("LOADLENS_COORDINATOR_TOKEN".to_owned(), token.clone())])
            .collect()
    };
    let spawn = |args: &[String], env: Vec<(String, String)>| {
        let mut c = Command::new(bin());
        c.args(args)
            .env_remove("TEST_RUN_ID")
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("LOADLENS_COORDINATOR")
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let mut coord = spawn(&cargs, env(cjob));
    let url = crate::support::listening_url(&mut coord, "coordinator");
    let n = wjob["spec"]["completions"].as_u64().unwrap();
    let service = flag(&args(wjob), "--coordinator").to_owned();
    let workers: Vec<_> = (0..n)
        .map(|i| {
            let mut a = localised(
                &args(wjob),
                &[
                    ("/etc/loadlens", &scenario_dir),
                    (&service, &url),
                    ("/tmp/worker.json", &dir.join(&format!("w{i}.json"))),
                ],
            );
            a.extend(load.clone());
            let mut e = env(wjob);
            e.push(("JOB_COMPLETION_INDEX".into(), i.to_string()));
            spawn(&a, e)
        })
        .collect();
    let finish = |mut c: std::process::Child| {
        let mut out = String::new();
        let mut err = String::new();
        c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (c.wait().unwrap(), out, err)
    };
    for w in workers {
        let (status, out, err) = finish(w);
        assert!(status.success(), "worker: {out}\n{err}");
    }
    let (status, out, err) = finish(coord);
    assert!(status.success(), "coordinator: {out}\n{err}");
    assert!(
        !out.contains(&token) && !err.contains(&token),
        "the token leaked"
    );

    // The reports land where the manifest says, and count what the target served.
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("results/result.json")).unwrap())
            .unwrap();
    let served = crate::support::raw_get(&target.url, "/__stats")["total"]
        .as_u64()
        .unwrap();
    assert!(served > 0);
    assert_eq!(result["aggregate"]["request_count"].as_u64(), Some(served));
    assert_eq!(result["workers"].as_array().map(Vec::len), Some(n as usize));
    for f in ["report.html", "junit.xml", "summary.md"] {
        assert!(dir.path("results").join(f).exists(), "{f}");
    }
}
