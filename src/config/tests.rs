//! Layering and error messages of the configuration, in figment jails.
#![allow(clippy::result_large_err)] // figment::Error is large, and Jail closures must return it.

use std::path::Path;

use clap::Parser;
use figment::Jail;

use super::{Config, RawConfig, RemoteChoice, figment};
use crate::cli::{Cli, Command, SyncArgs};

const FILE: &str = "sync.toml";

/// The config the jail's file, environment and `flags` make.
fn build(jail: &Jail, flags: &SyncArgs) -> Result<Config, String> {
    let _ = jail;
    build_flags(flags)
}

fn build_flags(flags: &SyncArgs) -> Result<Config, String> {
    Config::build(&figment(Some(Path::new(FILE)), flags)).map_err(|e| e.to_string())
}

/// The flags of `sitesync sync ARGS`, parsed as the binary parses them.
fn flags(args: &[&str]) -> SyncArgs {
    let argv = ["sitesync", "sync"].into_iter().chain(args.iter().copied());
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Sync(flags) => flags,
        _ => unreachable!("a sync command"),
    }
}

/// `sitesync sync public s3://bucket/site ARGS`.
fn with_target(args: &[&str]) -> SyncArgs {
    flags(&[&["public", "s3://bucket/site"], args].concat())
}

#[test]
fn each_layer_overrides_the_one_below() {
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "")?;
        assert_eq!(build(jail, &with_target(&[])).unwrap().sink.workers, RawConfig::default().sink.workers);

        jail.create_file(FILE, "workers = 7\nmax_delete = 10")?;
        let config = build(jail, &with_target(&[])).unwrap();
        assert_eq!((config.sink.workers, config.delete.max), (7, 10));

        jail.set_env("SITESYNC_WORKERS", "8");
        let config = build(jail, &with_target(&[])).unwrap();
        assert_eq!((config.sink.workers, config.delete.max), (8, 10), "env beats the file, file keys it lacks stay");

        let config = build(jail, &with_target(&["--workers", "9"])).unwrap();
        assert_eq!((config.sink.workers, config.delete.max), (9, 10), "flags beat the environment");
        Ok(())
    });
}

#[test]
fn unset_flags_do_not_hide_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file(
            FILE,
            "delete = false\npath_style = true\nsource = \"site\"\ndestination = \"s3://bucket/p\"",
        )?;
        let config = build(jail, &flags(&[])).unwrap();
        assert!(!config.delete.enabled);
        assert!(config.store.connection.path_style);
        assert_eq!(config.source, Path::new("site"));
        assert_eq!(config.target.prefix, "p/");
        Ok(())
    });
}

#[test]
fn errors_name_the_file_and_the_key() {
    Jail::expect_with(|jail| {
        let cases = [
            ("wrokers = 3", "unknown key `wrokers`"),
            ("workers = \"many\"", "key `workers`"),
            ("workers = 0", "key `workers`: 0 is out of range"),
            ("clock_fudge = -1.0", "key `clock_fudge`"),
            ("encoding = \"klingon\"", "key `encoding`: unknown encoding"),
            ("max_delete_percent = 150", "key `max_delete_percent`"),
            ("destination = \"s3://b/a/../c\"", "key `destination`"),
            ("workers = [", "sync.toml"),
        ];
        for (text, expected) in cases {
            jail.create_file(FILE, text)?;
            let overrides = if text.starts_with("destination") { flags(&["public"]) } else { with_target(&[]) };
            let error = build(jail, &overrides).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error:?} lacks {expected:?}");
            assert!(error.contains(FILE), "{text:?}: {error:?} does not name the file");
        }
        Ok(())
    });
}

#[test]
fn environment_errors_name_the_variable() {
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "")?;
        jail.set_env("SITESYNC_WORKERS", "0");
        let error = build(jail, &with_target(&[])).unwrap_err();
        assert!(error.contains("SITESYNC_WORKERS"), "{error}");
        jail.set_env("SITESYNC_WORKERS", "4");
        jail.set_env("SITESYNC_WROKERS", "4");
        let error = build(jail, &with_target(&[])).unwrap_err();
        assert!(error.contains("SITESYNC_WROKERS"), "{error}");
        Ok(())
    });
}

#[test]
fn flag_errors_name_the_command_line() {
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "")?;
        let error = build(jail, &with_target(&["--workers", "0"])).unwrap_err();
        assert!(error.contains("command line") && error.contains("workers"), "{error}");
        Ok(())
    });
}

#[test]
fn remote_inventory_comes_from_each_layer_and_must_name_a_manifest() {
    Jail::expect_with(|jail| {
        let manifest = |config: Config| match config.remote {
            RemoteChoice::Inventory { manifest } => Some(manifest.to_string()),
            _ => None,
        };
        jail.create_file(FILE, "")?;
        assert_eq!(manifest(build(jail, &with_target(&[])).unwrap()), None, "listing by default");

        jail.create_file(FILE, "remote_inventory = \"s3://inv/a/manifest.json\"")?;
        assert_eq!(manifest(build(jail, &with_target(&[])).unwrap()).as_deref(), Some("s3://inv/a/manifest.json"));
        jail.set_env("SITESYNC_REMOTE_INVENTORY", "s3://inv/b/manifest.json");
        assert_eq!(manifest(build(jail, &with_target(&[])).unwrap()).as_deref(), Some("s3://inv/b/manifest.json"));
        let flags = with_target(&["--remote-inventory", "s3://inv/manifest.json"]);
        assert_eq!(manifest(build(jail, &flags).unwrap()).as_deref(), Some("s3://inv/manifest.json"));

        for bad in ["s3://inv/a/manifest.csv", "s3://inv/a/notmanifest.json", "s3://inv", "inv/a/manifest.json"] {
            jail.set_env("SITESYNC_REMOTE_INVENTORY", bad);
            let error = build(jail, &with_target(&[])).expect_err(bad);
            assert!(error.contains("SITESYNC_REMOTE_INVENTORY") && error.contains("remote_inventory"), "{error}");
            assert!(error.contains(bad), "{error} does not quote {bad}");
        }
        Ok(())
    });
}

#[test]
fn cloudfront_keys_layer_and_are_checked() {
    Jail::expect_with(|jail| {
        let settings = |flags: &SyncArgs| {
            let settings = build_flags(flags).unwrap().invalidate.expect("a distribution is set");
            (settings.distribution_id, settings.include_added, settings.max_paths)
        };
        jail.create_file(FILE, "")?;
        assert!(build(jail, &with_target(&[])).unwrap().invalidate.is_none(), "no distribution, no invalidation");

        jail.create_file(FILE, "cloudfront_distribution_id = \"EFILE\"")?;
        assert_eq!(settings(&with_target(&[])), ("EFILE".into(), false, 50));
        jail.create_file(FILE, "cloudfront_distribution_id = \"EFILE\"\ninvalidate_max_paths = 7")?;
        jail.set_env("SITESYNC_CLOUDFRONT_DISTRIBUTION_ID", "EENV");
        jail.set_env("SITESYNC_INVALIDATE_ADDED", "true");
        assert_eq!(settings(&with_target(&[])), ("EENV".into(), true, 7));

        let flags = with_target(&["--cloudfront-distribution-id", "EFLAG", "--invalidate-max-paths", "9"]);
        assert_eq!(
            settings(&flags),
            ("EFLAG".into(), true, 9),
            "an unset --invalidate-added does not hide the environment's"
        );

        jail.set_env("SITESYNC_CLOUDFRONT_DISTRIBUTION_ID", "");
        jail.create_file(FILE, "invalidate_max_paths = 0")?;
        let error = build(jail, &with_target(&["--cloudfront-distribution-id", "EFLAG"])).unwrap_err();
        assert!(error.contains("sync.toml: key `invalidate_max_paths`: 0 is out of range"), "{error}");
        let error = build(jail, &with_target(&[])).unwrap_err();
        assert!(error.contains("SITESYNC_CLOUDFRONT_DISTRIBUTION_ID"), "{error}");
        assert!(error.contains("key `cloudfront_distribution_id`: \"\" is not a distribution id"), "{error}");
        Ok(())
    });
}

#[test]
fn delete_grace_comes_from_each_layer_and_a_bad_one_names_where_it_was_set() {
    Jail::expect_with(|jail| {
        let grace = |flags: &SyncArgs| build_flags(flags).map(|c| c.delete.grace.map(|g| g.as_secs()));
        jail.create_file(FILE, "")?;
        assert_eq!(grace(&with_target(&[])), Ok(None), "off by default");
        jail.create_file(FILE, "delete_grace = \"48h\"")?;
        assert_eq!(grace(&with_target(&[])), Ok(Some(48 * 3600)));
        jail.set_env("SITESYNC_DELETE_GRACE", "30m");
        assert_eq!(grace(&with_target(&[])), Ok(Some(1800)), "the environment beats the file");
        assert_eq!(grace(&with_target(&["--delete-grace", "2s"])), Ok(Some(2)), "the flag beats both");
        assert_eq!(grace(&with_target(&["--delete-grace", "0"])), Ok(None), "0 turns it off");
        jail.set_env("SITESYNC_DELETE_GRACE", "0");
        assert_eq!(grace(&with_target(&[])), Ok(None), "a number from the environment");
        jail.create_file(FILE, "delete_grace = 0")?;
        jail.set_env("SITESYNC_DELETE_GRACE", "");
        let error = grace(&with_target(&[])).unwrap_err();
        assert!(error.contains("SITESYNC_DELETE_GRACE") && error.contains("key `delete_grace`"), "{error}");
        jail.set_env("SITESYNC_DELETE_GRACE", "48");
        let error = grace(&with_target(&[])).unwrap_err();
        assert!(error.contains("\"48\" has no unit"), "{error}");
        let error = grace(&with_target(&["--delete-grace", "2 weeks"])).unwrap_err();
        assert!(error.starts_with("command line: key `delete_grace`: \"2 weeks\" is not a duration"), "{error}");
        jail.clear_env();
        jail.create_file(FILE, "delete_grace = true")?;
        let error = grace(&with_target(&[])).unwrap_err();
        assert!(error.contains("sync.toml: key `delete_grace`: invalid type"), "{error}");
        Ok(())
    });
}

#[test]
fn the_example_file_loads_and_shows_every_default() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("sync.toml.example");
    let raw = RawConfig::read(&figment(Some(&example), &flags(&[]))).unwrap();
    assert_eq!(raw, RawConfig::default(), "sync.toml.example's uncommented keys are the defaults");
    let config = Config::build(&figment(Some(&example), &with_target(&[])));
    assert!(config.is_ok(), "{:?}", config.err());
}

#[test]
fn default_charset_is_utf8_may_be_turned_off_and_is_checked() {
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "")?;
        assert_eq!(build(jail, &with_target(&[])).unwrap().sink.charset.name(), Some("utf-8"));
        jail.create_file(FILE, "default_charset = \"\"")?;
        assert_eq!(build(jail, &with_target(&[])).unwrap().sink.charset.name(), None, "an empty name sends none");
        jail.create_file(FILE, "default_charset = \"utf 8\"")?;
        let error = build(jail, &with_target(&[])).unwrap_err();
        assert!(error.contains("sync.toml: key `default_charset`: \"utf 8\" is not a charset name"), "{error}");
        jail.create_file(FILE, "")?;
        jail.set_env("SITESYNC_DEFAULT_CHARSET", "utf-8;q=1");
        let error = build(jail, &with_target(&[])).unwrap_err();
        assert!(error.contains("SITESYNC_DEFAULT_CHARSET") && error.contains("default_charset"), "{error}");
        Ok(())
    });
}

#[test]
fn a_store_folder_has_one_identity_before_and_after_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("link/new/../store");
    std::os::unix::fs::symlink(dir.path(), dir.path().join("link")).unwrap();
    let before = super::build::resolved(&missing);
    std::fs::create_dir_all(&missing).unwrap();
    assert_eq!(before, std::fs::canonicalize(&missing).unwrap());
    assert_eq!(super::build::resolved(&missing), before);
}

#[test]
fn off_switches_override_only_when_given() {
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "delete = true\nstate = true\nstate_dir = \"cache\"")?;
        let config = build(jail, &with_target(&[])).unwrap();
        assert!(config.delete.enabled && config.state.is_some(), "not given: the file's");
        let config = build(jail, &with_target(&["--no-delete", "--no-state"])).unwrap();
        assert!(!config.delete.enabled, "--no-delete is delete = false");
        assert_eq!(config.state, None, "--no-state is state = false");
        Ok(())
    });
}

#[test]
fn flags_that_are_not_config_keys_stay_off_the_layers() {
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "")?;
        let run = ["--config", FILE, "--force-delete", "--dry-run", "--wait-lock", "--wait", "--json", "--progress"];
        let config = build(jail, &with_target(&[&run[..], &["-v"]].concat()));
        assert!(config.is_ok(), "{:?}", config.err());
        Ok(())
    });
}

#[test]
fn the_remote_side_is_chosen_once_and_two_choices_are_refused_naming_both() {
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "state_dir = \"cache\"")?;
        let remote = |flags: &SyncArgs| build_flags(flags).map(|config| config.remote);
        assert_eq!(remote(&with_target(&[])), Ok(RemoteChoice::Listing { parallel: 8 }));
        let trusted = remote(&with_target(&["--trust-state"])).unwrap();
        assert!(matches!(&trusted, RemoteChoice::TrustedState { path } if path.starts_with("cache")), "{trusted:?}");

        let both = ["--trust-state", "--remote-inventory", "s3://inv/manifest.json"];
        let error = remote(&with_target(&both)).unwrap_err();
        assert!(
            error.contains("key `trust_state` (command line) and key `remote_inventory` (command line)"),
            "{error}"
        );
        jail.create_file(FILE, "state_dir = \"cache\"\ntrust_state = true")?;
        let error = remote(&with_target(&both[1..])).unwrap_err();
        assert!(error.contains("key `trust_state` (sync.toml) and key `remote_inventory` (command line)"), "{error}");
        let error = remote(&with_target(&["--no-state"])).unwrap_err();
        assert!(error.contains("sync.toml: key `trust_state`: needs the local state"), "{error}");
        Ok(())
    });
}

#[test]
fn the_default_lock_is_named_after_the_target() {
    let config = |destination: &str, endpoint: Option<&str>| {
        let mut flags = serde_json::json!({ "source": "site", "destination": destination });
        if let Some(url) = endpoint {
            flags["endpoint_url"] = url.into();
        }
        Config::build(&figment(None, &flags)).unwrap().lock_path()
    };
    let a = config("s3://bucket/site", None);
    assert_eq!(a, config("s3://bucket/site/", None), "the same folder prefix");
    assert_ne!(a, config("s3://bucket/site2", None));
    assert_ne!(a, config("s3://bucket/site", Some("http://127.0.0.1:9000")));
    assert!(a.file_name().unwrap().to_str().unwrap().starts_with("sitesync-bucket-"));
}

#[test]
fn remote_lock_is_auto_unless_a_layer_says_required_or_off() {
    use crate::history::lock::Mode;
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "")?;
        assert_eq!(build(jail, &with_target(&[])).unwrap().remote_lock, Mode::Auto);
        jail.create_file(FILE, "remote_lock = \"off\"")?;
        assert_eq!(build(jail, &with_target(&[])).unwrap().remote_lock, Mode::Off);
        jail.set_env("SITESYNC_REMOTE_LOCK", "required");
        assert_eq!(build(jail, &with_target(&[])).unwrap().remote_lock, Mode::Required);
        let flag = with_target(&["--remote-lock", "auto"]);
        assert_eq!(build(jail, &flag).unwrap().remote_lock, Mode::Auto, "the flag beats the rest");
        let err = build(jail, &with_target(&["--remote-lock", "always"])).unwrap_err();
        assert!(err.contains("key `remote_lock`: \"always\" is not \"auto\" or \"required\" or \"off\""), "{err}");
        Ok(())
    });
}

#[test]
fn strict_on_the_command_line_joins_the_files_redirects_table_without_hiding_it() {
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "[redirects]\nrouting_rules = true\ncloudfront_function = \"cf.js\"\n")?;
        let extract = |flags: &SyncArgs| RawConfig::read(&figment(Some(Path::new(FILE)), flags)).unwrap();
        let raw = extract(&with_target(&[]));
        assert!(!raw.site_files.redirects.strict && raw.site_files.redirects.routing_rules);
        let raw = extract(&with_target(&["--strict"]));
        assert!(raw.site_files.redirects.strict, "the flag");
        let kept = &raw.site_files.redirects;
        assert!(kept.routing_rules && kept.cloudfront_function.is_some(), "the file's keys stay");
        jail.create_file(FILE, "[redirects]\nroting_rules = true\n")?;
        let error = build(jail, &with_target(&[])).unwrap_err();
        assert!(error.contains("roting_rules"), "{error}");
        Ok(())
    });
}
