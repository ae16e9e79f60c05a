//! The conventions of a command-line tool, on the real binary: `init` writes a `sync.toml` that
//! loads, shell completions and the man page come from the clap definition and miss no flag, and
//! `report merge` adds the reports of real runs and exits as the whole run would have.
//!
//! The lists of flags and shells checked here are read from clap's `Command`, not written out, so
//! a flag added to `SyncArgs` is covered without touching this file.

mod support;

use std::fs;
use std::path::Path;

use clap::CommandFactory;
use serde_json::{Value, json};
use sitesync::cli::Cli;
use support::{Outcome, Test, Tree};

// ---- init -------------------------------------------------------------------------------------

/// The `source` a written `sync.toml` sets, read as TOML.
fn written_source(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{}: not TOML: {e}\n{text}", path.display()));
    table["source"].as_str().unwrap_or_else(|| panic!("no string `source` in\n{text}")).to_owned()
}

/// Creates `dir/name/`, with a file in it when `full`.
fn folder(dir: &Path, name: &str, full: bool) {
    fs::create_dir_all(dir.join(name)).unwrap();
    if full {
        fs::write(dir.join(name).join("index.html"), "<h1>hi</h1>").unwrap();
    }
}

#[test]
fn init_detects_the_built_folder() {
    // (folders with files, empty folders, expected source, a generator the comment names)
    let cases: &[(&[&str], &[&str], &str, &str)] = &[
        (&["public"], &[], "public", "Hugo"),
        (&["_site"], &[], "_site", "Jekyll"),
        (&["dist"], &[], "dist", "Astro"),
        (&["build"], &[], "build", "Docusaurus"),
        (&["out"], &[], "out", "Next.js"),
        (&["site"], &[], "site", "MkDocs"),
        // The order: the first that exists and is not empty.
        (&["_site", "public"], &[], "public", "Hugo"),
        (&["site", "_site", "build"], &[], "_site", "Jekyll"),
        (&["out", "dist"], &[], "dist", "Vite"),
        (&["dist"], &["public", "_site"], "dist", "Astro"),
        // Nothing built yet: a guess, said as one.
        (&[], &["public"], "public", "is a guess"),
        (&["src", "static"], &[], "public", "is a guess"),
    ];
    for (full, empty, expected, generator) in cases {
        let tree = Tree::new();
        full.iter().for_each(|name| folder(tree.work(), name, true));
        empty.iter().for_each(|name| folder(tree.work(), name, false));
        let run = tree.cmd().arg("init").run().success();
        let path = tree.work().join("sync.toml");
        assert_eq!(written_source(&path), *expected, "folders {full:?} (empty: {empty:?})\n{run}");
        let text = fs::read_to_string(&path).unwrap();
        let said = text.lines().take_while(|l| !l.starts_with("source")).last().unwrap();
        assert!(said.contains(generator), "the line above `source` should name {generator:?}: {said:?}");
        assert!(text.contains("\n# destination = \"s3://my-bucket/site\"\n"), "no destination placeholder:\n{text}");
    }
}

#[test]
fn init_prefers_a_folder_with_files_over_one_that_holds_only_empty_folders_or_links() {
    let tree = Tree::new();
    fs::create_dir_all(tree.work().join("public/empty/inside")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/file", tree.work().join("public/dangling")).unwrap();
    std::os::unix::fs::symlink("..", tree.work().join("public/empty/loop")).unwrap();
    folder(tree.work(), "_site", false);
    fs::create_dir_all(tree.work().join("dist/assets")).unwrap();
    fs::write(tree.work().join("dist/assets/app.js"), "app()").unwrap();
    let run = tree.cmd().arg("init").run().success();
    assert_eq!(written_source(&tree.work().join("sync.toml")), "dist", "{run}");
}

#[test]
fn init_writes_a_file_that_plan_and_sync_load() {
    let test = Test::new();
    let work = test.tree.work();
    fs::create_dir_all(work.join("public/css")).unwrap();
    fs::write(work.join("public/index.html"), "<h1>home</h1>").unwrap();
    fs::write(work.join("public/css/site.css"), "body{}").unwrap();
    test.command().arg("init").run().success().stderr_contains("source = \"public\"");

    let path = work.join("sync.toml");
    let text = fs::read_to_string(&path).unwrap();
    let placeholder = "# destination = \"s3://my-bucket/site\"";
    assert!(text.contains(placeholder), "{text}");
    fs::write(&path, text.replace(placeholder, "destination = \"s3://bkt/site\"")).unwrap();

    let endpoint = test.server.endpoint();
    let plan = test.command().arg("plan").connect(&endpoint).run().success();
    assert_eq!(plan.lines().iter().filter(|l| l.starts_with("upload site/")).count(), 2, "{plan}");
    // The cache policy is on as written: neither name is fingerprinted.
    let revalidated = "[Cache-Control: public, max-age=0, must-revalidate]";
    assert_eq!(plan.lines().iter().filter(|l| l.ends_with(revalidated)).count(), 2, "{plan}");
    let report = test.command().arg("sync").connect(&endpoint).arg("--json").run().success().report();
    assert_eq!(report.counts(), (2, 0, 0, 0));
    // sitesync's own objects (the chain marker the policy writes) aside.
    let keys: Vec<String> = test.keys().into_iter().filter(|k| !k.starts_with("site/.sitesync/")).collect();
    assert_eq!(keys, ["site/css/site.css", "site/index.html"]);
}

#[test]
fn init_refuses_to_overwrite_a_sync_toml_unless_forced() {
    let tree = Tree::new();
    folder(tree.src(), "_site", true);
    let path = tree.src().join("sync.toml");
    fs::write(&path, "workers = 8\n").unwrap();

    let refused = tree.cmd().arg("init").arg(tree.src()).run().code(2);
    refused.stderr_contains(&path.display().to_string()).stderr_contains("--force");
    assert_eq!(fs::read_to_string(&path).unwrap(), "workers = 8\n", "the file was changed");

    tree.cmd().arg("init").arg(tree.src()).arg("--force").run().success();
    assert_eq!(written_source(&path), "_site");
}

// ---- completions and the man page ---------------------------------------------------------------

/// Every long flag of `sync` and `plan` with its help text, from clap's definition.
fn long_flags(command: &str) -> Vec<(String, String)> {
    let mut cli = Cli::command();
    cli.build();
    let sub = cli.find_subcommand(command).unwrap_or_else(|| panic!("no command {command}"));
    let flags: Vec<(String, String)> =
        sub.get_arguments().filter_map(|a| Some((format!("--{}", a.get_long()?), a.get_help()?.to_string()))).collect();
    // Guards against a vacuous pass: the sync flags are many.
    assert!(flags.len() >= 15, "{command} has only {flags:?}");
    flags
}

#[test]
fn completions_for_every_shell_complete_sync_and_its_flags() {
    // How each shell's script names the flag `--dry-run`.
    let forms = [
        ("bash", "--dry-run"),
        ("elvish", "--dry-run"),
        ("fish", "-l dry-run"),
        ("powershell", "--dry-run"),
        ("zsh", "--dry-run"),
    ];
    let cli = Cli::command();
    let completions = cli.find_subcommand("completions").unwrap();
    let shell = completions.get_arguments().find(|a| a.get_id() == "shell").unwrap();
    let offered: Vec<String> = shell.get_possible_values().iter().map(|v| v.get_name().to_owned()).collect();
    assert_eq!(offered, forms.map(|(shell, _)| shell), "a shell without a case here");

    let tree = Tree::new();
    for (shell, dry_run) in forms {
        let out = tree.cmd().args(["completions", shell]).run().success();
        assert!(!out.stdout.trim().is_empty(), "{shell}: empty script");
        assert!(out.stdout.contains("sync"), "{shell}: no `sync` in the script");
        assert!(out.stdout.contains(dry_run), "{shell}: no {dry_run:?} in the script");
    }
    tree.cmd().args(["completions", "tcsh"]).run().code(2);
}

/// The man page's sections, as (heading, body), with roff's `\-` read as `-`.
fn man_sections(roff: &str) -> Vec<(String, String)> {
    let text = roff.replace("\\-", "-");
    text.split("\n.SH ")
        .skip(1)
        .map(|section| {
            let (heading, body) = section.split_once('\n').unwrap_or((section, ""));
            (heading.trim_matches('"').to_owned(), body.to_owned())
        })
        .collect()
}

#[test]
fn man_lists_every_long_flag_of_sync_and_plan_in_their_sections() {
    let man = Tree::new().cmd().arg("man").run().success();
    assert!(man.stdout.starts_with(".ie") || man.stdout.starts_with(".TH"), "not roff:\n{man}");
    let sections = man_sections(&man.stdout);
    for command in ["sync", "plan"] {
        let heading = format!("SITESYNC {}", command.to_uppercase());
        let (_, body) = sections.iter().find(|(h, _)| *h == heading).unwrap_or_else(|| panic!("no {heading}\n{man}"));
        // Each flag is an entry of OPTIONS (not only a mention in SYNOPSIS), with its help text.
        let options =
            body.split_once(".SS OPTIONS\n").map(|(_, o)| o).unwrap_or_else(|| panic!("{heading}: no OPTIONS"));
        for (flag, help) in long_flags(command) {
            assert!(options.contains(&format!("\\fB{flag}\\fR")), "{heading} lacks {flag}");
            assert!(options.contains(&help.replace('\'', "\\*(Aq")), "{heading} lacks the help of {flag}: {help:?}");
        }
    }
    for other in ["SITESYNC INIT", "SITESYNC COMPLETIONS", "SITESYNC MAN", "SITESYNC REPORT MERGE", "EXIT STATUS"] {
        assert!(sections.iter().any(|(h, _)| h == other), "no {other} section");
    }
}

#[test]
fn help_explains_every_flag_of_sync_and_plan() {
    let tree = Tree::new();
    for command in ["sync", "plan"] {
        let help = tree.cmd().args([command, "--help"]).run().success();
        let mut cli = Cli::command();
        cli.build();
        for arg in cli.find_subcommand(command).unwrap().get_arguments() {
            let help_text = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(!help_text.trim().is_empty(), "{command}: {} has no help text", arg.get_id());
        }
        for (flag, _) in long_flags(command) {
            assert!(help.stdout.contains(&flag), "`sitesync {command} --help` lacks {flag}");
        }
    }
    let top = tree.cmd().arg("--help").run().success();
    for command in ["sync", "plan", "init", "completions", "man", "report"] {
        assert!(top.stdout.contains(&format!("  {command} ")), "`sitesync --help` lacks {command}\n{top}");
    }
}

// ---- report merge -----------------------------------------------------------------------------

/// `sitesync report merge` of these files, run in `tree`'s working directory.
fn merge(tree: &Tree, files: &[&Path]) -> Outcome {
    tree.cmd().args(["report", "merge"]).args(files).run()
}

/// A report as `--json` prints it, with `fields` changed.
fn report(fields: Value) -> String {
    let mut report = json!({
        "dry_run": false, "uploaded": 1, "copied": 0, "deleted": 0, "unchanged": 5, "failed": 0,
        "bytes_uploaded": 100, "elapsed_seconds": 1.5, "deletes_withheld": 0, "failures": []
    });
    report.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
    report.to_string()
}

fn failure(key: &str) -> Value {
    json!({ "key": key, "op": "upload", "error": "503 SlowDown" })
}

#[test]
fn report_merge_adds_the_reports_of_two_real_runs() {
    // Shard one: three new files, and an object whose file is gone.
    let one = Test::new().file("index.html", "<h1>home</h1>").file("a/b.css", "b{}").file("a/c.js", "c()");
    let one = one.remote("site/old.html", "old");
    // Shard two, another tree to another prefix of the same bucket: synced, then one file changed.
    let two = Tree::new();
    two.file("docs/x.html", "x");
    two.file("docs/y.html", "yy");
    let endpoint = one.server.endpoint();
    let sync_two = || two.cmd().arg("sync").arg(two.src()).arg("s3://bkt/shard2").connect(&endpoint).arg("--json");
    sync_two().run().success();
    two.file("docs/y.html", "yyy");

    let a = one.sync(&[]).success();
    let b = sync_two().run().success();
    assert_eq!(a.report().counts(), (3, 1, 0, 0));
    assert_eq!(b.report().counts(), (1, 0, 1, 0));
    let a_path = one.tree.work_file("a.json", &a.stdout);
    let b_path = one.tree.work_file("b.json", &b.stdout);

    let merged = merge(&one.tree, &[&a_path, &b_path]).success();
    let merged = merged.stderr_contains("done: 4 uploaded, 0 copied, 1 deleted, 1 unchanged, 0 failed");
    let (a, b, total) = (a.json(), b.json(), merged.json());
    for field in
        ["uploaded", "copied", "deleted", "retired", "unchanged", "failed", "bytes_uploaded", "deletes_withheld"]
    {
        let sum = a[field].as_u64().unwrap() + b[field].as_u64().unwrap();
        assert_eq!(total[field].as_u64(), Some(sum), "{field}");
    }
    assert_eq!(total["bytes_uploaded"], 13 + 3 + 3 + 3);
    let longest = a["elapsed_seconds"].as_f64().unwrap().max(b["elapsed_seconds"].as_f64().unwrap());
    assert_eq!(total["elapsed_seconds"].as_f64(), Some(longest));
    assert_eq!(total["dry_run"], false);
    assert_eq!(total["failures"], json!([]));
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&total), keys(&a), "the merged report has the shape of a run's");
}

#[test]
fn report_merge_exits_with_the_status_the_whole_run_would_have_had() {
    let clean = report(json!({}));
    let failed =
        report(json!({ "failed": 2, "failures": [failure("a.html"), failure("b.html")], "deletes_withheld": 3 }));
    let failed_too = report(json!({ "failed": 1, "failures": [failure("c.html")] }));
    let refused = report(json!({ "refused": "would delete 1500 objects, over max_delete (1000)" }));
    let interrupted = report(json!({ "interrupted": "SIGTERM", "elapsed_seconds": 9.25 }));
    // (reports, exit status, failures in order)
    let cases: &[(&[&str], i32, &[&str])] = &[
        (&[&clean, &clean], 0, &[]),
        (&[&clean, &failed, &failed_too], 1, &["a.html", "b.html", "c.html"]),
        (&[&failed_too, &clean, &failed], 1, &["c.html", "a.html", "b.html"]),
        (&[&failed, &refused], 2, &["a.html", "b.html"]),
        (&[&refused, &interrupted, &failed], 130, &["a.html", "b.html"]),
        (&[&interrupted], 130, &[]),
    ];
    let tree = Tree::new();
    for (n, (reports, code, failures)) in cases.iter().enumerate() {
        let paths: Vec<_> =
            reports.iter().enumerate().map(|(i, r)| tree.work_file(&format!("case{n}-{i}.json"), r)).collect();
        let out = merge(&tree, &paths.iter().map(|p| p.as_path()).collect::<Vec<_>>()).code(*code);
        let total = out.json();
        let keys: Vec<&str> =
            total["failures"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
        assert_eq!(keys, *failures, "case {n}");
        assert_eq!(total["failed"].as_u64(), Some(failures.len() as u64), "case {n}");
        assert_eq!(total["uploaded"].as_u64(), Some(reports.len() as u64), "case {n}");
        assert_eq!(total["refused"].is_string(), reports.contains(&refused.as_str()), "case {n}");
        let signal = reports.contains(&interrupted.as_str()).then_some("SIGTERM");
        assert_eq!(total["interrupted"].as_str(), signal, "case {n}");
        if reports.contains(&refused.as_str()) {
            out.stderr_contains("error: would delete 1500 objects");
        }
    }
}

#[test]
fn report_merge_sums_the_numbers_other_changes_add_and_keeps_their_other_fields() {
    let tree = Tree::new();
    let a = tree.work_file("a.json", &report(json!({ "hashed": 2, "bytes_hashed": 2048 })));
    let b = tree.work_file("b.json", &report(json!({ "invalidation": "I2ABC", "hashed": 5 })));
    let c = tree.work_file("c.json", &report(json!({ "invalidation": "I3DEF", "bytes_hashed": 1 })));
    let total = merge(&tree, &[&a, &b, &c]).success().json();
    assert_eq!(
        (&total["hashed"], &total["bytes_hashed"], &total["invalidation"]),
        (&json!(7), &json!(2049), &json!("I2ABC"))
    );
}

#[test]
fn report_merge_refuses_a_file_it_cannot_read_naming_it() {
    let tree = Tree::new();
    let good = tree.work_file("good.json", &report(json!({})));
    let mut missing_field = serde_json::from_str::<Value>(&report(json!({}))).unwrap();
    missing_field.as_object_mut().unwrap().remove("failures");
    // (file name, its content or None for no file, what stderr says after the file's path)
    let cases: &[(&str, Option<String>, &str)] = &[
        ("absent.json", None, "cannot read the report: No such file or directory"),
        ("empty.json", Some(String::new()), "not a sitesync --json report: EOF"),
        ("cut.json", Some(report(json!({}))[..40].to_owned()), "not a sitesync --json report: EOF"),
        ("log.json", Some("done: 1 uploaded".into()), "not a sitesync --json report: expected value"),
        ("list.json", Some("[]".into()), "not a sitesync --json report: invalid type"),
        ("field.json", Some(missing_field.to_string()), "not a sitesync --json report: missing field `failures`"),
        ("type.json", Some(report(json!({ "uploaded": "three" }))), "not a sitesync --json report: invalid type"),
        ("two.json", Some(report(json!({})) + &report(json!({}))), "not a sitesync --json report: trailing"),
        ("plan.json", Some(report(json!({ "dry_run": true }))), "the report of a dry run, but "),
    ];
    for (name, content, what) in cases {
        let path = tree.work().join(name);
        if let Some(content) = content {
            fs::write(&path, content).unwrap();
        }
        let out = merge(&tree, &[&good, &path]).code(2);
        let out = out.stderr_contains(&format!("error: {}: {what}", path.display()));
        assert!(out.stdout.is_empty(), "{name}: a report was printed\n{out}");
    }
    tree.cmd().args(["report", "merge"]).run().code(2);
}
