//! The `sitesync` command: parse, run the library, print, map the outcome to an exit status.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use sitesync::Report;
use sitesync::cli::{BucketArgs, Cli, Command, DeploysArgs, DeploysCommand, InitArgs, ReportCommand, SyncArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Sync(args) => sync(args, args.dry_run),
        Command::Plan(args) => sync(args, true),
        Command::Init(args) => init(args),
        Command::Completions(args) => emit(|out| sitesync::cli::generate::write_completions(args.shell, out)),
        Command::Man => emit(sitesync::cli::generate::write_man),
        Command::Report(ReportCommand::Merge(args)) => match sitesync::report::merge::merge_files(&args.files) {
            Ok(report) => finish(&report, true, 0),
            Err(e) => fail(&e, e.exit_code()),
        },
        Command::Deploys(args) => deploys(args),
        Command::Rollback(args) => {
            init_logging(args.bucket.verbose, args.bucket.quiet);
            match block_on(sitesync::rollback(args)) {
                Ok(Ok(report)) => finish(&report, args.json, args.bucket.quiet),
                Ok(Err(e)) => fail(&e, e.exit_code()),
                Err(code) => code,
            }
        }
    }
}

/// Runs `work` on a runtime like a sync's; the exit status when the runtime cannot start.
fn block_on<T>(work: impl std::future::Future<Output = T>) -> Result<T, ExitCode> {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Err(ExitCode::from(sitesync::error::EXIT_FAILED));
        }
    };
    let outcome = runtime.block_on(work);
    // The embedded store's server tasks end with the runtime; do not wait for idle connections.
    runtime.shutdown_background();
    Ok(outcome)
}

/// `deploys`: the list (a line each, or `--json`), or `deploys purge`.
fn deploys(args: &DeploysArgs) -> ExitCode {
    if let Some(DeploysCommand::Purge(purge)) = &args.command {
        init_logging(purge.verbose, 0);
        return match block_on(sitesync::purge(purge)) {
            Ok(Ok(purged)) => {
                eprintln!("purged: {} kept objects deleted, {} records rewritten", purged.objects, purged.records);
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => fail(&e, e.exit_code()),
            Err(code) => code,
        };
    }
    let BucketArgs { verbose, quiet, .. } = args.bucket;
    init_logging(verbose, quiet);
    let listed = match block_on(sitesync::deploys(&args.bucket)) {
        Ok(Ok(listed)) => listed,
        Ok(Err(e)) => return fail(&e, e.exit_code()),
        Err(code) => return code,
    };
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let _ = serde_json::to_writer_pretty(&mut stdout, &serde_json::json!({ "deploys": listed }));
        let _ = writeln!(stdout);
    } else if listed.is_empty() {
        eprintln!("no deploy is recorded under this target");
    } else {
        for deploy in &listed {
            let _ = writeln!(stdout, "{}", deploy.line());
        }
    }
    ExitCode::SUCCESS
}

/// `sync`, or `plan` when `dry_run`.
fn sync(args: &SyncArgs, dry_run: bool) -> ExitCode {
    init_logging(args.verbose, args.quiet);
    match block_on(sitesync::execute(args, dry_run)) {
        Ok(Ok(report)) => finish(&report, args.json, args.quiet),
        Ok(Err(e)) => fail(&e, e.exit_code()),
        Err(code) => code,
    }
}

/// `init`: writes sync.toml and says what it found.
fn init(args: &InitArgs) -> ExitCode {
    match sitesync::cli::init::write(&args.dir, args.force) {
        Ok(written) => {
            let path = written.path.display();
            match written.found {
                Some(folder) => eprintln!("wrote {path}: source = {:?}", folder.name),
                None => eprintln!("wrote {path}; no built site found, so source = \"public\" is a guess: edit it"),
            }
            eprintln!("next: set `destination` in it, then run `sitesync plan` from that directory");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e, e.exit_code()),
    }
}

/// Prints a run's report (JSON on stdout, or a dry run's plan), its refusal and summary on stderr.
fn finish(report: &Report, json: bool, quiet: u8) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    if json {
        let _ = serde_json::to_writer_pretty(&mut stdout, report);
        let _ = writeln!(stdout);
    } else if report.dry_run {
        let _ = write!(stdout, "{}", report.plan);
    }
    if let Some(why) = &report.refused {
        eprintln!("error: {why}");
    }
    if quiet < 2 {
        eprintln!("{}", report.summary());
    }
    ExitCode::from(report.exit_code())
}

fn fail(error: &dyn std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(code)
}

/// Writes generated text to stdout; a reader that stops early (`| head`) is not an error.
fn emit(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match write(&mut stdout).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&format!("cannot write to stdout: {e}"), sitesync::error::EXIT_FAILED),
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
        .with_writer(|| sitesync::run::progress::LogWriter)
        .without_time()
        .with_target(false)
        .with_ansi(false);
    tracing_subscriber::registry().with(format).with(filter).init();
}
