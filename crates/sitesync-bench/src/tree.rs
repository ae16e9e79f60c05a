//! Synthetic site trees: shaped like a real static site, deterministic from a seed, cached on disk.
//!
//! A tree of `n` files is `section/year/month/slug/` page folders, each with an `index.html` and a
//! few small assets, plus site-wide files, a handful of names with spaces, `+`, `%` and non-ASCII
//! characters, and a few large media files of a few MiB. Almost every file is 0.25–3 KiB, like the
//! pages and thumbnails of a generated site. Every file gets the same old mtime, so a sync right
//! after generation is never unsure about the clock.
//!
//! The tree lives in `<trees>/<n>/site` with `manifest.json` beside it (outside what is synced)
//! and is reused while the manifest matches. A run that changes or removes files marks the tree
//! dirty first and puts the files back afterwards; a tree found dirty (an interrupted run) is
//! repaired file by file before use, which is much cheaper than generating it again.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::paths;

/// Bumped whenever the shape or the content of the trees changes, so cached trees are rebuilt.
const GENERATOR: u32 = 1;
const SECTIONS: [&str; 10] =
    ["blog", "docs", "news", "products", "events", "guides", "recipes", "people", "projects", "tags"];
const WORDS: [&str; 32] = [
    "alpha", "river", "stone", "quiet", "maple", "orbit", "ember", "delta", "north", "cedar", "pixel", "tiger",
    "lunar", "amber", "coral", "frost", "harbor", "iris", "jade", "koala", "lemon", "metro", "nova", "olive", "prism",
    "quartz", "raven", "solar", "tulip", "umbra", "vivid", "willow",
];
/// The mtime of every generated file: 2025-01-01T00:00:00Z.
const GENERATED_MTIME: u64 = 1_735_689_600;
/// Appended to a file to change it: its size and mtime both move.
const CHANGE: &[u8] = b"\n<!-- changed by sitesync-bench -->\n";

/// One file of a tree: where it is, how big, and the seed of its content.
#[derive(Debug, Clone)]
pub struct Spec {
    pub rel: String,
    pub size: u64,
    seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub generator: u32,
    pub seed: u64,
    pub files: u64,
    pub bytes: u64,
    pub large_files: u64,
    pub large_bytes: u64,
    pub directories: u64,
}

/// A tree on disk, ready to sync.
#[derive(Debug)]
pub struct Tree {
    pub dir: PathBuf,
    pub site: PathBuf,
    pub manifest: Manifest,
    pub specs: Vec<Spec>,
    /// Seconds spent generating or repairing it in this run (0 when reused as is).
    pub prepared_seconds: f64,
    pub how: &'static str,
}

/// SplitMix64: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The site-wide files: their paths and the range of their sizes.
const SITE_WIDE: [(&str, u64, u64); 15] = [
    ("index.html", 2_000, 6_000),
    ("404.html", 500, 1_500),
    ("robots.txt", 50, 200),
    ("sitemap.xml", 20_000, 60_000),
    ("feed.xml", 10_000, 30_000),
    ("favicon.ico", 1_000, 4_000),
    ("static/css/site.css", 8_000, 30_000),
    ("static/js/app.js", 20_000, 90_000),
    ("static/js/app.js.map", 40_000, 200_000),
    ("static/fonts/inter.woff2", 30_000, 80_000),
    ("downloads/Annual report 2025 (final).pdf", 50_000, 200_000),
    ("downloads/Q1+Q2 results.csv", 500, 3_000),
    ("downloads/100% guide.txt", 500, 3_000),
    ("downloads/café-menu.html", 500, 3_000),
    ("downloads/日本語の案内.txt", 500, 3_000),
];
/// The assets a page folder may have beside its `index.html`: name, chance in percent, sizes.
const PAGE_ASSETS: [(&str, u64, u64, u64); 5] = [
    ("cover.jpg", 50, 512, 2_048),
    ("thumb.webp", 30, 256, 1_024),
    ("data.json", 25, 256, 1_536),
    ("index.amp.html", 10, 600, 2_000),
    ("comments/index.html", 10, 300, 1_500),
];

/// The file list of the tree of `n` files for `seed`, in generation order: the site-wide files,
/// the media files, then page folders until there are `n` files.
pub fn specs(n: u64, seed: u64) -> Vec<Spec> {
    let mut specs = Specs { n, rng: Rng(seed ^ n.wrapping_mul(0xA24B_AED4_963E_E407)), out: Vec::new() };
    specs.out.reserve(n as usize);
    for (rel, lo, hi) in SITE_WIDE {
        specs.add_sized(rel.to_owned(), lo, hi);
    }
    for k in 0..(n / 20_000).max(3) {
        specs.add_sized(format!("static/media/clip-{k:03}.mp4"), 2 << 20, 6 << 20);
    }
    specs.pages();
    specs.out
}

/// A file list being drawn: every size and name comes from one generator, in a fixed order, so
/// the same `n` and seed give the same tree on every machine.
struct Specs {
    n: u64,
    rng: Rng,
    out: Vec<Spec>,
}

impl Specs {
    fn full(&self) -> bool {
        self.out.len() as u64 >= self.n
    }

    /// Draws a size in `lo..hi` and adds `rel` with it, unless the list is full.
    fn add_sized(&mut self, rel: String, lo: u64, hi: u64) {
        let size = self.rng.range(lo, hi);
        if !self.full() {
            let seed = self.rng.next();
            self.out.push(Spec { rel, size, seed });
        }
    }

    /// Page folders `section/year/month/word-word-k/`, each with an `index.html` and some of the
    /// [`PAGE_ASSETS`], over as many years as the tree needs (1 to 12), until the list is full.
    fn pages(&mut self) {
        let sections = SECTIONS.len() as u64;
        let years = self.n.div_ceil(20_000).clamp(1, 12);
        let containers = sections * years * 12;
        let mut page = 0u64;
        while !self.full() {
            let c = page % containers;
            let section = SECTIONS[(c % sections) as usize];
            let year = 2026 - (c / sections) % years;
            let month = c / (sections * years) + 1;
            let w1 = WORDS[(self.rng.next() % WORDS.len() as u64) as usize];
            let w2 = WORDS[(self.rng.next() % WORDS.len() as u64) as usize];
            let dir = format!("{section}/{year}/{month:02}/{w1}-{w2}-{}", page / containers);
            self.add_sized(format!("{dir}/index.html"), 600, 3_000);
            for (name, percent, lo, hi) in PAGE_ASSETS {
                if self.rng.chance(percent) {
                    self.add_sized(format!("{dir}/{name}"), lo, hi);
                }
            }
            page += 1;
        }
    }
}

impl Spec {
    /// The content: printable, incompressible enough, and the same on every run.
    fn content(&self) -> Vec<u8> {
        const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n";
        let mut rng = Rng(self.seed);
        let mut bytes = Vec::with_capacity(self.size as usize);
        while bytes.len() < self.size as usize {
            let mut word = rng.next();
            for _ in 0..10 {
                if bytes.len() == self.size as usize {
                    break;
                }
                bytes.push(ALPHABET[(word & 63) as usize]);
                word >>= 6;
            }
        }
        bytes
    }

    fn write(&self, site: &Path) -> Result<()> {
        let path = site.join(&self.rel);
        let mut file = fs::File::create(&path).with_context(|| format!("writing {}", paths::shown(&path)))?;
        file.write_all(&self.content())?;
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(GENERATED_MTIME))?;
        Ok(())
    }
}

fn manifest_of(specs: &[Spec], seed: u64) -> Manifest {
    let large: Vec<&Spec> = specs.iter().filter(|s| s.size >= 1 << 20).collect();
    // Every folder that holds a file or a folder, the root excluded.
    let mut dirs: Vec<&str> = specs.iter().flat_map(|s| s.rel.match_indices('/').map(|(i, _)| &s.rel[..i])).collect();
    dirs.sort_unstable();
    dirs.dedup();
    Manifest {
        generator: GENERATOR,
        seed,
        files: specs.len() as u64,
        bytes: specs.iter().map(|s| s.size).sum(),
        large_files: large.len() as u64,
        large_bytes: large.iter().map(|s| s.size).sum(),
        directories: dirs.len() as u64,
    }
}

/// The tree of `n` files under `root/<n>`: reused, repaired, or generated.
pub fn prepare(root: &Path, n: u64, seed: u64) -> Result<Tree> {
    let dir = root.join(n.to_string());
    let site = dir.join("site");
    let specs = specs(n, seed);
    let manifest = manifest_of(&specs, seed);
    let manifest_path = dir.join("manifest.json");
    let found: Option<Manifest> = fs::read(&manifest_path).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let started = Instant::now();
    let how = if found.as_ref() != Some(&manifest) {
        eprintln!("bench: generating a tree of {n} files in {} ...", paths::shown(&site));
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing the old tree {}", paths::shown(&dir)))?;
        }
        fs::create_dir_all(&site)?;
        let mut last_parent = String::new();
        for spec in &specs {
            let parent = spec.rel.rsplit_once('/').map_or("", |(d, _)| d);
            if parent != last_parent {
                fs::create_dir_all(site.join(parent))?;
                last_parent = parent.to_owned();
            }
            spec.write(&site)?;
        }
        fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)?;
        "generated"
    } else if dir.join("DIRTY").exists() {
        eprintln!("bench: repairing the tree of {n} files left changed by an interrupted run ...");
        for spec in &specs {
            let path = site.join(&spec.rel);
            if fs::metadata(&path).map(|m| m.len()).ok() != Some(spec.size) {
                fs::create_dir_all(path.parent().unwrap_or(&site))?;
                spec.write(&site)?;
            }
        }
        fs::remove_file(dir.join("DIRTY"))?;
        "repaired"
    } else {
        "reused"
    };
    let prepared_seconds = if how == "reused" { 0.0 } else { started.elapsed().as_secs_f64() };
    Ok(Tree { dir, site, manifest, specs, prepared_seconds, how })
}

/// Which files a mutation touches: every hundredth, at a fixed phase, never a large file.
fn pick(specs: &[Spec], phase: usize) -> Vec<&Spec> {
    specs.iter().enumerate().filter(|(i, s)| i % 100 == phase && s.size < 1 << 20).map(|(_, s)| s).collect()
}

impl Tree {
    fn mark_dirty(&self) -> Result<()> {
        fs::write(self.dir.join("DIRTY"), b"files changed or removed by a run; repaired on the next run\n")?;
        Ok(())
    }

    /// Appends to 1% of the files; returns how many.
    pub fn change_one_percent(&self) -> Result<u64> {
        self.mark_dirty()?;
        let picked = pick(&self.specs, 37);
        for spec in &picked {
            let path = self.site.join(&spec.rel);
            let mut file = fs::OpenOptions::new().append(true).open(&path).with_context(|| paths::shown(&path))?;
            file.write_all(CHANGE)?;
        }
        Ok(picked.len() as u64)
    }

    /// Takes back the last [`change_one_percent`](Tree::change_one_percent): the same files, one
    /// change shorter, as the build before it made them.
    pub fn revert_change(&self) -> Result<()> {
        for spec in pick(&self.specs, 37) {
            let path = self.site.join(&spec.rel);
            let file = fs::OpenOptions::new().write(true).open(&path).with_context(|| paths::shown(&path))?;
            let len = file.metadata()?.len();
            file.set_len(len.saturating_sub(CHANGE.len() as u64))?;
        }
        Ok(())
    }

    /// Removes another 1% of the files; returns how many.
    pub fn remove_one_percent(&self) -> Result<u64> {
        self.mark_dirty()?;
        let picked = pick(&self.specs, 71);
        for spec in &picked {
            let path = self.site.join(&spec.rel);
            fs::remove_file(&path).with_context(|| paths::shown(&path))?;
        }
        Ok(picked.len() as u64)
    }

    /// A rebuild, as a site generator does it: every file written again with the same bytes, so
    /// every mtime is new (now) and no size moves.
    pub fn rebuild(&self) -> Result<()> {
        self.mark_dirty()?;
        let now = SystemTime::now();
        let mut stack = vec![self.site.clone()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).with_context(|| paths::shown(&dir))? {
                let entry = entry?;
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    stack.push(path);
                } else if entry.file_type()?.is_file() {
                    let file = fs::File::options().write(true).open(&path).with_context(|| paths::shown(&path))?;
                    file.set_modified(now)?;
                }
            }
        }
        Ok(())
    }

    /// A copy of a real site (`cp -a`, mtimes kept) in `<root>/real-<name>/site`, to sync and
    /// rebuild without touching the original.
    pub fn copy_of(original: &Path, root: &Path) -> Result<Tree> {
        let name = original.file_name().map_or("site".into(), |n| n.to_string_lossy().into_owned());
        let dir = root.join(format!("real-{name}"));
        let site = dir.join("site");
        let started = Instant::now();
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        let status = std::process::Command::new("cp").arg("-a").arg(original).arg(&site).status()?;
        if !status.success() {
            bail!("cp -a {} {} failed", paths::shown(original), paths::shown(&site));
        }
        let mut manifest =
            Manifest { generator: 0, seed: 0, files: 0, bytes: 0, large_files: 0, large_bytes: 0, directories: 0 };
        let mut stack = vec![site.clone()];
        while let Some(dir) = stack.pop() {
            manifest.directories += 1;
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let meta = fs::metadata(entry.path())?;
                if meta.is_dir() {
                    stack.push(entry.path());
                } else {
                    manifest.files += 1;
                    manifest.bytes += meta.len();
                    if meta.len() >= 1 << 20 {
                        manifest.large_files += 1;
                        manifest.large_bytes += meta.len();
                    }
                }
            }
        }
        let prepared_seconds = started.elapsed().as_secs_f64();
        Ok(Tree { dir, site, manifest, specs: Vec::new(), prepared_seconds, how: "copied" })
    }

    /// Puts back what the mutations changed, so the next run finds the tree as generated: the
    /// changed and removed files, and every file's mtime.
    pub fn restore(&self) -> Result<()> {
        if !self.dir.join("DIRTY").exists() {
            return Ok(());
        }
        for spec in pick(&self.specs, 37).into_iter().chain(pick(&self.specs, 71)) {
            spec.write(&self.site)?;
        }
        let generated = SystemTime::UNIX_EPOCH + Duration::from_secs(GENERATED_MTIME);
        for spec in &self.specs {
            let path = self.site.join(&spec.rel);
            fs::File::options().write(true).open(&path)?.set_modified(generated)?;
        }
        fs::remove_file(self.dir.join("DIRTY"))?;
        Ok(())
    }
}

/// `10000`, `10k`, `100K`, `1m`, `1M`, `1_000_000`.
pub fn parse_count(s: &str) -> Result<u64> {
    let t = s.trim().replace('_', "");
    let (digits, scale) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        _ => (t.as_str(), 1),
    };
    let n: u64 = digits.parse().with_context(|| format!("not a file count: {s}"))?;
    if n == 0 {
        bail!("a tree needs at least one file");
    }
    Ok(n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_are_deterministic_and_exact() {
        for n in [1, 20, 1_000, 10_000] {
            let a = specs(n, 7);
            let b = specs(n, 7);
            assert_eq!(a.len() as u64, n);
            assert!(a.iter().zip(&b).all(|(x, y)| x.rel == y.rel && x.size == y.size && x.seed == y.seed));
            let mut names: Vec<&str> = a.iter().map(|s| s.rel.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len() as u64, n, "duplicate paths at n = {n}");
        }
        assert_ne!(specs(1_000, 7)[500].rel, specs(1_000, 8)[500].rel);
    }

    #[test]
    fn mostly_small_files_a_few_large() {
        let m = manifest_of(&specs(100_000, 1), 1);
        assert_eq!(m.large_files, 5);
        let small_mean = (m.bytes - m.large_bytes) / (m.files - m.large_files);
        assert!((800..2_000).contains(&small_mean), "mean small file {small_mean} B");
    }

    /// A cached tree is reused while its manifest matches, so the generator's output may change
    /// only with a new `GENERATOR`: this pins it (FNV-1a over every path, size and seed).
    #[test]
    fn the_trees_stay_what_they_were_for_this_generator() {
        let fingerprint = |n: u64, seed: u64| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for spec in specs(n, seed) {
                let fields = [spec.rel.as_bytes(), &spec.size.to_le_bytes(), &spec.seed.to_le_bytes()];
                for byte in fields.concat() {
                    h = (h ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
                }
            }
            h
        };
        assert_eq!(GENERATOR, 1);
        assert_eq!(fingerprint(1_000, 7), 11_247_998_219_222_109_778);
        assert_eq!(fingerprint(30_000, 1), 10_470_092_283_629_639_960);
    }

    #[test]
    fn counts_parse_with_suffixes() {
        assert_eq!(parse_count("10k").unwrap(), 10_000);
        assert_eq!(parse_count("1M").unwrap(), 1_000_000);
        assert_eq!(parse_count("100_000").unwrap(), 100_000);
        assert!(parse_count("0").is_err());
    }
}
