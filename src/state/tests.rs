use std::io::Write;

use super::*;
use crate::model::{LocalFile, LocalItem, Time};

fn known(n: u64) -> Known {
    Known {
        size: n,
        mtime: Time(n as i64 * 1_000),
        md5: n.is_multiple_of(2).then_some([n as u8; 16]),
        etag: n.is_multiple_of(3).then(|| format!("etag{n}")),
        lm_lo: Time(n as i64),
        lm_hi: Time(n as i64 + 5),
    }
}

fn write(path: &Path, identity: &str, keys: &[&str]) {
    replace(
        path,
        |out| {
            for (i, key) in keys.iter().enumerate() {
                out.push(key, &known(i as u64))?;
            }
            Ok(())
        },
        identity,
    )
    .unwrap();
}

fn read_all(path: &Path, identity: &str) -> Result<Vec<(String, Known)>, Unusable> {
    let mut reader = Reader::open(path, identity)?.expect("a state");
    let mut out = Vec::new();
    while let Some(record) = reader.next_record()? {
        out.push(record);
    }
    Ok(out)
}

#[test]
fn records_come_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    write(&path, "target", &["a", "a/b", "b é", "c"]);
    let back = read_all(&path, "target").unwrap();
    let keys: Vec<&str> = back.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a", "a/b", "b é", "c"]);
    assert_eq!(back[2].1, known(2));
    assert!(Reader::open(&dir.path().join("none.bin"), "target").unwrap().is_none(), "no file, no state");
}

#[test]
fn a_corrupt_truncated_foreign_or_old_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    write(&path, "target", &["a", "b", "c"]);
    let good = std::fs::read(&path).unwrap();

    assert!(matches!(Reader::open(&path, "another target"), Err(Unusable::Identity)));

    let mut flipped = good.clone();
    let at = flipped.len() - 30;
    flipped[at] ^= 0x40;
    std::fs::write(&path, &flipped).unwrap();
    assert!(matches!(Reader::open(&path, "target"), Err(Unusable::Corrupt(_))), "a flipped bit");

    std::fs::write(&path, &good[..good.len() - 10]).unwrap();
    assert!(matches!(Reader::open(&path, "target"), Err(Unusable::Corrupt(_))), "truncated");

    let mut old = good.clone();
    old[..MAGIC.len()].copy_from_slice(b"sitesync-state 0\n");
    std::fs::write(&path, &old).unwrap();
    assert!(matches!(Reader::open(&path, "target"), Err(Unusable::Version)));

    std::fs::write(&path, b"garbage").unwrap();
    assert!(Reader::open(&path, "target").is_err());
}

#[test]
fn a_write_that_fails_midway_leaves_the_old_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    write(&path, "target", &["a", "b"]);
    let failed = replace(
        &path,
        |out| {
            out.push("a", &known(7))?;
            Err(io::Error::other("killed"))
        },
        "target",
    );
    assert!(failed.is_err());
    assert_eq!(read_all(&path, "target").unwrap().len(), 2, "the old state is whole");
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file is left");
}

#[test]
fn the_cursor_joins_entries_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    write(&path, "target", &["a", "c", "e"]);
    let mut cursor = Cursor::new(Reader::open(&path, "target").unwrap().unwrap()).unwrap();
    let item = |k: &str| LocalItem::File(LocalFile::new(k.into(), k.into(), 1, Time(0)));
    let mut first = vec![item("a"), item("b")];
    let mut second = vec![item("c"), item("d"), item("a")];
    cursor.attach(&mut first).unwrap();
    cursor.attach(&mut second).unwrap();
    let known_keys: Vec<&str> = first
        .iter()
        .chain(&second)
        .filter_map(|i| match i {
            LocalItem::File(f) if f.known.is_some() => Some(f.key.as_str()),
            _ => None,
        })
        .collect();
    // `a` again, out of order, is found too, by a reader of its own.
    assert_eq!(known_keys, ["a", "c", "a"]);
}

#[test]
fn the_cursor_finds_keys_of_interleaved_streams() {
    // A whole-tree duplicate yields `k…` and `mirror/k…` interleaved; a plugin may add keys
    // anywhere. Every key the state holds is found, whatever the order, and no other.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    let mut keys: Vec<String> = (0..3000).flat_map(|i| [format!("k{i:05}"), format!("mirror/k{i:05}")]).collect();
    keys.sort();
    let stored: Vec<&str> = keys.iter().map(String::as_str).filter(|k| !k.ends_with('7')).collect();
    write(&path, "target", &stored);
    let mut cursor = Cursor::new(Reader::open(&path, "target").unwrap().unwrap()).unwrap();
    let item = |k: String| LocalItem::File(LocalFile::new(k.clone(), k.into(), 1, Time(0)));
    let mut order: Vec<String> = (0..3000).flat_map(|i| [format!("k{i:05}"), format!("mirror/k{i:05}")]).collect();
    // And a few keys out of every order, as a plugin's pages.
    order.extend(["k00042", "mirror/k02999", "k01500", "a", "zz"].map(String::from));
    for batch in order.chunks(1000) {
        let mut items: Vec<LocalItem> = batch.iter().cloned().map(item).collect();
        cursor.attach(&mut items).unwrap();
        for item in items {
            let LocalItem::File(file) = item else { unreachable!() };
            let expected = stored.binary_search(&file.key.as_str()).ok().map(|i| known(i as u64));
            assert_eq!(file.known.map(|k| *k), expected, "{}", file.key);
        }
    }
}

#[test]
fn records_must_come_in_key_order() {
    let mut out = Writer::new(Vec::new(), "t").unwrap();
    out.push("b", &known(1)).unwrap();
    assert!(out.push("a", &known(2)).is_err());
    let _ = out.out.flush();
}

#[test]
fn a_state_whose_end_marker_straddles_the_read_buffer_is_read_whole() {
    // The reader fills 256 KiB at a time: put the end marker at every offset around that boundary.
    const BOUNDARY: i64 = 256 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    let base: Vec<String> = (0..3000).map(|i| format!("page-{i:06}.html")).collect();
    // The marker is followed by a count (8 bytes) and a checksum (16).
    let marker = |keys: &[&str]| {
        write(&path, "target", keys);
        std::fs::metadata(&path).unwrap().len() as i64 - 4 - 8 - 16
    };
    fn with_last<'a>(base: &'a [String], last: &'a str) -> Vec<&'a str> {
        base.iter().map(String::as_str).chain([last]).collect()
    }
    let shortest = marker(&with_last(&base, "z"));
    assert!(shortest < BOUNDARY - 8, "the base state is small enough: {shortest}");
    for offset in -8..=8 {
        let last = format!("z{}", "x".repeat((BOUNDARY + offset - shortest) as usize));
        let keys = with_last(&base, &last);
        assert_eq!(marker(&keys), BOUNDARY + offset);
        let back = read_all(&path, "target").unwrap_or_else(|e| panic!("marker at {offset}: {e}"));
        assert_eq!(back.len(), keys.len(), "marker at {offset}");
    }
}
