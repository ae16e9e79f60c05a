//! The ledger's format, its reader at the edges of its chunks, and the authority rule across
//! layouts, on files made as a run makes them (no server: `Retired::of_files`).

use super::read::CHUNK;
use super::*;
use crate::keys::shard::Shard;

const MS: i64 = 1_000_000;

fn at(ms: i64) -> Time {
    Time(ms * MS)
}

/// A file as a run writes it: its entries sorted by key.
fn file(layout: Layout, written: i64, entries: &[(&str, i64)]) -> LedgerFile {
    let mut entries: Vec<(String, Time)> = entries.iter().map(|(k, ms)| (k.to_string(), at(*ms))).collect();
    entries.sort();
    LedgerFile { layout, written: at(written), entries }
}

fn shard(k: u32, n: u32) -> Layout {
    Layout::Shard(Shard::new(k, n))
}

/// A key in a folder shard `k` of `n` owns (and, when given, shard `k2` of `n2` too).
fn key_of(k: u32, n: u32, also: Option<(u32, u32)>, name: &str) -> String {
    (0..10_000)
        .map(|i| format!("d{i}/{name}"))
        .find(|key| Shard::new(k, n).owns(key) && also.is_none_or(|(k2, n2)| Shard::new(k2, n2).owns(key)))
        .expect("some folder")
}

#[tokio::test]
async fn keys_of_every_kind_read_back_with_their_times() {
    let long = format!("{}/x", "é".repeat(510));
    let mut keys = [
        "a b.html".to_owned(),
        "c+d%20e.js".into(),
        "new\nline\r\t.txt".into(),
        "bell\u{7}.txt".into(),
        "日本/é.html".into(),
        "x".into(),
        long,
    ];
    keys.sort();
    let entries: Vec<(String, Time)> =
        keys.iter().enumerate().map(|(i, k)| (k.clone(), at(1_700_000_000_000 + i as i64))).collect();
    let given = LedgerFile { layout: Layout::Whole, written: at(5), entries: entries.clone() };
    let opened = write::opened(&given).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut &opened.file, &mut text).unwrap();
    assert!(text.starts_with("{\"v\":1,\"shard\":null,\"written\":5}\n"), "{text}");
    assert_eq!(text.lines().count(), keys.len() + 1, "one line per key: {text:?}");
    assert!(text.is_ascii(), "keys are percent-encoded: {text:?}");

    let mut retired = Retired::of_files(Layout::Whole, &[given]).await.unwrap();
    assert_eq!(retired.lookup("0").await.unwrap(), None, "before the first");
    for (key, time) in &entries {
        assert_eq!(retired.lookup(key).await.unwrap(), Some(*time), "{key:?}");
    }
    assert_eq!(retired.lookup("zzz").await.unwrap(), None, "after the last");
}

#[tokio::test]
async fn the_reader_finds_every_key_around_its_chunks() {
    for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1] {
        let entries: Vec<(String, Time)> = (0..n).map(|i| (format!("k{:06}", 2 * i + 1), at(i as i64))).collect();
        let given = LedgerFile { layout: Layout::Whole, written: at(1), entries };
        // Ask for every key, and for the keys between them (absent): lookups cross each chunk.
        let mut retired = Retired::of_files(Layout::Whole, std::slice::from_ref(&given)).await.unwrap();
        for i in 0..=2 * n {
            let found = retired.lookup(&format!("k{i:06}")).await.unwrap();
            let expected = (i % 2 == 1).then(|| at((i / 2) as i64));
            assert_eq!(found, expected, "n = {n}, k{i:06}");
        }
        // Only the last key, then past it.
        let mut retired = Retired::of_files(Layout::Whole, std::slice::from_ref(&given)).await.unwrap();
        if n > 0 {
            let last = format!("k{:06}", 2 * n - 1);
            assert_eq!(retired.lookup(&last).await.unwrap(), Some(at(n as i64 - 1)), "n = {n}");
        }
        assert_eq!(retired.lookup("l").await.unwrap(), None);
        // Walked whole.
        let mut retired = Retired::of_files(Layout::Whole, std::slice::from_ref(&given)).await.unwrap();
        let mut walked = Vec::new();
        while let Some(entry) = retired.next_owned().await.unwrap() {
            walked.push(entry);
        }
        assert_eq!(walked, given.entries, "n = {n}");
    }
}

#[tokio::test]
async fn the_reader_and_the_writer_hold_a_chunk_never_the_ledger() {
    // Written as a run writes it, spilling as it goes.
    let n = 3 * CHUNK + 7;
    let mut new = NewLedger::new(&Layout::Whole, at(1)).unwrap();
    let mut most = 0;
    for i in 0..20_000 {
        new.push(&format!("assets/{i:08}/app.{i:08x}.js"), at(i)).unwrap();
        new.spill().await.unwrap();
        most = most.max(new.pending());
    }
    assert!(most < 256 * 1024 + 100, "{most} bytes held");
    // Read in chunks, however many keys are asked or passed.
    let entries: Vec<(String, Time)> = (0..n).map(|i| (format!("k{i:06}"), at(i as i64))).collect();
    let given = LedgerFile { layout: Layout::Whole, written: at(1), entries };
    let mut retired = Retired::of_files(Layout::Whole, &[given]).await.unwrap();
    let mut held = 0;
    for i in (0..n).step_by(5) {
        retired.lookup(&format!("k{i:06}")).await.unwrap().expect("listed");
        held = held.max(retired.buffered());
    }
    assert!(held <= CHUNK, "{held} entries held");
}

#[tokio::test]
async fn the_newest_file_whose_layout_owns_a_key_says_whether_it_is_retired() {
    // Shard 1/2's key and shard 2/2's key, retired by a whole run at 100.
    let (one, two) = (key_of(1, 2, None, "a.js"), key_of(2, 2, None, "b.js"));
    let whole = file(Layout::Whole, 1000, &[(&one, 100), (&two, 100)].map(|(k, t)| (k.as_str(), t)));
    // Then shard 1/2 ran: `one` came back (it is not listed), a key of its own was retired.
    let three = key_of(1, 2, None, "c.js");
    let first = file(shard(1, 2), 2000, &[(three.as_str(), 1900)]);
    let files = [whole, first];
    let mut retired = Retired::of_files(shard(2, 2), &files).await.unwrap();
    let mut asked: Vec<&String> = vec![&one, &two, &three];
    asked.sort();
    let mut found = std::collections::BTreeMap::new();
    for key in asked {
        found.insert(key.clone(), retired.lookup(key).await.unwrap());
    }
    assert_eq!(found[&one], None, "the newer file of its layout un-retired it");
    assert_eq!(found[&two], Some(at(100)), "no newer file owns it: the whole run's says");
    assert_eq!(found[&three], Some(at(1900)));

    // Shard 2/2's rewrite of its own file keeps `two` at its time, and only its own keys.
    let mut retired = Retired::of_files(shard(2, 2), &files).await.unwrap();
    let mut owned = Vec::new();
    while let Some(entry) = retired.next_owned().await.unwrap() {
        owned.push(entry);
    }
    assert_eq!(owned, [(two.clone(), at(100))]);
}

#[tokio::test]
async fn a_change_of_n_loses_nothing() {
    // Two shards retired a key each; three shards run next, none has a file yet.
    let a = key_of(1, 2, Some((3, 3)), "a.js");
    let b = key_of(2, 2, Some((1, 3)), "b.js");
    let files = [file(shard(1, 2), 1000, &[(a.as_str(), 10)]), file(shard(2, 2), 1001, &[(b.as_str(), 20)])];
    for (k, expected) in [(1, vec![(b.clone(), at(20))]), (2, vec![]), (3, vec![(a.clone(), at(10))])] {
        let mut retired = Retired::of_files(shard(k, 3), &files).await.unwrap();
        let mut owned = Vec::new();
        while let Some(entry) = retired.next_owned().await.unwrap() {
            owned.push(entry);
        }
        assert_eq!(owned, expected, "shard {k}/3 carries over what the old layout's files say of its keys");
    }
    // Once 3/3 wrote its file (newer), it speaks for `a`, retired or not.
    let mut later = files.to_vec();
    later.push(file(shard(3, 3), 2000, &[]));
    let mut retired = Retired::of_files(Layout::Whole, &later).await.unwrap();
    let mut asked = [&a, &b];
    asked.sort();
    let found: Vec<Option<Time>> = futures_lookups(&mut retired, &asked).await;
    let expected: Vec<Option<Time>> = asked.iter().map(|k| if **k == b { Some(at(20)) } else { None }).collect();
    assert_eq!(found, expected);
}

async fn futures_lookups(retired: &mut Retired, keys: &[&String]) -> Vec<Option<Time>> {
    let mut found = Vec::new();
    for key in keys {
        found.push(retired.lookup(key).await.unwrap());
    }
    found
}

#[tokio::test]
async fn an_unchanged_ledger_is_not_written_again() {
    let own = file(Layout::Whole, 1000, &[("a", 1), ("b", 2)]);
    let retired = Retired::of_files(Layout::Whole, std::slice::from_ref(&own)).await.unwrap();
    let same = |entries: &[(&str, i64)]| {
        let mut new = NewLedger::new(&Layout::Whole, at(3000)).unwrap();
        for (k, t) in entries {
            new.push(k, at(*t)).unwrap();
        }
        new
    };
    assert!(!retired.needs_rewrite(&same(&[("a", 1), ("b", 2)])), "same lines, a later header");
    assert!(retired.needs_rewrite(&same(&[("a", 1)])), "a key dropped");
    assert!(retired.needs_rewrite(&same(&[("a", 1), ("b", 3)])), "another time");

    // No file and nothing retired: nothing to write; a file of another layout that may speak for
    // this one's keys: written, so this one speaks for them from now on.
    let none = Retired::of_files(Layout::Whole, &[]).await.unwrap();
    assert!(!none.needs_rewrite(&same(&[])));
    let other = [file(shard(1, 2), 1000, &[]), file(shard(2, 2), 1000, &[])];
    let beside = Retired::of_files(shard(1, 2), &other).await.unwrap();
    assert!(!beside.needs_rewrite(&same(&[])), "its own file, and its sibling's which owns none of its keys");
    let newer = [file(shard(1, 2), 1000, &[]), file(Layout::Whole, 1001, &[])];
    let below = Retired::of_files(shard(1, 2), &newer).await.unwrap();
    assert!(below.needs_rewrite(&same(&[])), "a newer whole run's file speaks for its keys");
    assert_eq!(below.written_after(), Some(at(1002)));
}

#[tokio::test]
async fn a_ledger_it_cannot_read_is_refused_naming_the_file_and_the_line() {
    let cases: [(&str, &[u8], u64, &str); 7] = [
        ("retired", b"", 1, "no header line"),
        ("retired", b"{\"v\":2,\"shard\":null,\"written\":1}\n", 1, "format 2"),
        ("retired", b"not json\n", 1, "not a ledger's header"),
        ("retired.1-of-2", b"{\"v\":1,\"shard\":null,\"written\":1}\n", 1, "the header says shard None"),
        ("retired", b"{\"v\":1,\"shard\":null,\"written\":1}\n5 b\n5 a\n", 3, "\"a\" comes after \"b\""),
        ("retired", b"{\"v\":1,\"shard\":null,\"written\":1}\n5 a\n6 b", 3, "cut short"),
        ("retired", b"{\"v\":1,\"shard\":null,\"written\":1}\nfive a\n", 2, "\"five\" is not a time"),
    ];
    for (name, bytes, line, why) in cases {
        let layout = Layout::named(&format!(".sitesync/{name}"), &Default::default()).unwrap();
        let mut file = crate::disk::anonymous_file("test").unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        std::io::Seek::rewind(&mut file).unwrap();
        let opened = Opened { key: layout.key(), layout, file, digest: [0; 16] };
        let failed = match Retired::open(Layout::Whole, vec![opened]).await {
            Err(e) => e,
            Ok(mut retired) => retired.lookup("z").await.unwrap_err(),
        };
        let LedgerError::Corrupt { key, line: at, why: said } = &failed else { panic!("{failed}") };
        assert_eq!((key.as_str(), *at), (format!(".sitesync/{name}").as_str(), line), "{failed}");
        assert!(said.contains(why), "{name}: {failed}");
        assert!(failed.to_string().contains("delete that object"), "the message says what to do: {failed}");
    }
}

#[test]
fn only_the_names_sitesync_writes_are_ledgers() {
    let mapping = Default::default();
    assert_eq!(Layout::named(".sitesync/retired", &mapping), Some(Layout::Whole));
    assert_eq!(Layout::named(".sitesync/retired.2-of-8", &mapping), Some(shard(2, 8)));
    for name in ["retired.0-of-2", "retired.3-of-2", "retired.02-of-8", "retired-old", "retired.1-of-2.bak", "lock"] {
        assert_eq!(Layout::named(&format!(".sitesync/{name}"), &mapping), None, "{name}");
    }
    assert_eq!(shard(2, 8).key(), ".sitesync/retired.2-of-8");
    assert!(shard(1, 2).overlaps(&shard(1, 3)) && !shard(1, 2).overlaps(&shard(2, 2)));
    assert!(Layout::Whole.overlaps(&shard(2, 2)));
}

#[test]
fn keys_must_come_in_order() {
    let mut new = NewLedger::new(&Layout::Whole, at(1)).unwrap();
    new.push("b", at(1)).unwrap();
    assert!(new.push("a", at(1)).is_err());
    assert!(new.push("b", at(1)).is_err(), "twice");
    new.push("c", at(1)).unwrap();
    assert_eq!(new.entries(), 2);
}
