//! A coordinated run with every process in a network namespace of its own, as pods are: the
//! coordinator and the target in one, each worker in another, joined by veth pairs on a bridge
//! with 10.77.0.0/24 addresses that exist only inside these namespaces. Nothing can go through
//! a shared loopback: a worker's 127.0.0.1 is its own. The namespaces are removed at the end,
//! also when the test fails.
//!
//! Needs `ip` (iproute2) and the right to create namespaces (root, or CAP_SYS_ADMIN and
//! CAP_NET_ADMIN): without them the test fails and says what to install.

use std::process::Command;

use serde_json::Value;

use crate::coordinator::{count, read, strings, Proc, LONG};
use crate::support::{bin, TempDir};

const INSTALL: &str = "install iproute2 (`apt-get install -y iproute2`) and run the tests as root (`ip netns` needs CAP_SYS_ADMIN and CAP_NET_ADMIN)";

/// `ip ARGS`, which must succeed.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip`: {e}: {INSTALL}"));
    assert!(
        out.status.success(),
        "`ip {}` failed: {}\n{INSTALL}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Network namespaces of this test, deleted on drop (with the veth pairs and the bridge in
/// them). Processes still inside keep a deleted namespace alive until they end: drop them
/// first.
struct Namespaces(Vec<String>);

impl Namespaces {
    /// A hub (`ADDR` 10.77.0.1 on a bridge) and `workers` namespaces, worker `i` at
    /// 10.77.0.(11+i), each with a veth pair to the hub's bridge.
    fn hub_and_workers(workers: usize) -> (Namespaces, String, Vec<String>) {
        let tag = format!("ll{}", std::process::id());
        let hub = format!("{tag}-hub");
        let mut all = Namespaces(Vec::new());
        ip(&["netns", "add", &hub]);
        all.0.push(hub.clone());
        ip(&["-n", &hub, "link", "set", "lo", "up"]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "addr", "add", "10.77.0.1/24", "dev", "br0"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        let mut names = Vec::new();
        for i in 0..workers {
            let ns = format!("{tag}-w{i}");
            ip(&["netns", "add", &ns]);
            all.0.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            // Created inside the hub, its peer inside the worker: nothing in the host's
            // own namespace.
            let (h, w) = (format!("h{i}"), format!("eth{i}"));
            ip(&[
                "-n", &hub, "link", "add", &h, "type", "veth", "peer", "name", &w, "netns", &ns,
            ]);
            ip(&["-n", &hub, "link", "set", &h, "master", "br0"]);
            ip(&["-n", &hub, "link", "set", &h, "up"]);
            let addr = format!("10.77.0.{}/24", 11 + i);
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &w]);
            ip(&["-n", &ns, "link", "set", &w, "up"]);
            names.push(ns);
        }
        (all, hub, names)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.0.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The demo target's own counters, read from inside `ns` (the test itself is outside).
fn target_stats(ns: &str, url: &str) -> Value {
    let code = format!(
        "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('{url}/__stats', timeout=10).read().decode())"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", &code])
        .output()
        .expect("python3 inside the namespace");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn workers_in_network_namespaces_of_their_own_reach_the_coordinator_and_target_over_veth() {
    let dir = TempDir::new("netns");
    // Processes are declared after the namespaces: they are dropped (killed) first.
    let (_namespaces, hub, workers) = Namespaces::hub_and_workers(2);
    let target = Proc::spawn_in(
        Some(&hub),
        &strings(&[
            "demo-target",
            "--host",
            "10.77.0.1",
            "--port",
            "0",
            "--latency",
            "fixed(2ms)",
        ]),
        &[],
    );
    target.wait_for("listening on http://10.77.0.1:", LONG);
    let target_url = target
        .out()
        .lines()
        .find_map(|l| l.strip_prefix("listening on "))
        .unwrap()
        .to_owned();
    let text = format!(
        "host: {target_url}\nload:\n  users: 4\n  run_time: 4s\nuser_types:\n  - name: u\n    tasks:\n      - request: {{ path: /api/products }}\n"
    );
    std::fs::write(dir.path("s.yaml"), text).unwrap();
    let file = dir.join("s.yaml");
    let merged = dir.join("m.json");
    let token = [("LOADLENS_COORDINATOR_TOKEN", "netns-s3cret")];
    let mut c = Proc::spawn_in(
        Some(&hub),
        &strings(&[
            "coordinator",
            &file,
            "--workers",
            "2",
            "--listen",
            "10.77.0.1:0",
            "--no-tui",
            "--json",
            &merged,
        ]),
        &token,
    );
    c.wait_for("listening on http://10.77.0.1:", LONG);
    let url = c
        .out()
        .lines()
        .find_map(|l| l.strip_prefix("listening on "))
        .unwrap()
        .to_owned();
    let jsons: Vec<String> = (0..2).map(|i| dir.join(&format!("w{i}.json"))).collect();
    let mut ws: Vec<Proc> = workers
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let index = i.to_string();
            Proc::spawn_in(
                Some(ns),
                &strings(&[
                    "run",
                    &file,
                    "--coordinator",
                    &url,
                    "--workers",
                    "2",
                    "--worker-index",
                    &index,
                    "--json",
                    &jsons[i],
                    "--no-tui",
                ]),
                &token,
            )
        })
        .collect();
    for w in &mut ws {
        w.expect_exit(0, LONG);
    }
    c.expect_exit(0, LONG);
    let m = read(&merged);
    let total = count(&m);
    assert!(total > 0);
    let results: Vec<Value> = jsons.iter().map(|j| read(j)).collect();
    assert_eq!(total, results.iter().map(count).sum::<u64>());
    for r in &results {
        assert!(count(r) > 0, "every worker sent requests: {r:#}");
    }
    let stats = target_stats(&hub, &target_url);
    assert_eq!(
        stats["routes"]["GET /api/products"].as_u64(),
        Some(total),
        "the target's own count"
    );
    // A worker's loopback is its own: the coordinator is not there.
    let port = url.rsplit(':').next().unwrap();
    let probe_run = Command::new("ip")
        .args(["netns", "exec", &workers[0], bin(), "run", "--url"])
        .arg(format!("http://127.0.0.1:{port}/healthz"))
        .args(["-n", "1", "--json", &dir.join("probe.json"), "--no-tui"])
        .output()
        .unwrap();
    assert_eq!(
        probe_run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&probe_run.stderr)
    );
    let probe = read(&dir.join("probe.json"));
    assert_eq!(probe["aggregate"]["failure_count"], 1, "{probe:#}");
}
