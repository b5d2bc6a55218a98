//! `loadlens demo`: the main job on the built-in demo. Starts the demo target on a free
//! loopback port, runs `examples/storefront.yaml` against it and writes the reports.

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
    let mut config = DemoConfig::default();
    if let Some(slow) = args.slow {
        config = config.with_operation(slow, Operation::slow());
    }
    let target = DemoTarget::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config)
        .await
        .map_err(|e| internal(format!("cannot start the demo target: {e}")))?;
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

    let scenario = Scenario::from_str_named(STOREFRONT, "examples/storefront.yaml")
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
