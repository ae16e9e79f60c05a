//! The `sitesync` command: parse, run the library, print, map the outcome to an exit status.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use sitesync::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = cli.command.args();
    init_logging(args.verbose, args.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(sitesync::error::EXIT_FAILED);
        }
    };
    let outcome = runtime.block_on(sitesync::execute(&cli.command));
    // The embedded store's server tasks end with the runtime; do not wait for idle connections.
    runtime.shutdown_background();
    match outcome {
        Ok(report) => {
            let mut stdout = std::io::stdout().lock();
            if args.json {
                let _ = serde_json::to_writer_pretty(&mut stdout, &report);
                let _ = writeln!(stdout);
            } else if report.dry_run {
                let _ = write!(stdout, "{}", report.plan);
            }
            if let Some(why) = &report.refused {
                eprintln!("error: {why}");
            }
            if args.quiet < 2 {
                eprintln!("{}", report.summary());
            }
            ExitCode::from(report.exit_code())
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Our messages go to stderr without timestamps; the SDK's warnings with -v, its debug with -vv.
fn init_logging(verbose: u8, quiet: u8) {
    use tracing::Level;
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::prelude::*;
    let ours = match (verbose, quiet) {
        (0, 0) => Level::INFO,
        (0, 1) => Level::WARN,
        (0, _) => Level::ERROR,
        (1, _) => Level::DEBUG,
        _ => Level::TRACE,
    };
    let others = match verbose {
        0 => LevelFilter::OFF,
        1 => LevelFilter::WARN,
        _ => LevelFilter::DEBUG,
    };
    // The embedded store's server logs whole requests, Authorization header included: a signature
    // can be replayed for minutes, so it stays out of the output like a credential. Its failures
    // reach the user anyway, as the client's errors.
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("sitesync", ours)
        .with_target("s3s", LevelFilter::OFF)
        .with_target("s3s_fs", LevelFilter::OFF)
        .with_default(others);
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_ansi(false);
    tracing_subscriber::registry().with(format).with(filter).init();
}
