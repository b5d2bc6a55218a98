//! `loadlens demo`: the main job on the built-in demo. Starts the demo target on a free
//! loopback port, runs `examples/storefront.yaml` against it and writes the reports.
//!
//! The demo also shows where the time went: it turns the trace receiver on (a free loopback
//! port, every request sampled) and points the demo target's own spans at it, so the report
//! has its breakdown with nothing else running. `--slow OPERATION` makes one of the demo
//! target's simulated operations slow, and the breakdown blames it.

use std::net::{Ipv4Addr, SocketAddr};

use loadlens_core::scenario::Scenario;
use tokio_util::sync::CancellationToken;

use crate::cli::{DemoArgs, RunArgs};
use crate::demo_target::{DemoConfig, DemoTarget, Operation};
use crate::exit::{Exit, Failure};
use crate::runner::{self, Outputs};

/// The scenario the demo runs, compiled into the binary so `loadlens demo` works from anywhere.
pub const STOREFRONT: &str = include_str!("../../../examples/storefront.yaml");

/// Run the demo.
pub async fn run(args: DemoArgs, console: crate::live::Console) -> Result<Exit, Failure> {
    let internal = |m: String| Failure::new(Exit::Internal, m);
    // The probe that found the receiver's port holds it until the demo target has its own
    // port: released first, the kernel could give the demo target that very port.
    let (receiver, probe) = receiver_addr(&args.integrations).map_err(|e| {
        internal(format!(
            "cannot find a free port for the trace receiver: {e}"
        ))
    })?;
    let traces = format!("http://{receiver}/v1/traces")
        .parse()
        .map_err(|e| internal(format!("trace receiver address {receiver}: {e}")))?;
    let mut config = DemoConfig::default().with_otlp_endpoint(traces);
    if let Some(slow) = args.slow {
        config = config.with_operation(slow, Operation::slow());
    }
    let target = DemoTarget::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config)
        .await
        .map_err(|e| internal(format!("cannot start the demo target: {e}")))?;
    drop(probe);
    let addr = target.local_addr();
    let stop = CancellationToken::new();
    let server = tokio::spawn(target.serve(stop.clone()));
    say!("demo target listening on http://{addr}");
    if let Some(slow) = args.slow {
        say!(
            "demo target: the {slow} operation is slow ({})",
            Operation::slow()
        );
    }

    let scenario = Scenario::from_str_named(&with_traces(receiver), "examples/storefront.yaml")
        .map_err(|e| internal(e.to_string()))?;
    let run_args = RunArgs {
        host: vec![format!("http://{addr}")],
        users: args.users,
        run_time: Some(args.run_time),
        integrations: args.integrations.clone(),
        ..RunArgs::default()
    };
    let prepared = runner::prepare(&run_args, Some((&scenario, "examples/storefront.yaml")))?;
    let outputs = Outputs {
        json: Some(args.out.join("result.json")),
        csv: Some(args.out.join("storefront")),
        html: Some(args.out.join("report.html")),
        progress_every: args.progress_interval,
        web: Some(args.web.clone()),
        headless: true,
        no_tui: args.no_tui,
        console,
        ..Outputs::default()
    };
    let exit = runner::execute(prepared, &outputs).await;
    stop.cancel();
    let _ = server.await;
    if exit.is_ok() {
        say!("\nReports are in {}/ — result.json (schemas/result.schema.json) and Locust-style CSVs.", args.out.display());
        say!(
            "HTML report: {} (open it in a browser; it needs no network)",
            args.out.join("report.html").display()
        );
    }
    exit
}

/// The storefront scenario with a `traces:` section: the receiver on `receiver` (OTLP/HTTP
/// only), every request sampled, and a join window that keeps the end of the demo short (the
/// demo target exports within a fraction of a second). `--trace-*` flags still override it.
fn with_traces(receiver: SocketAddr) -> String {
    format!(
        "{STOREFRONT}\n# Added by `loadlens demo`: the demo target sends its spans here.\n\
         traces:\n  http: \"{receiver}\"\n  grpc: \"off\"\n  sample_ratio: 1\n  join_window: 3s\n"
    )
}

/// Where the demo target sends its spans: the address given with `--trace-receiver` (or its
/// environment twin), else a free loopback port, with the listener that holds it until the
/// caller lets it go (the receiver takes the port a moment later; a port fixed in advance
/// could be in use, and two demos may run at once).
fn receiver_addr(
    integrations: &clap::ArgMatches,
) -> std::io::Result<(SocketAddr, Option<std::net::TcpListener>)> {
    let given = integrations
        .try_get_one::<String>("trace-receiver")
        .ok()
        .flatten()
        .and_then(|s| match s.trim().parse::<u16>() {
            // A port alone means loopback, as `--trace-receiver` reads it.
            Ok(port) => Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
            Err(_) => s.trim().parse::<SocketAddr>().ok(),
        });
    match given {
        Some(addr) => Ok((addr, None)),
        None => {
            let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            Ok((probe.local_addr()?, Some(probe)))
        }
    }
}
