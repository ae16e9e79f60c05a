use std::io::Write;

use super::*;
use crate::model::{LocalFile, Time};

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
    // `a` again, out of order, is behind the cursor: unknown, never wrongly matched.
    assert_eq!(known_keys, ["a", "c"]);
}

#[test]
fn records_must_come_in_key_order() {
    let mut out = Writer::new(Vec::new(), "t").unwrap();
    out.push("b", &known(1)).unwrap();
    assert!(out.push("a", &known(2)).is_err());
    let _ = out.out.flush();
}
