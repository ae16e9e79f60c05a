//! Layering and error messages of the configuration, in figment jails.
#![allow(clippy::result_large_err)] // figment::Error is large, and Jail closures must return it.

use std::path::Path;

use figment::Jail;

use super::{Config, Overrides, RawConfig, RedirectsOverrides, figment};

const FILE: &str = "sync.toml";

fn build(jail: &Jail, overrides: &Overrides) -> Result<Config, String> {
    let _ = jail;
    Config::build(&figment(Some(Path::new(FILE)), overrides)).map_err(|e| e.to_string())
}

fn with_target() -> Overrides {
    Overrides { source: Some("public".into()), destination: Some("s3://bucket/site".into()), ..Overrides::default() }
}

#[test]
fn each_layer_overrides_the_one_below() {
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "")?;
        assert_eq!(build(jail, &with_target()).unwrap().workers, RawConfig::default().workers);

        jail.create_file(FILE, "workers = 7\nmax_delete = 10")?;
        let config = build(jail, &with_target()).unwrap();
        assert_eq!((config.workers, config.max_delete), (7, 10));

        jail.set_env("SITESYNC_WORKERS", "8");
        let config = build(jail, &with_target()).unwrap();
        assert_eq!((config.workers, config.max_delete), (8, 10), "env beats the file, file keys it lacks stay");

        let flags = Overrides { workers: Some(9), ..with_target() };
        let config = build(jail, &flags).unwrap();
        assert_eq!((config.workers, config.max_delete), (9, 10), "flags beat the environment");
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
        let config = build(jail, &Overrides::default()).unwrap();
        assert!(!config.delete);
        assert!(config.path_style);
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
            let overrides = if text.starts_with("destination") {
                Overrides { source: Some("public".into()), ..Overrides::default() }
            } else {
                with_target()
            };
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
        let error = build(jail, &with_target()).unwrap_err();
        assert!(error.contains("SITESYNC_WORKERS"), "{error}");
        jail.set_env("SITESYNC_WORKERS", "4");
        jail.set_env("SITESYNC_WROKERS", "4");
        let error = build(jail, &with_target()).unwrap_err();
        assert!(error.contains("SITESYNC_WROKERS"), "{error}");
        Ok(())
    });
}

#[test]
fn flag_errors_name_the_command_line() {
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "")?;
        let error = build(jail, &Overrides { workers: Some(0), ..with_target() }).unwrap_err();
        assert!(error.contains("command line") && error.contains("workers"), "{error}");
        Ok(())
    });
}

#[test]
fn remote_inventory_comes_from_each_layer_and_must_name_a_manifest() {
    Jail::expect_with(|jail| {
        let manifest = |config: Config| config.remote_inventory.map(|url| url.to_string());
        jail.create_file(FILE, "")?;
        assert_eq!(manifest(build(jail, &with_target()).unwrap()), None, "listing by default");

        jail.create_file(FILE, "remote_inventory = \"s3://inv/a/manifest.json\"")?;
        assert_eq!(manifest(build(jail, &with_target()).unwrap()).as_deref(), Some("s3://inv/a/manifest.json"));
        jail.set_env("SITESYNC_REMOTE_INVENTORY", "s3://inv/b/manifest.json");
        assert_eq!(manifest(build(jail, &with_target()).unwrap()).as_deref(), Some("s3://inv/b/manifest.json"));
        let flags = Overrides { remote_inventory: Some("s3://inv/manifest.json".into()), ..with_target() };
        assert_eq!(manifest(build(jail, &flags).unwrap()).as_deref(), Some("s3://inv/manifest.json"));

        for bad in ["s3://inv/a/manifest.csv", "s3://inv/a/notmanifest.json", "s3://inv", "inv/a/manifest.json"] {
            jail.set_env("SITESYNC_REMOTE_INVENTORY", bad);
            let error = build(jail, &with_target()).expect_err(bad);
            assert!(error.contains("SITESYNC_REMOTE_INVENTORY") && error.contains("remote_inventory"), "{error}");
            assert!(error.contains(bad), "{error} does not quote {bad}");
        }
        Ok(())
    });
}

#[test]
fn cloudfront_keys_layer_and_are_checked() {
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "")?;
        let config = build(jail, &with_target()).unwrap();
        assert_eq!(config.cloudfront_distribution_id, None);
        assert!(!config.invalidate_added);
        assert_eq!(config.invalidate_max_paths, 50);

        jail.create_file(FILE, "cloudfront_distribution_id = \"EFILE\"\ninvalidate_max_paths = 7")?;
        jail.set_env("SITESYNC_CLOUDFRONT_DISTRIBUTION_ID", "EENV");
        jail.set_env("SITESYNC_INVALIDATE_ADDED", "true");
        let config = build(jail, &with_target()).unwrap();
        assert_eq!(config.cloudfront_distribution_id.as_deref(), Some("EENV"));
        assert!(config.invalidate_added);
        assert_eq!(config.invalidate_max_paths, 7);

        let flags = Overrides {
            cloudfront_distribution_id: Some("EFLAG".into()),
            invalidate_max_paths: Some(9),
            ..with_target()
        };
        let config = build(jail, &flags).unwrap();
        assert_eq!(config.cloudfront_distribution_id.as_deref(), Some("EFLAG"));
        assert_eq!(config.invalidate_max_paths, 9);
        assert!(config.invalidate_added, "an unset --invalidate-added does not hide the environment's");

        jail.set_env("SITESYNC_CLOUDFRONT_DISTRIBUTION_ID", "");
        jail.create_file(FILE, "invalidate_max_paths = 0")?;
        let error = build(jail, &Overrides { invalidate_max_paths: None, ..flags.clone() }).unwrap_err();
        assert!(error.contains("sync.toml: key `invalidate_max_paths`: 0 is out of range"), "{error}");
        let error = build(jail, &Overrides { cloudfront_distribution_id: None, ..with_target() }).unwrap_err();
        assert!(error.contains("SITESYNC_CLOUDFRONT_DISTRIBUTION_ID"), "{error}");
        assert!(error.contains("key `cloudfront_distribution_id`: \"\" is not a distribution id"), "{error}");
        Ok(())
    });
}

#[test]
fn the_example_file_loads_and_shows_every_default() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("sync.toml.example");
    let raw: RawConfig = figment(Some(&example), &Overrides::default()).extract().unwrap();
    assert_eq!(raw, RawConfig::default(), "sync.toml.example's uncommented keys are the defaults");
    let config = Config::build(&figment(Some(&example), &with_target()));
    assert!(config.is_ok(), "{:?}", config.err());
}

#[test]
fn default_charset_is_utf8_may_be_turned_off_and_is_checked() {
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "")?;
        assert_eq!(build(jail, &with_target()).unwrap().charset.name(), Some("utf-8"));
        jail.create_file(FILE, "default_charset = \"\"")?;
        assert_eq!(build(jail, &with_target()).unwrap().charset.name(), None, "an empty name sends none");
        jail.create_file(FILE, "default_charset = \"utf 8\"")?;
        let error = build(jail, &with_target()).unwrap_err();
        assert!(error.contains("sync.toml: key `default_charset`: \"utf 8\" is not a charset name"), "{error}");
        jail.create_file(FILE, "")?;
        jail.set_env("SITESYNC_DEFAULT_CHARSET", "utf-8;q=1");
        let error = build(jail, &with_target()).unwrap_err();
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
fn strict_on_the_command_line_joins_the_files_redirects_table_without_hiding_it() {
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "[redirects]\nrouting_rules = true\ncloudfront_function = \"cf.js\"\n")?;
        let extract =
            |overrides: &Overrides| -> RawConfig { figment(Some(Path::new(FILE)), overrides).extract().unwrap() };
        let raw = extract(&with_target());
        assert!(!raw.redirects.strict && raw.redirects.routing_rules);
        let flags = Overrides { redirects: Some(RedirectsOverrides { strict: Some(true) }), ..with_target() };
        let raw = extract(&flags);
        assert!(raw.redirects.strict, "the flag");
        assert!(raw.redirects.routing_rules && raw.redirects.cloudfront_function.is_some(), "the file's keys stay");
        jail.create_file(FILE, "[redirects]\nroting_rules = true\n")?;
        let error = build(jail, &with_target()).unwrap_err();
        assert!(error.contains("sync.toml: unknown key `redirects.roting_rules`"), "{error}");
        Ok(())
    });
}
